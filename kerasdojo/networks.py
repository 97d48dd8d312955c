"""Shared network builders: MLP and CNN torsos, and the heads every agent needs.

Pure functions that return Keras models built only from Keras's own layers, so
any saved model loads with plain ``keras.models.load_model``. Used by the
supervised tasks and by every agent. Keras comes through :mod:`kerasdojo.backend`
(the TensorFlow backend, quiet start-up), the only module of ours imported here.

"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from kerasdojo.backend import keras as _keras

ACTIVATIONS = ("relu", "tanh", "elu", "gelu", "sigmoid", "linear")
INITIALIZERS = ("glorot_uniform", "fan_in_uniform", "he_normal", "orthogonal")


def initializer(kind: str = "glorot_uniform", gain: float = 1.0, seed: int | None = None) -> Any:
    """A kernel initializer: ``glorot_uniform``, ``he_normal``, ``orthogonal`` with a gain, or
    ``fan_in_uniform``: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's ``nn.Linear`` default (the
    initialisation RL Zoo's DQN hyperparameters were tuned with)."""
    keras = _keras()
    if kind == "fan_in_uniform":
        return keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seed)
    if kind == "orthogonal":
        return keras.initializers.Orthogonal(gain=gain, seed=seed)
    if kind == "glorot_uniform":
        return keras.initializers.GlorotUniform(seed=seed)
    if kind == "he_normal":
        return keras.initializers.HeNormal(seed=seed)
    raise ValueError(f"Unknown initializer. Received: kind={kind!r}; valid: {', '.join(INITIALIZERS)}")


def mlp_layers(
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    dropout: float = 0.0,
    init: str = "glorot_uniform",
    gain: float = math.sqrt(2),
    flatten: bool = False,
    prefix: str = "",
) -> list[Any]:
    """Hidden Dense layers (each followed by Dropout when ``dropout`` > 0); ``prefix`` before their
    names (two MLPs in one model)."""
    keras = _keras()
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown activation. Received: activation={activation!r}; valid: {', '.join(ACTIVATIONS)}")
    layers: list[Any] = [keras.layers.Flatten(name="flatten")] if flatten else []
    for i, width in enumerate(hidden):
        layers.append(
            keras.layers.Dense(
                width, activation=activation, kernel_initializer=initializer(init, gain), name=f"{prefix}dense_{i}"
            )
        )
        if dropout > 0:
            layers.append(keras.layers.Dropout(dropout, name=f"{prefix}dropout_{i}"))
    return layers


def mlp(
    input_shape: int | Sequence[int],
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    output_dim: int | None = None,
    output_activation: str | None = None,
    dropout: float = 0.0,
    init: str = "glorot_uniform",
    gain: float = math.sqrt(2),
    output_gain: float = 1.0,
    name: str = "mlp",
) -> Any:
    """A multi-layer perceptron as a ``keras.Sequential``.

    ``input_shape`` is the feature count (or a shape, flattened first).
    ``hidden`` gives the width of each hidden layer, each followed by
    ``activation`` and, when ``dropout`` > 0, a Dropout layer. ``output_dim``
    adds a final Dense layer with ``output_activation``. With ``init="orthogonal"``
    hidden kernels use ``gain`` and the output kernel ``output_gain`` (biases zero),
    the PPO convention.
    """
    keras = _keras()
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    layers = mlp_layers(hidden, activation, dropout, init, gain, flatten=len(shape) > 1)
    if output_dim is not None:
        layers.append(
            keras.layers.Dense(
                output_dim,
                activation=output_activation,
                kernel_initializer=initializer(init, output_gain),
                name="output",
            )
        )
    return keras.Sequential([keras.Input(shape), *layers], name=name)


