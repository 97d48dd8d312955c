from __future__ import annotations

import numpy as np
import pytest

from kerasdojo.agents.buffers import ReplayBuffer
from kerasdojo.agents.onpolicy import gae as compute_gae
from kerasdojo.agents.rules import linear, schedule
from kerasdojo.observations import ObsSpec


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
    buf = ReplayBuffer(5, ObsSpec.box((2,), np.uint8))
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
    buf = ReplayBuffer(100, ObsSpec.box((3,), np.float32))
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
        ReplayBuffer(4, ObsSpec.box((1,), np.float32)).sample(np.random.default_rng(0), 2)


def test_replay_state_round_trip() -> None:
    buf = ReplayBuffer(8, ObsSpec.box((2,), np.float32))
    buf.add(np.ones((3, 2)), np.array([0, 1, 0]), np.ones(3), np.ones((3, 2)), np.array([0, 0, 1]))
    arrays, meta = buf.state()
    other = ReplayBuffer(8, ObsSpec.box((2,), np.float32))
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


def frame_stream(n_envs: int, steps: int, seed: int = 0):
    """Vector steps as a next-step-autoreset env produces them: (obs, action, reward, next_obs,
    terminated, valid); the call after an episode end is a reset (invalid) whose observation is
    the episode's true last one. Observations are uint8 'frames' numbered by step and env."""
    rng = np.random.default_rng(seed)
    obs = np.zeros((n_envs, 2, 3), np.uint8)
    done = np.zeros(n_envs, bool)
    out = []
    for t in range(steps):
        next_obs = ((t + 1) * 7 + np.arange(n_envs)[:, None, None] * 3 + np.zeros((1, 2, 3))).astype(np.uint8)
        terminated = rng.random(n_envs) < 0.1
        truncated = rng.random(n_envs) < 0.05
        valid = ~done
        terminated &= valid
        out.append(
            (
                obs.copy(),
                rng.integers(0, 4, n_envs),
                rng.normal(size=n_envs).astype(np.float32),
                next_obs,
                terminated.astype(np.float32),
                valid,
            )
        )
        done = (terminated > 0) | (truncated & valid)
        obs = next_obs
    return out


def test_compact_replay_holds_the_same_transitions_as_the_plain_one() -> None:
    from kerasdojo.agents.buffers import CompactReplayBuffer

    stream = frame_stream(n_envs=3, steps=200)
    plain = ReplayBuffer(10_000, ObsSpec.box((2, 3), np.uint8))
    compact = CompactReplayBuffer(10_000, 3, ObsSpec.box((2, 3), np.uint8))
    for step in stream:
        plain.add_step(*step)
        compact.add_step(*step)
    got = compact.transitions()
    n = len(plain)
    assert len(compact) == n and n < 3 * 200  # the reset calls are not transitions
    # The plain buffer stores each vector step's valid envs in env order; so does compact.
    for name in ("obs", "actions", "rewards", "next_obs", "terminated"):
        np.testing.assert_array_equal(getattr(got, name), getattr(plain, name)[:n], err_msg=name)
    # Half the observation memory: o' is never stored twice.
    assert compact.obs.nbytes + compact.last_next_obs.nbytes < 0.6 * (plain.obs.nbytes + plain.next_obs.nbytes)


def test_compact_replay_sampling_wrapping_and_state() -> None:
    from kerasdojo.agents.buffers import CompactReplayBuffer

    stream = frame_stream(n_envs=2, steps=300, seed=1)
    compact = CompactReplayBuffer(100, 2, ObsSpec.box((2, 3), np.uint8))  # 50 rows: wraps 6 times
    everything = ReplayBuffer(10_000, ObsSpec.box((2, 3), np.uint8))
    for step in stream:
        compact.add_step(*step)
        everything.add_step(*step)
    known = {
        (everything.obs[i].tobytes(), everything.next_obs[i].tobytes(), float(everything.rewards[i]))
        for i in range(len(everything))
    }
    batch = compact.sample(np.random.default_rng(0), 32, k=4)
    assert batch.obs.shape == (4, 32, 2, 3) and batch.next_obs.dtype == np.uint8
    for o, o2, r in zip(
        batch.obs.reshape(-1, 2, 3), batch.next_obs.reshape(-1, 2, 3), batch.rewards.ravel(), strict=True
    ):
        assert (o.tobytes(), o2.tobytes(), float(r)) in known  # a real transition, never a reset call
    newest = compact.transitions()
    assert (newest.next_obs[-1] == stream[-1][3][1]).all()  # the newest row's o' is kept apart
    arrays, meta = compact.state()
    restored = CompactReplayBuffer(100, 2, ObsSpec.box((2, 3), np.uint8))
    restored.load_state(arrays, meta)
    # A restored buffer is followed by a reset env: its newest o' moves into an invalid marker row
    # (which takes the oldest row's place when full), so a new episode's start never becomes it.
    restored.add_step(*frame_stream(n_envs=2, steps=1, seed=9)[0])
    kept = restored.transitions()
    n_old = len(kept.obs) - 2
    for a, b in zip(kept, newest, strict=True):
        if a is not None:
            np.testing.assert_array_equal(a[:n_old], b[len(b) - n_old :])


def test_dqn_checkpoint_keeps_the_compact_replay_buffer() -> None:
    import gymnasium

    from kerasdojo.agents.dqn import DQN, DQNConfig

    cfg = DQNConfig(n_envs=2, buffer_size=100, optimize_memory_usage=True, net_arch=(8,))
    agent = DQN(cfg, ObsSpec.box((2, 3), np.float32), gymnasium.spaces.Discrete(4), 0)
    for step in frame_stream(n_envs=2, steps=30):
        agent.buffer.add_step(*step)
    arrays, meta = agent.extra_state()
    again = DQN(cfg, ObsSpec.box((2, 3), np.float32), gymnasium.spaces.Discrete(4), 0)
    again.load_extra_state(arrays, meta)
    assert len(again.buffer) == len(agent.buffer) > 40
    plain = DQN(
        DQNConfig(n_envs=2, buffer_size=100, net_arch=(8,)),
        ObsSpec.box((2, 3), np.float32),
        gymnasium.spaces.Discrete(4),
        0,
    )
    from kerasdojo.errors import DojoError

    with pytest.raises(DojoError, match="Cannot restore the replay buffer"):
        plain.load_extra_state(arrays, meta)


def test_replay_memory_is_reported_and_a_buffer_that_does_not_fit_is_refused(monkeypatch) -> None:
    from kerasdojo.agents import buffers
    from kerasdojo.errors import DojoError

    line = buffers.check_replay_memory(100_000, ObsSpec.box((4, 84, 84), np.uint8), compact=True)
    assert "100,000 observations of (4, 84, 84) uint8, each stored once: 2.63 GiB" in line
    assert buffers.replay_memory(100_000, ObsSpec.box((4, 84, 84), np.uint8)) == 2 * buffers.replay_memory(
        100_000, ObsSpec.box((4, 84, 84), np.uint8), compact=True
    )
    monkeypatch.setattr(buffers, "available_memory", lambda: 2 * 2**30)
    with pytest.raises(DojoError, match=r"needs 5.3 GiB; 2.0 GiB is available") as info:
        buffers.check_replay_memory(100_000, ObsSpec.box((4, 84, 84), np.uint8), can_compact=True)
    assert "optimize_memory_usage=true" in info.value.hint
