from __future__ import annotations

import numpy as np
import pytest

from kerasdojo.agents.base import linear, schedule
from kerasdojo.agents.buffers import ReplayBuffer, compute_gae


def gae(terminated=(0, 0, 0), truncated=(0, 0, 0)):
    col = lambda v, dtype=np.float32: np.array(v, dtype)[:, None]  # noqa: E731
    return compute_gae(
        col([1.0, 1.0, 1.0]),
        col([0.5, 0.4, 0.3]),
        col([0.4, 0.3, 0.2]),
        col(terminated, bool),
        col(truncated, bool),
        gamma=0.9,
        lam=0.8,
    )


def test_gae_by_hand_no_episode_end() -> None:
    # deltas: 1 + .9*.4 - .5 = .86, 1 + .9*.3 - .4 = .87, 1 + .9*.2 - .3 = .88; gamma*lam = .72
    adv, ret = gae()
    np.testing.assert_allclose(adv[:, 0], [0.86 + 0.72 * (0.87 + 0.72 * 0.88), 0.87 + 0.72 * 0.88, 0.88], atol=1e-6)
    np.testing.assert_allclose(ret[:, 0], adv[:, 0] + [0.5, 0.4, 0.3], atol=1e-6)


def test_gae_termination_drops_bootstrap_and_cuts_the_trace() -> None:
    adv, _ = gae(terminated=(0, 1, 0))
    # delta_1 = 1 + 0 - .4 = .6 (no bootstrap); A_0 = .86 + .72 * .6
    np.testing.assert_allclose(adv[:, 0], [0.86 + 0.72 * 0.6, 0.6, 0.88], atol=1e-6)


def test_gae_truncation_bootstraps_but_cuts_the_trace() -> None:
    adv, _ = gae(truncated=(0, 1, 0))
    # delta_1 = 1 + .9 * V(last obs) - .4 = .87 (bootstrap kept), but A_1 does not include A_2
    np.testing.assert_allclose(adv[:, 0], [0.86 + 0.72 * 0.87, 0.87, 0.88], atol=1e-6)


def test_gae_lambda_one_gamma_one_is_monte_carlo() -> None:
    r = np.ones((4, 1), np.float32)
    v = np.zeros((4, 1), np.float32)
    adv, ret = compute_gae(r, v, v, np.zeros((4, 1), bool), np.zeros((4, 1), bool), 1.0, 1.0)
    np.testing.assert_allclose(ret[:, 0], [4, 3, 2, 1])


def test_replay_wraps_around_and_keeps_dtypes() -> None:
    buf = ReplayBuffer(5, (2,), np.uint8)
    for i in range(7):
        buf.add(
            np.full((1, 2), i, np.uint8),
            np.array([i % 2]),
            np.array([float(i)]),
            np.full((1, 2), i + 1, np.uint8),
            np.array([i == 6]),
        )
    assert len(buf) == 5 and buf.pos == 2
    assert sorted(buf.rewards.tolist()) == [2, 3, 4, 5, 6]
    assert buf.obs.dtype == np.uint8 and buf.actions.dtype == np.int64 and buf.terminated.dtype == np.float32
    np.testing.assert_array_equal(buf.next_obs[:, 0], buf.obs[:, 0] + 1)
    # a batch that crosses the end wraps too
    buf.add(np.zeros((4, 2), np.uint8), np.zeros(4), np.full(4, -1.0), np.zeros((4, 2), np.uint8), np.zeros(4))
    assert buf.pos == 1 and sorted(buf.rewards.tolist()) == [-1, -1, -1, -1, 6]


def test_replay_sampling_shapes_and_range() -> None:
    buf = ReplayBuffer(100, (3,), np.float32)
    buf.add(
        np.arange(30, dtype=np.float32).reshape(10, 3),
        np.arange(10),
        np.arange(10, dtype=np.float32),
        np.zeros((10, 3), np.float32),
        np.zeros(10),
    )
    batch = buf.sample(np.random.default_rng(0), batch_size=16, k=4)
    assert batch.obs.shape == (4, 16, 3) and batch.actions.shape == (4, 16) and batch.rewards.shape == (4, 16)
    assert batch.rewards.max() <= 9  # only filled slots
    np.testing.assert_array_equal(batch.obs[..., 0] / 3, batch.rewards)  # rows stay aligned
    with pytest.raises(ValueError):
        ReplayBuffer(4, (1,), np.float32).sample(np.random.default_rng(0), 2)


def test_replay_state_round_trip() -> None:
    buf = ReplayBuffer(8, (2,), np.float32)
    buf.add(np.ones((3, 2)), np.array([0, 1, 0]), np.ones(3), np.ones((3, 2)), np.array([0, 0, 1]))
    arrays, meta = buf.state()
    other = ReplayBuffer(8, (2,), np.float32)
    other.load_state(arrays, meta)
    assert other.size == 3 and other.pos == 3 and other.terminated[:3].tolist() == [0, 0, 1]


def test_schedules() -> None:
    assert linear(1.0, 0.05, 0.1, 0.0) == 1.0
    assert linear(1.0, 0.05, 0.1, 0.05) == pytest.approx(0.525)
    assert linear(1.0, 0.05, 0.1, 0.5) == pytest.approx(0.05)
    assert linear(1.0, 0.05, 0.0, 0.0) == 0.05
    assert schedule("constant", 3e-4, 0.9) == 3e-4
    assert schedule("linear", 1e-3, 0.25) == pytest.approx(7.5e-4)
    assert schedule("linear", 1e-3, 1.2) == 0.0
