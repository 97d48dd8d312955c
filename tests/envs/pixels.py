"""A small pixel environment for CNN tests: move to the bright square.

Observations are one ``uint8`` image, channels first ``(1, 3 * cells, 3 * cells)``
as Atari frame stacks are (21x21 for the default 7x7 board): 3x3-pixel cells, the agent's cell at
128, the target's at 255. Actions: 0 up, 1 down, 2 left, 3 right. Reaching the
target gives +1 and ends the episode; every other step costs 0.05; episodes are
truncated after 20 steps. From Manhattan distance ``d`` the best return is
``1 - 0.05 (d - 1)``, which ``info["optimal_return"]`` reports at reset.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

PX = 3
MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])


class ReachSquare(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, cells: int = 7, max_steps: int = 20, render_mode: str | None = None) -> None:
        self.cells, self.max_steps, self.render_mode = cells, max_steps, render_mode
        self.observation_space = spaces.Box(0, 255, (1, cells * PX, cells * PX), np.uint8)
        self.action_space = spaces.Discrete(4)
        self.agent = np.zeros(2, np.int64)
        self.target = np.zeros(2, np.int64)
        self.t = 0

    def _obs(self) -> np.ndarray:
        img = np.zeros((self.cells * PX, self.cells * PX), np.uint8)
        for (r, c), value in ((self.target, 255), (self.agent, 128)):
            img[r * PX : (r + 1) * PX, c * PX : (c + 1) * PX] = value
        return img[None]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.target = self.np_random.integers(0, self.cells, 2)
        self.agent = self.target
        while (self.agent == self.target).all():
            self.agent = self.np_random.integers(0, self.cells, 2)
        self.t = 0
        d = int(np.abs(self.agent - self.target).sum())
        return self._obs(), {"optimal_return": 1.0 - 0.05 * (d - 1)}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.agent = np.clip(self.agent + MOVES[int(action)], 0, self.cells - 1)
        self.t += 1
        reached = bool((self.agent == self.target).all())
        reward = 1.0 if reached else -0.05
        return self._obs(), reward, reached, self.t >= self.max_steps, {}

    def render(self) -> np.ndarray:
        return np.repeat(self._obs()[0][:, :, None], 3, axis=2)
