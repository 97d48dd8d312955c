from __future__ import annotations

import numpy as np
import pytest

from kerasdojo import backend, networks
from kerasdojo.agents.acting import NumpyForward
from kerasdojo.agents.speed import resolve_precision


@pytest.fixture(scope="module")
def keras():
    return backend.keras()


def test_mlp_shapes_and_params(keras) -> None:
    model = networks.mlp((28, 28, 1), hidden=(512, 512), activation="relu", dropout=0.2, output_dim=10)
    assert model.output_shape == (None, 10)
    assert networks.count_params(model) == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10  # 669,706
    assert sum(isinstance(layer, keras.layers.Dropout) for layer in model.layers) == 2
    small = networks.mlp(4, hidden=(64, 64), output_dim=2)
    assert networks.count_params(small) == 4 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2
    with pytest.raises(ValueError, match="activation"):
        networks.mlp(4, activation="swishy")


def test_orthogonal_init_uses_gain(keras) -> None:
    model = networks.mlp(64, hidden=(64,), init="orthogonal", gain=2.0, output_dim=64, output_gain=0.5)
    hidden = model.layers[0].kernel.numpy()
    out = model.layers[1].kernel.numpy()
    np.testing.assert_allclose(hidden.T @ hidden, 4.0 * np.eye(64), atol=1e-4)
    np.testing.assert_allclose(out.T @ out, 0.25 * np.eye(64), atol=1e-4)


def test_fan_in_uniform_is_pytorch_linear_default(keras) -> None:
    model = networks.mlp(16, hidden=(256,), init="fan_in_uniform", output_dim=2)
    for layer, fan_in in ((model.layers[0], 16), (model.layers[1], 256)):
        kernel = layer.kernel.numpy()
        bound = 1.0 / np.sqrt(fan_in)
        assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.9 * bound
    with pytest.raises(ValueError, match="fan_in_uniform"):
        networks.initializer("uniformish")


def test_mnist_cnn_matches_keras_example_size(keras) -> None:
    model = networks.mnist_cnn()
    assert model.output_shape == (None, 10)
    assert networks.count_params(model) == 1_199_882


def test_nature_cnn_torso(keras) -> None:
    model = networks.nature_cnn((84, 84, 4))
    assert model.output_shape == (None, 512)
    assert networks.count_params(model) == 8_224 + 32_832 + 36_928 + 3_136 * 512 + 512
    frames = np.random.default_rng(0).integers(0, 256, (2, 84, 84, 4)).astype(np.uint8)
    assert model(frames).shape == (2, 512)


def test_torso_picks_cnn_for_images() -> None:
    image = networks.torso_layers((84, 84, 4), np.uint8, (512,), "relu")
    flat = networks.torso_layers((4,), np.float32, (64, 64), "tanh")
    assert any("conv" in layer.name for layer in image)
    assert [layer.units for layer in flat] == [64, 64]