def mnist_cnn(
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    name: str = "cnn",
    output_activation: str | None = None,
) -> Any:
    """The Keras MNIST convnet baseline (``mnist_cnn.py``): two 3x3 convolutions
    (32, 64), 2x2 max-pooling, dropout 0.25, Dense 128, dropout 0.5, Dense 10
    (logits, or ``output_activation`` such as softmax)."""
    keras = _keras()
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input(tuple(input_shape)),
            L.Conv2D(32, 3, activation="relu", name="conv_0"),
            L.Conv2D(64, 3, activation="relu", name="conv_1"),
            L.MaxPooling2D(2, name="pool"),
            L.Dropout(0.25, name="dropout_0"),
            L.Flatten(name="flatten"),
            L.Dense(128, activation="relu", name="dense_0"),
            L.Dropout(0.5, name="dropout_1"),
            L.Dense(num_classes, activation=output_activation, name="output"),
        ],
        name=name,
    )


def nature_cnn_layers(
    features: int = 512, channels_first: bool = False, dtype: str = "float32", prefix: str = ""
) -> list[Any]:
    """The Nature-DQN torso (Mnih et al. 2015) for stacked 84x84 uint8 frames:
    /255, conv 32 8x8/4, conv 64 4x4/2, conv 64 3x3/1, Dense ``features``.
    ``channels_first``: frames come as (stack, H, W), as ale-py stacks them; a
    Permute layer turns them channels-last (TensorFlow's CPU convolutions need it).
    ``dtype``: the layers' dtype policy (``mixed_bfloat16``: bfloat16 math, float32 weights);
    ``prefix``: before each layer's name (one CNN per image leaf of a nested observation)."""
    keras = _keras()
    L = keras.layers
    ortho = initializer("orthogonal", math.sqrt(2))
    p = prefix
    first = [L.Permute((2, 3, 1), name=f"{p}channels_last", dtype=dtype)] if channels_first else []
    return first + [
        L.Rescaling(1.0 / 255.0, name=f"{p}scale", dtype=dtype),
        L.Conv2D(32, 8, strides=4, activation="relu", kernel_initializer=ortho, name=f"{p}conv_0", dtype=dtype),
        L.Conv2D(64, 4, strides=2, activation="relu", kernel_initializer=ortho, name=f"{p}conv_1", dtype=dtype),
        L.Conv2D(64, 3, strides=1, activation="relu", kernel_initializer=ortho, name=f"{p}conv_2", dtype=dtype),
        L.Flatten(name=f"{p}flatten", dtype=dtype),
        L.Dense(features, activation="relu", kernel_initializer=ortho, name=f"{p}features", dtype=dtype),
    ]


def small_cnn_layers(
    features: int = 256, channels_first: bool = False, dtype: str = "float32", prefix: str = ""
) -> list[Any]:
    """A torso for small images (under 36 pixels a side, where the Nature CNN's strides do
    not fit; MinAtar-sized boards): /255, conv 16 3x3/1, conv 32 3x3/2, Dense ``features``."""
    keras = _keras()
    L = keras.layers
    ortho = initializer("orthogonal", math.sqrt(2))
    same = {"padding": "same", "activation": "relu", "kernel_initializer": ortho, "dtype": dtype}
    p = prefix
    first = [L.Permute((2, 3, 1), name=f"{p}channels_last", dtype=dtype)] if channels_first else []
    return first + [
        L.Rescaling(1.0 / 255.0, name=f"{p}scale", dtype=dtype),
        L.Conv2D(16, 3, strides=1, name=f"{p}conv_0", **same),
        L.Conv2D(32, 3, strides=2, name=f"{p}conv_1", **same),
        L.Flatten(name=f"{p}flatten", dtype=dtype),
        L.Dense(features, activation="relu", kernel_initializer=ortho, name=f"{p}features", dtype=dtype),
    ]


def nature_cnn(input_shape: Sequence[int] = (84, 84, 4), features: int = 512, name: str = "nature_cnn") -> Any:
    """The Nature-DQN torso as a model (uint8 input, channels last or ale-py's channels first)."""
    keras = _keras()
    layout = image_layout(input_shape, np.uint8)
    return keras.Sequential(
        [keras.Input(tuple(input_shape), dtype="uint8"), *nature_cnn_layers(features, layout == "channels_first")],
        name=name,
    )


MIN_IMAGE_SIDE = 8  # smaller 3-D uint8 observations are treated as features
NATURE_MIN_SIDE = 36  # the Nature CNN's 8/4, 4/2, 3/1 convolutions need at least this


