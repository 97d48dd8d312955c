"""The policy network a user keeps: ``policy.keras``, loadable by plain ``keras.models.load_model``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kerasdojo import backend
from kerasdojo.files import save_keras_model


def export_policy(agent: Any, normalizer: Any, path: Path) -> Path | None:
    """Save ``agent.policy_model()`` with the observation normalisation built in (None: the
    agent has no policy network, as the random agent)."""
    model = agent.policy_model()
    if model is None:
        return None
    keras = backend.keras()
    layers: list[Any] = []
    if normalizer.norm_obs:
        rms, clip = normalizer.obs_rms, normalizer.clip
        layers += [
            keras.layers.Normalization(
                axis=tuple(range(-rms.mean.ndim, 0)) if rms.mean.ndim > 1 else -1,
                mean=rms.mean.astype(np.float32),
                variance=(rms.var + normalizer.epsilon).astype(np.float32),
                name="obs_norm",
            ),
            # clip(x, -c, c) from built-in layers: ReLU(max=2c)(x + c) - c
            keras.layers.Rescaling(1.0, offset=clip, name="clip_shift"),
            keras.layers.ReLU(max_value=2 * clip, name="clip"),
            keras.layers.Rescaling(1.0, offset=-clip, name="clip_unshift"),
        ]
    dtype = model.inputs[0].dtype  # uint8 for frames: the model scales them itself
    if isinstance(model, keras.Sequential):
        export = keras.Sequential(
            [keras.Input(model.input_shape[1:], dtype=dtype), *layers, *model.layers], name="policy"
        )
    elif layers:
        inp = keras.Input(model.input_shape[1:], dtype=dtype)
        h = inp
        for layer in layers:
            h = layer(h)
        export = keras.Model(inp, model(h), name="policy")
    else:  # a functional policy (the policy head of a shared CNN), saved as it is
        export = model
    return save_keras_model(export, path)
