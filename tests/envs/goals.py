"""Small environments that report success, as goal-reaching environments do.

Import them as ``tests.envs.goals:ClassName`` from the repository root.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["BitFlippingEnv", "SuccessEnv"]


class SuccessEnv(gym.Env):
    """Five steps of a cue in [-1, 1]; action 1 matches a positive cue, 0 a negative one, each
    match pays 1. ``info["is_success"]`` at every step, as Gymnasium-Robotics reports it: whether
    at least ``need`` of the steps so far matched (what counts is its value at the episode's end).
    Optimal: 5 and success every episode; uniform random: 2.5 and success half of the episodes
    with ``need=3``."""

    metadata = {"render_modes": []}

    def __init__(self, length: int = 5, need: int = 3) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.length, self.need = length, need

    def _draw(self) -> np.ndarray:
        self.cue = float(self.np_random.choice([-1.0, 1.0]) * self.np_random.uniform(0.2, 1.0))
        return np.array([self.cue], np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t, self.matched = 0, 0
        return self._draw(), {"is_success": False}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        hit = int(action) == int(self.cue > 0)
        self.matched += hit
        self.t += 1
        info = {"is_success": self.matched >= self.need}
        return self._draw(), float(hit), False, self.t >= self.length, info


class BitFlippingEnv(gym.Env):
    """SB3's bit-flipping goal env (Andrychowicz et al. 2017's test bed): ``n_bits`` bits, each
    action flips one. Dict observations: ``observation`` and ``achieved_goal`` the bits,
    ``desired_goal`` the bits to reach (MultiBinary each); start and goal drawn at random every
    episode, as in the HER paper (SB3 keeps the goal all ones). Reward 0 where the bits equal the
    goal, else -1, from the vectorised :meth:`compute_reward`; terminated on success, truncated
    after ``n_bits`` steps; ``info["is_success"]`` every step. With 10 bits or more a random
    policy almost never succeeds, and neither does DQN without hindsight."""

    metadata = {"render_modes": []}

    def __init__(self, n_bits: int = 10) -> None:
        self.n_bits = n_bits
        bits = spaces.MultiBinary(n_bits)
        self.observation_space = spaces.Dict({"observation": bits, "achieved_goal": bits, "desired_goal": bits})
        self.action_space = spaces.Discrete(n_bits)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"observation": self.state.copy(), "achieved_goal": self.state.copy(), "desired_goal": self.goal.copy()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.state = self.np_random.integers(0, 2, self.n_bits).astype(np.int8)
        self.goal = self.np_random.integers(0, 2, self.n_bits).astype(np.int8)
        self.t = 0
        return self._obs(), {"is_success": False}

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any) -> np.ndarray:
        """0 where the goals match, -1 elsewhere, over the last axis (batches of goals too)."""
        distance = np.abs(np.asarray(achieved_goal, np.float32) - np.asarray(desired_goal, np.float32)).sum(axis=-1)
        return -(distance > 0).astype(np.float32)

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        self.state[int(action)] ^= 1
        self.t += 1
        reward = float(self.compute_reward(self.state, self.goal, None))
        success = reward == 0.0
        return self._obs(), reward, success, self.t >= self.n_bits, {"is_success": success}