def image_layout(shape: Sequence[int], dtype: Any) -> str | None:
    """How a uint8 observation holds an image: ``channels_last`` (H, W, C) when C is the smallest
    axis (RGB, a raw Atari frame, stacked channels), ``channels_first`` (C, H, W) when C is
    (ale-py's and Gymnasium's frame stacks), or None for anything else (features)."""
    if len(shape) != 3 or np.dtype(dtype) != np.uint8:
        return None
    if shape[-1] < min(shape[0], shape[1]) and min(shape[0], shape[1]) >= MIN_IMAGE_SIDE:
        return "channels_last"
    if shape[0] < min(shape[1], shape[2]) and min(shape[1], shape[2]) >= MIN_IMAGE_SIDE:
        return "channels_first"
    return None


def is_image_space(shape: Sequence[int], dtype: Any) -> bool:
    """Whether observations look like image frames (uint8, HxWxC or CxHxW) rather than features."""
    return image_layout(shape, dtype) is not None


def uses_nature_cnn(shape: Sequence[int], dtype: Any) -> bool:
    """Whether image observations get the Nature CNN (at least 36 pixels a side) rather than the small one."""
    layout = image_layout(shape, dtype)
    if layout is None:
        return False
    return min(shape[1:] if layout == "channels_first" else shape[:2]) >= NATURE_MIN_SIDE


def input_dtype(shape: Sequence[int], dtype: Any) -> str:
    """The dtype of a model's input: uint8 for images (scaled inside the model), else float32."""
    return "uint8" if is_image_space(shape, dtype) else "float32"


def torso_layers(
    obs_shape: Sequence[int],
    obs_dtype: Any,
    hidden: Sequence[int],
    activation: str,
    init: str = "glorot_uniform",
    gain: float = math.sqrt(2),
    cnn_dtype: str = "float32",
) -> list[Any]:
    """A CNN for image observations (the Nature CNN, or a small one for images under 36
    pixels a side; features = the last width of ``hidden``; ``cnn_dtype`` its dtype policy),
    else an MLP (flattening any other shape)."""
    layout = image_layout(obs_shape, obs_dtype)
    if layout is not None:
        features = hidden[-1] if hidden else 512
        cnn = nature_cnn_layers if uses_nature_cnn(obs_shape, obs_dtype) else small_cnn_layers
        return cnn(features, layout == "channels_first", cnn_dtype)
    return mlp_layers(hidden, activation, init=init, gain=gain, flatten=len(obs_shape) != 1)


def float32_twin(model: Any) -> Any:
    """A copy of ``model`` whose layers compute in float32, with its weights: to act with (XLA's
    CPU bfloat16 convolutions are slow) and to save (bfloat16 is emulated on many CPUs)."""
    keras = _keras()

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if not isinstance(layer, keras.layers.InputLayer):
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone)
    twin.set_weights(model.get_weights())
    return twin


def build(input_shape: Sequence[int], layers: list[Any], name: str, dtype: str = "float32") -> Any:
    """A Sequential model from an input shape and a list of layers (torso + head)."""
    keras = _keras()
    return keras.Sequential([keras.Input(tuple(input_shape), dtype=dtype), *layers], name=name)


def build_shared(input_shape: Sequence[int], torso: list[Any], heads: dict[str, list[Any]], dtype: str) -> Any:
    """One functional model with a shared torso and several heads (outputs in ``heads``' order):
    SB3's shared CNN feature extractor for actor-critics on images. Sub-models for one head
    each are ``keras.Model(model.input, model.get_layer(last).output)``."""
    keras = _keras()
    inp = keras.Input(tuple(input_shape), dtype=dtype, name="obs")
    h = chain(inp, torso)
    return keras.Model(inp, [chain(h, layers) for layers in heads.values()], name="actor_critic")


def chain(h: Any, layers: list[Any]) -> Any:
    """``h`` through ``layers`` in turn (a functional model's tensors)."""
    for layer in layers:
        h = layer(h)
    return h


# --------------------------------------------------------------------------- heads
# Each head is a list of layers appended to a torso, so the result stays a
# Sequential model that plain Keras can load and the acting engine can copy into NumPy.


