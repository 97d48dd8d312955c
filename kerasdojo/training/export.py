"""The policy network a user keeps: ``policy.keras``, loadable by plain ``keras.models.load_model``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kerasdojo import backend
from kerasdojo.files import save_keras_model
from kerasdojo.networks import chain


def _norm_layers(rms: Any, normalizer: Any, prefix: str = "") -> list[Any]:
    """Built-in layers computing ``clip((x - mean) / sqrt(var + eps), -clip, clip)``."""
    keras = backend.keras()
    clip = normalizer.clip
    return [
        keras.layers.Normalization(
            axis=tuple(range(-rms.mean.ndim, 0)) if rms.mean.ndim > 1 else -1,
            mean=rms.mean.astype(np.float32),
            variance=(rms.var + normalizer.epsilon).astype(np.float32),
            name=f"{prefix}obs_norm",
        ),
        # clip(x, -c, c) from built-in layers: ReLU(max=2c)(x + c) - c
        keras.layers.Rescaling(1.0, offset=clip, name=f"{prefix}clip_shift"),
        keras.layers.ReLU(max_value=2 * clip, name=f"{prefix}clip"),
        keras.layers.Rescaling(1.0, offset=-clip, name=f"{prefix}clip_unshift"),
    ]


def export_policy(agent: Any, normalizer: Any, path: Path) -> Path | None:
    """Save ``agent.policy_model()`` with the observation normalisation built in (None: the
    agent has no policy network, as the random agent). A nested observation's model keeps one
    named input per leaf, each float leaf standardised by its own statistics."""
    model = agent.policy_model()
    if model is None:
        return None
    keras = backend.keras()
    if normalizer.norm_obs and normalizer.leaf_rms:
        inputs = {t.name: keras.Input(t.shape[1:], dtype=t.dtype, name=t.name) for t in model.inputs}
        normed = dict(inputs)
        for name, rms in normalizer.leaf_rms.items():
            normed[name] = chain(inputs[name], _norm_layers(rms, normalizer, f"{name}_"))
        return save_keras_model(keras.Model(inputs, model(normed), name="policy"), path)
    layers = _norm_layers(normalizer.obs_rms, normalizer) if normalizer.norm_obs else []
    dtype = model.inputs[0].dtype  # uint8 for frames: the model scales them itself
    if len(model.inputs) > 1 and layers:  # inputs beside the observation (a recurrent policy's state)
        inputs = [keras.Input(t.shape[1:], dtype=t.dtype, name=t.name) for t in model.inputs]
        export = keras.Model(inputs, model([chain(inputs[0], layers), *inputs[1:]]), name="policy")
    elif isinstance(model, keras.Sequential):
        export = keras.Sequential(
            [keras.Input(model.input_shape[1:], dtype=dtype), *layers, *model.layers], name="policy"
        )
    elif layers:
        inp = keras.Input(model.input_shape[1:], dtype=dtype)
        export = keras.Model(inp, model(chain(inp, layers)), name="policy")
    else:  # a functional policy (the policy head of a shared CNN, a nested observation's), saved as it is
        export = model
    return save_keras_model(export, path)
