"""Encoders for nested observations (Dict and Tuple spaces, :mod:`kerasdojo.observations`): one
named ``keras.Input`` per leaf, a CNN for each image leaf and a flatten for the rest, their
features concatenated (SB3's ``CombinedExtractor``), then each head's layers. Built from Keras's
own layers, so a model loads in plain Keras with one named input per leaf."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from kerasdojo.backend import keras as _keras
from kerasdojo.networks import (
    build,
    chain,
    image_layout,
    is_image_space,
    nature_cnn_layers,
    small_cnn_layers,
    uses_nature_cnn,
)

IMAGE_FEATURES = 256  # features of each image leaf's CNN in a nested observation (SB3's CombinedExtractor)


def representative(spec: Any) -> tuple[tuple[int, ...], Any]:
    """The (shape, dtype) that speed and precision rules look at: a plain observation's own, the
    first image leaf's of a nested one, else the flattened width in float32."""
    if not spec.nested:
        return spec.shape, spec.dtype
    for leaf in spec.leaves:
        if is_image_space(leaf.shape, leaf.dtype):
            return leaf.shape, leaf.dtype
    return (spec.size(),), np.float32


def encoded_inputs(spec: Any, cnn_dtype: str = "float32", flatten_images: bool = False) -> tuple[dict, Any]:
    """Named inputs for a nested observation, one per leaf (``keras.Input(name=leaf)``), and their
    features: a CNN of :data:`IMAGE_FEATURES` for each image leaf (unless ``flatten_images``), every
    other leaf flattened (bytes as floats), all concatenated (SB3's ``CombinedExtractor``)."""
    keras = _keras()
    L = keras.layers
    inputs, parts = {}, []
    for leaf in spec.leaves:
        inp = inputs[leaf.name] = keras.Input(leaf.shape, dtype=leaf.dtype.name, name=leaf.name)
        layout = image_layout(leaf.shape, leaf.dtype)
        if layout is not None and not flatten_images:
            cnn = nature_cnn_layers if uses_nature_cnn(leaf.shape, leaf.dtype) else small_cnn_layers
            layers = cnn(IMAGE_FEATURES, layout == "channels_first", cnn_dtype, prefix=f"{leaf.name}_")
        else:
            layers = [L.Flatten(name=f"{leaf.name}_flatten")]
            if leaf.dtype == np.uint8:
                layers.insert(0, L.Rescaling(1.0, name=f"{leaf.name}_float"))
        parts.append(chain(inp, layers))
    features = parts[0] if len(parts) == 1 else L.Concatenate(name="features")(parts)
    return inputs, features


def build_nested(spec: Any, heads: dict[str, list[Any]], name: str, **encoder: Any) -> Any:
    """One functional model of a nested observation: shared encoders (:func:`encoded_inputs`),
    then each head's layers (its MLP and output) on the features; outputs in ``heads``' order.
    Sub-models for one head each are ``keras.Model(model.input, model.outputs[i])``."""
    keras = _keras()
    inputs, features = encoded_inputs(spec, **encoder)
    outputs = [chain(features, layers) for layers in heads.values()]
    model = keras.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=name)
    images = any(is_image_space(leaf.shape, leaf.dtype) for leaf in spec.leaves)
    if not images or encoder.get("flatten_images"):
        _FLAT[model] = ([leaf.name for leaf in spec.leaves], [list(layers) for layers in heads.values()])
    return model


# Models of build_nested whose leaves are all flattened: (leaf names in order, each head's layers),
# what a NumPy copy needs (kept beside the model, not on it: Keras tracks a model's attributes).
_FLAT: weakref.WeakKeyDictionary[Any, tuple[list[str], list[list[Any]]]] = weakref.WeakKeyDictionary()


def flat_heads(model: Any) -> tuple[list[str], list[list[Any]]] | None:
    """For a nested model whose leaves are all flattened and concatenated: the leaf names in
    order and each output's layers; None for any other model."""
    try:
        return _FLAT.get(model)
    except TypeError:  # not a Keras model (no weak reference to it)
        return None


def extend(model: Any, layers: list[Any], name: str) -> Any:
    """``model`` followed by ``layers`` (sharing their weights), as a Sequential when it is one."""
    keras = _keras()
    if isinstance(model, keras.Sequential):
        return build(model.input_shape[1:], [*model.layers, *layers], name, model.inputs[0].dtype)
    return keras.Model(model.input, chain(model.output, layers), name=name)