def q_head(n_actions: int, init: str = "glorot_uniform") -> list[Any]:
    """Q values: one linear output per action."""
    return [_keras().layers.Dense(n_actions, kernel_initializer=initializer(init, 1.0), name="q_values")]


def dueling_q_head(n_actions: int, init: str = "glorot_uniform") -> list[Any]:
    """Dueling Q values, ``Q = V + A - mean(A)`` (Wang et al. 2016).

    A Dense layer outputs ``[A_1..A_n, V]``; a fixed, non-trainable linear map
    ``K`` (``I - 1/n`` over the advantages, ones for V) turns it into Q exactly,
    so the head is made of built-in layers only.
    """
    keras = _keras()
    k = np.concatenate([np.eye(n_actions) - 1.0 / n_actions, np.ones((1, n_actions))], axis=0)
    combine = keras.layers.Dense(
        n_actions,
        use_bias=False,
        trainable=False,
        kernel_initializer=keras.initializers.Constant(k.astype(np.float32)),
        name="dueling_combine",
    )
    return [
        keras.layers.Dense(n_actions + 1, kernel_initializer=initializer(init, 1.0), name="advantage_value"),
        combine,
    ]


def categorical_head(n_actions: int, gain: float = 0.01) -> list[Any]:
    """Policy logits for a categorical distribution (small orthogonal init)."""
    return [_keras().layers.Dense(n_actions, kernel_initializer=initializer("orthogonal", gain), name="logits")]


def gaussian_head(action_dim: int, log_std_init: float = 0.0, gain: float = 0.01) -> tuple[list[Any], Any]:
    """Gaussian policy: layers for the mean, and a state-independent log-std variable."""
    keras = _keras()
    mean = keras.layers.Dense(action_dim, kernel_initializer=initializer("orthogonal", gain), name="mean")
    log_std = keras.Variable(np.full((action_dim,), log_std_init, np.float32), name="log_std", trainable=True)
    return [mean], log_std


def value_head(gain: float = 1.0) -> list[Any]:
    """State value: one linear output."""
    return [_keras().layers.Dense(1, kernel_initializer=initializer("orthogonal", gain), name="value")]


def fixed_linear(kernel: np.ndarray, bias: np.ndarray | None, activation: str | None, name: str) -> Any:
    """A non-trainable Dense layer with a given kernel (and bias): a fixed linear map made
    of a built-in layer, so that a model using it still loads with plain Keras."""
    keras = _keras()
    kernel = np.asarray(kernel, np.float32)
    return keras.layers.Dense(
        kernel.shape[1],
        activation=activation,
        use_bias=bias is not None,
        trainable=False,
        kernel_initializer=keras.initializers.Constant(kernel),
        bias_initializer=keras.initializers.Constant(np.asarray(bias if bias is not None else 0.0, np.float32)),
        name=name,
    )


def to_bounds(low: np.ndarray, high: np.ndarray) -> Any:
    """Map actions in [-1, 1] to the Box ``[low, high]``: ``low + (a + 1) * (high - low) / 2``."""
    low, high = np.asarray(low, np.float64).ravel(), np.asarray(high, np.float64).ravel()
    return fixed_linear(np.diag((high - low) / 2.0), (high + low) / 2.0, None, "to_bounds")


def squashed_gaussian_head(action_dim: int, init: str = "fan_in_uniform") -> list[Any]:
    """Mean and log-std of a tanh-squashed Gaussian (SAC): one Dense layer with
    ``2 * action_dim`` outputs, the means first."""
    return [_keras().layers.Dense(2 * action_dim, kernel_initializer=initializer(init, 1.0), name="mean_log_std")]


def deterministic_head(action_dim: int, init: str = "fan_in_uniform") -> list[Any]:
    """Actions in [-1, 1] (TD3, DDPG): a Dense layer with tanh."""
    keras = _keras()
    return [keras.layers.Dense(action_dim, activation="tanh", kernel_initializer=initializer(init, 1.0), name="action")]


def count_params(model: Any) -> int:
    return int(sum(np.prod(w.shape) for w in model.weights))
