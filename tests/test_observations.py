"""Every Gymnasium space as agents see it: leaves, encodings, encoders, nested buffers, named inputs."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from kerasdojo.errors import DojoError
from kerasdojo.observations import ObsSpec

NESTED = spaces.Dict(
    {
        "image": spaces.Box(0, 255, (12, 12, 3), np.uint8),
        "agent": spaces.Dict({"pos": spaces.Box(-1, 1, (2,), np.float64), "dir": spaces.Discrete(4, start=1)}),
        "keys": spaces.MultiDiscrete([2, 3]),
        "flags": spaces.MultiBinary(3),
        "mission": spaces.Text(10),
    }
)


def test_a_nested_space_becomes_named_leaves_and_text_is_left_out_with_a_note() -> None:
    spec = ObsSpec.of(NESTED)
    assert spec.nested
    assert [(leaf.name, leaf.shape, leaf.dtype.name) for leaf in spec.leaves] == [  # Gymnasium sorts Dict keys
        ("agent.dir", (4,), "float32"),
        ("agent.pos", (2,), "float32"),
        ("flags", (3,), "float32"),
        ("image", (12, 12, 3), "uint8"),
        ("keys", (5,), "float32"),
    ]
    assert spec.skipped == ("mission",)
    assert spec.notes() == ["observation leaves left out (Text, which kerasdojo does not encode): mission"]
    assert [leaf.normalizable for leaf in spec.leaves] == [False, True, False, False, False]  # float Box leaves
    assert spec.nbytes() == 12 * 12 * 3 + 4 * (2 + 4 + 5 + 3)
    tuple_spec = ObsSpec.of(spaces.Tuple((spaces.Discrete(3), spaces.Box(-1, 1, (2,)))))
    assert [leaf.name for leaf in tuple_spec.leaves] == ["obs_0", "obs_1"]


def test_leaves_are_encoded_as_one_hot_codes_bits_and_arrays() -> None:
    spec = ObsSpec.of(NESTED)
    raw = {
        "image": np.full((2, 12, 12, 3), 7, np.uint8),
        "agent": {"pos": np.array([[0.5, -0.5], [0.0, 1.0]]), "dir": np.array([1, 4])},
        "keys": np.array([[1, 0], [0, 2]]),
        "flags": np.array([[1, 0, 1], [0, 0, 0]], np.int8),
        "mission": ("go", "stay"),
    }
    obs = spec.encode(raw)
    assert set(obs) == {"image", "agent.pos", "agent.dir", "keys", "flags"}
    assert obs["image"].dtype == np.uint8 and obs["agent.pos"].dtype == np.float32
    np.testing.assert_array_equal(obs["agent.dir"], [[1, 0, 0, 0], [0, 0, 0, 1]])  # start=1 taken off
    np.testing.assert_array_equal(obs["keys"], [[0, 1, 1, 0, 0], [1, 0, 0, 0, 1]])  # one-hot per part
    np.testing.assert_array_equal(obs["flags"], [[1, 0, 1], [0, 0, 0]])
    zeros = spec.zeros((3, 2))
    assert {k: v.shape for k, v in zeros.items()}["keys"] == (3, 2, 5)


@pytest.mark.parametrize(
    "space, key",
    [
        (spaces.Dict({"pos": spaces.Box(-1, 1, (2,)), "path": spaces.Sequence(spaces.Box(-1, 1, (2,)))}), "path"),
        (spaces.Dict({"g": spaces.Graph(spaces.Box(-1, 1, (2,)), None)}), "g"),
    ],
)
def test_a_leaf_kerasdojo_cannot_encode_is_a_one_line_error_naming_its_key(space, key) -> None:
    with pytest.raises(DojoError) as info:
        ObsSpec.of(space)
    assert f"its leaf {key!r} is" in str(info.value) and "\n" not in str(info.value)


def test_nested_encoders_give_one_named_input_per_leaf_and_the_expected_shapes() -> None:
    from kerasdojo import networks
    from kerasdojo.encoders import build_nested, encoded_inputs

    spec = ObsSpec.of(NESTED)
    model = build_nested(spec, {"out": networks.mlp_layers((16,), "tanh") + [networks.q_head(3)[0]]}, "m")
    assert [t.name for t in model.inputs] == [leaf.name for leaf in spec.leaves]
    names = [layer.name for layer in model.layers]
    assert "image_conv_0" in names  # 12x12 uint8: the small CNN, one per image leaf
    assert "agent.pos_flatten" in names
    batch = spec.zeros((5,))
    assert model(batch).shape == (5, 3)
    _, features = encoded_inputs(spec)
    assert features.shape[-1] == networks.small_cnn_layers()[-1].units + 2 + 4 + 5 + 3


def test_nested_replay_buffers_round_trip_through_their_state() -> None:
    from kerasdojo.agents.buffers import CompactReplayBuffer, ReplayBuffer

    spec = ObsSpec.of(NESTED)
    rng = np.random.default_rng(0)

    def obs(n: int) -> dict:
        out = spec.zeros((n,))
        for v in out.values():
            v[...] = rng.integers(0, 3, v.shape)
        return out

    for make in (lambda: ReplayBuffer(16, spec, mask_size=4), lambda: CompactReplayBuffer(16, 2, spec, mask_size=4)):
        buf = make()
        for _ in range(5):
            masks = rng.random((2, 4)) < 0.5
            buf.add_step(obs(2), rng.integers(0, 4, 2), rng.random(2), obs(2), np.zeros(2), np.ones(2, bool), masks)
        arrays, meta = buf.state()
        assert "replay/obs/agent.pos" in arrays and arrays["replay/obs/image"].dtype == np.uint8
        again = make()
        again.load_state(arrays, meta)
        # (a compact buffer adds a marker row when restored: compare what it holds, not a sample)
        whole = (lambda b: b.sample(np.random.default_rng(1), 8)) if isinstance(buf, ReplayBuffer) else None
        a, b = (whole(buf), whole(again)) if whole else (buf.transitions(), again.transitions())
        for x, y in zip(a, b, strict=True):
            if isinstance(x, dict):
                for k in x:
                    np.testing.assert_array_equal(x[k], y[k])
            else:
                np.testing.assert_array_equal(x, y)
        assert set(a.obs) == {leaf.name for leaf in spec.leaves} and a.next_masks.shape[-1] == 4


def test_a_replay_buffer_saved_before_masks_loads_with_every_action_legal() -> None:
    from kerasdojo.agents.buffers import ReplayBuffer

    spec = ObsSpec.box((2,))
    old = ReplayBuffer(8, spec)
    old.add(np.ones((3, 2)), np.arange(3), np.ones(3), np.ones((3, 2)), np.zeros(3))
    arrays, meta = old.state()
    assert "replay/next_masks" not in arrays
    new = ReplayBuffer(8, spec, mask_size=3)
    new.load_state(arrays, meta)
    assert new.next_masks[:3].all()
