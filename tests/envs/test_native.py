"""The TensorFlow-native classic-control envs against Gymnasium's own code, step for step."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from kerasdojo import backend
from kerasdojo.envs import native
from kerasdojo.errors import DojoError

TRANSITIONS = 10_000
# Boxes to draw states from, so that every kind of step (terminations included) is compared,
# not only those a random policy reaches.


STATE_BOXES = {
    "CartPole-v1": [2.4, 2.0, 0.21, 2.0],
    "Acrobot-v1": [math.pi, math.pi, 4 * math.pi, 9 * math.pi],
    "MountainCar-v0": [(-1.2, 0.6), 0.07],
    "MountainCarContinuous-v0": [(-1.2, 0.6), 0.07],
    "Pendulum-v1": [math.pi, 8.0],
}


def time_limit(env: gym.Env) -> gym.wrappers.TimeLimit:
    while not isinstance(env, gym.wrappers.TimeLimit):
        env = env.env
    return env


def gymnasium_transitions(env_id: str, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` transitions of Gymnasium's env under random actions: the state and step count
    before each step, the action, and what Gymnasium returned. One step in ten starts one
    step before the time limit, so truncations (and steps that both terminate and
    truncate) are among them; one in five starts from a state drawn from a box around
    the whole state space, so terminations are; Box actions reach past the bounds, to
    test the clipping."""
    env = gym.make(env_id)
    limit = time_limit(env)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    space = env.action_space
    out: dict[str, list] = {k: [] for k in ("state", "t", "action", "obs", "reward", "terminated", "truncated")}
    while len(out["state"]) < n:
        if rng.random() < 0.1:
            limit._elapsed_steps = limit._max_episode_steps - 1
        if rng.random() < 0.2:
            state = np.asarray(env.unwrapped.state)
            bounds = [b if isinstance(b, tuple) else (-b, b) for b in STATE_BOXES[env_id]]
            env.unwrapped.state = np.array([rng.uniform(lo, hi) for lo, hi in bounds], state.dtype)
        if isinstance(space, gym.spaces.Discrete):
            action = int(rng.integers(space.n))
        else:
            action = rng.uniform(1.5 * space.low, 1.5 * space.high).astype(np.float32)
        out["state"].append(np.array(env.unwrapped.state, np.float64))
        out["t"].append(limit._elapsed_steps)
        out["action"].append(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        for key, value in (("obs", obs), ("reward", reward), ("terminated", terminated), ("truncated", truncated)):
            out[key].append(value)
        if terminated or truncated:
            env.reset()
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("env_id", native.native_ids())
def test_native_env_matches_gymnasium(env_id: str) -> None:
    tf = backend.tf()
    data = gymnasium_transitions(env_id, TRANSITIONS)
    env = native.make(env_id)
    action = data["action"].astype(np.int32) if env.discrete else data["action"].reshape(-1, 1)
    rng = tf.random.Generator.from_seed(0)
    # Compiled with XLA, as the trainers run it.
    compiled = tf.function(lambda s, t, a: native.step(env, s, t, a, rng), jit_compile=True)
    out = compiled(tf.constant(data["state"], env.dtype), tf.constant(data["t"], tf.int32), tf.constant(action))
    np.testing.assert_allclose(out.final_obs.numpy(), data["obs"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(out.reward.numpy(), data["reward"], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(out.terminated.numpy(), data["terminated"])
    np.testing.assert_array_equal(out.truncated.numpy(), data["truncated"])
    assert data["truncated"].sum() > 100  # both kinds of episode end were compared
    assert data["terminated"].sum() > 100 or env_id == "Pendulum-v1"  # which never terminates
    # The autoreset: finished envs start again at t = 0 from a reset state.
    done = data["terminated"] | data["truncated"]
    np.testing.assert_array_equal(out.t.numpy()[done], 0)
    np.testing.assert_array_equal(out.t.numpy()[~done], data["t"][~done] + 1)
    np.testing.assert_array_equal(out.obs.numpy()[~done], out.final_obs.numpy()[~done])
    space = gym.make(env_id).observation_space
    assert all(space.contains(o) for o in out.obs.numpy()[done])


# Gymnasium's reset distributions (uniform within these bounds, per state component).
RESET_BOXES = {
    "CartPole-v1": ([-0.05] * 4, [0.05] * 4),
    "Acrobot-v1": ([-0.1] * 4, [0.1] * 4),
    "MountainCar-v0": ([-0.6, 0.0], [-0.4, 0.0]),
    "MountainCarContinuous-v0": ([-0.6, 0.0], [-0.4, 0.0]),
    "Pendulum-v1": ([-math.pi, -1.0], [math.pi, 1.0]),
}


@pytest.mark.parametrize("env_id", native.native_ids())
def test_native_resets_draw_from_gymnasiums_distribution(env_id: str) -> None:
    tf = backend.tf()
    low, high = (np.array(b) for b in RESET_BOXES[env_id])
    gym_env = gym.make(env_id)
    for seed in range(50):  # the boxes above are Gymnasium's
        gym_env.reset(seed=seed)
        state = np.asarray(gym_env.unwrapped.state, np.float64)
        assert np.all(state >= low - 1e-7) and np.all(state <= high + 1e-7)
    states = native.make(env_id).initial(tf.random.Generator.from_seed(1), 20_000).numpy()
    assert np.all(states >= low) and np.all(states <= high)
    width = high - low
    np.testing.assert_allclose(states.mean(axis=0), (low + high) / 2, atol=0.02 * width.max())
    np.testing.assert_allclose(states.std(axis=0), width / math.sqrt(12), atol=0.02 * width.max())


def test_unknown_native_env_names_the_ones_there_are() -> None:
    with pytest.raises(DojoError) as info:
        native.make("LunarLander-v3")
    assert "CartPole-v1" in info.value.hint and "Pendulum-v1" in info.value.hint