def test_float32_twin_has_the_weights_and_float32_math(keras) -> None:
    torso = networks.torso_layers((4, 84, 84), np.uint8, (64,), "relu", cnn_dtype="mixed_bfloat16")
    model = networks.build((4, 84, 84), torso + networks.q_head(3), "q", "uint8")
    twin = networks.float32_twin(model)
    assert model.get_layer("conv_0").compute_dtype == "bfloat16"
    assert {layer.compute_dtype for layer in twin.layers} == {"float32"} and twin.inputs[0].dtype == "uint8"
    for a, b in zip(model.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    frames = np.random.default_rng(0).integers(0, 256, (4, 4, 84, 84), dtype=np.uint8)
    exact, rounded = twin(frames).numpy(), model(frames).numpy()
    assert rounded.dtype == np.float32 and not np.array_equal(exact, rounded)  # bfloat16 math rounds
    np.testing.assert_allclose(rounded, exact, atol=0.02 * np.abs(exact).max())


def test_precision_auto_follows_native_bfloat16(monkeypatch) -> None:
    from kerasdojo import backend

    monkeypatch.setattr(backend, "devices", lambda: [{"name": "cpu", "type": "CPU"}])
    monkeypatch.setattr(backend, "_cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert resolve_precision("auto") == ("mixed_bfloat16", "the CPU has AVX512_BF16")
    monkeypatch.setattr(backend, "_cpu_flags", lambda: {"avx2", "avx512f"})
    assert resolve_precision("auto")[0] == "float32"
    assert resolve_precision("mixed_bfloat16")[0] == "mixed_bfloat16"  # as set, native or not
    gpus = [{"name": "gpu", "type": "GPU", "compute_capability": "7.5"}]
    monkeypatch.setattr(backend, "devices", lambda: gpus)  # a T4: no native bfloat16
    monkeypatch.setattr(backend, "_cpu_flags", lambda: {"avx512_bf16"})
    assert resolve_precision("auto")[0] == "float32"
    gpus[0]["compute_capability"] = "9.0"
    assert resolve_precision("auto") == ("mixed_bfloat16", "the GPU does bfloat16 natively")


def test_auto_precision_is_bfloat16_for_the_nature_cnn_only(monkeypatch) -> None:
    from kerasdojo import backend
    from kerasdojo.agents.speed import cnn_precision

    monkeypatch.setattr(backend, "native_bfloat16", lambda: (True, "the CPU has AVX512_BF16"))
    notes: list[str] = []
    assert cnn_precision("auto", (4, 84, 84), np.uint8, notes) == "mixed_bfloat16"
    assert notes and "the CPU has AVX512_BF16" in notes[0]
    assert cnn_precision("auto", (1, 15, 15), np.uint8, []) == "float32"  # the small CNN: casts cost more
    assert cnn_precision("mixed_bfloat16", (1, 15, 15), np.uint8, []) == "mixed_bfloat16"  # as set
    assert cnn_precision("mixed_bfloat16", (4,), np.float32, []) == "float32"  # no CNN, no bfloat16
    assert cnn_precision("float32", (4, 84, 84), np.uint8, []) == "float32"
    monkeypatch.setattr(backend, "native_bfloat16", lambda: (False, "the CPU has no native bfloat16"))
    assert cnn_precision("auto", (4, 84, 84), np.uint8, []) == "float32"


def test_heads(keras) -> None:
    obs = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    q = networks.build((4,), networks.mlp_layers((8,)) + networks.q_head(3), "q")
    assert q(obs).shape == (5, 3)
    logits = networks.build((4,), networks.mlp_layers((8,)) + networks.categorical_head(6), "pi")
    assert logits(obs).shape == (5, 6)
    value = networks.build((4,), networks.mlp_layers((8,)) + networks.value_head(), "v")
    assert value(obs).shape == (5, 1)
    mean_layers, log_std = networks.gaussian_head(2, log_std_init=-0.5)
    mean = networks.build((4,), networks.mlp_layers((8,)) + mean_layers, "mu")
    assert mean(obs).shape == (5, 2)
    assert log_std.shape == (2,) and np.allclose(log_std.numpy(), -0.5) and log_std.trainable


def test_dueling_head_is_v_plus_centred_advantage(keras) -> None:
    model = networks.build((4,), networks.mlp_layers((8,)) + networks.dueling_q_head(3), "dq")
    obs = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    hidden = obs
    for layer in model.layers[:-1]:
        hidden = layer(hidden)
    av = np.asarray(hidden)  # [A_1, A_2, A_3, V]
    adv, v = av[:, :3], av[:, 3:]
    np.testing.assert_allclose(model(obs), v + adv - adv.mean(axis=1, keepdims=True), atol=1e-5)
    combine = model.layers[-1]
    assert not combine.trainable and len(model.trainable_weights) == 4  # 8-unit layer + A/V layer


def test_numpy_forward_matches_keras(keras) -> None:
    model = networks.mlp((2, 3), hidden=(16, 16), activation="tanh", output_dim=4)
    copy = NumpyForward.of(model)
    assert copy is not None
    x = np.random.default_rng(2).standard_normal((7, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(copy(x), model(x).numpy(), atol=1e-5)
    model.layers[-1].kernel.assign(model.layers[-1].kernel.numpy() * 2)
    copy.refresh()
    np.testing.assert_allclose(copy(x), model(x).numpy(), atol=1e-5)
    assert NumpyForward.of(networks.mnist_cnn()) is None
