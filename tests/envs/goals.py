"""Small environments that report success, as goal-reaching environments do.

Import them as ``tests.envs.goals:ClassName`` from the repository root.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["SuccessEnv"]


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
