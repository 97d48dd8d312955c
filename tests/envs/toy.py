"""A tiny environment for tests: walk right along a corridor to reach the goal.

Discrete(n) observations (the position, starting at ``start``), Discrete(2)
actions with ``start=1`` (1 = left, 2 = right), reward 1 at the goal, episode
truncated after ``max_steps``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from kerasdojo.envs.atari import AtariVec


class Corridor(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, length: int = 5, max_steps: int = 20, render_mode: str | None = None) -> None:
        self.length, self.max_steps, self.render_mode = length, max_steps, render_mode
        self.observation_space = spaces.Discrete(length, start=0)
        self.action_space = spaces.Discrete(2, start=1)
        self.pos = 0
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict]:
        super().reset(seed=seed)
        self.pos = int(self.np_random.integers(0, self.length - 1))
        self.t = 0
        return self.pos, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict]:
        assert self.action_space.contains(action), action
        self.pos = int(np.clip(self.pos + (1 if action == 2 else -1), 0, self.length - 1))
        self.t += 1
        terminated = self.pos == self.length - 1
        return self.pos, float(terminated), terminated, self.t >= self.max_steps, {}

    def render(self) -> np.ndarray:
        frame = np.zeros((8, 8 * self.length, 3), np.uint8)
        frame[:, 8 * self.pos : 8 * self.pos + 8] = 255
        return frame


def make_corridor(**kwargs: Any) -> Corridor:
    """A factory entry point (``tests.envs.toy:make_corridor``)."""
    return Corridor(**kwargs)


class Plane(gym.Env):
    """Box(2, 3) observations far from zero (so normalisation matters) and Box(2,) actions:
    reward is minus the distance between the action and the first two observed values / 100."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1000.0, 1000.0, (2, 3), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.t = 0

    def _obs(self) -> np.ndarray:
        return (100.0 + 10.0 * self.np_random.standard_normal((2, 3))).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        self.obs = self._obs()
        return self.obs, {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = -float(np.abs(action - (self.obs[:, 0] - 100.0) / 10.0).sum())
        self.t += 1
        self.obs = self._obs()
        return self.obs, reward, False, self.t >= 10, {}


class ScriptedGames(AtariVec):
    """:class:`~kerasdojo.envs.atari.AtariVec`'s step contract without ale-py: one env playing a
    scripted game (training conventions: a lost life terminates, rewards clipped to their sign,
    the game's score in ``info["raw_reward"]``)."""

    # Per call: raw score, terminated, reset_call (this call restarted a finished game), fire_forced.
    SCRIPT = [
        (3.0, False, False, False),
        (0.0, True, False, False),  # a life lost: the game goes on...
        (0.0, False, False, True),  # ...and this call serves (FIRE) in place of the agent
        (2.0, False, False, False),
        (0.0, True, False, False),  # game over
        (0.0, False, True, False),  # this call restarts the game
        (1.0, False, False, False),
        (0.0, False, False, False),
    ]

    def __init__(self) -> None:  # no emulator: AtariVec's own __init__ starts ale-py's
        from gymnasium.vector import AutoresetMode
        from gymnasium.vector.utils import batch_space

        self.num_envs, self.training = 1, True
        self.single_observation_space = spaces.Box(0, 255, (2, 4, 4), np.uint8)
        self.single_action_space = spaces.Discrete(4)
        self.observation_space = batch_space(self.single_observation_space, 1)
        self.action_space = batch_space(self.single_action_space, 1)
        self.metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_fps": 15}
        self.t = 0

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        self.t = 0
        return np.zeros((1, 2, 4, 4), np.uint8), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        raw, terminated, reset_call, forced = (np.array([v]) for v in self.SCRIPT[self.t % len(self.SCRIPT)])
        self.t += 1
        info = {"raw_reward": raw, "reset_call": reset_call, "fire_forced": forced}
        return np.full((1, 2, 4, 4), self.t, np.uint8), np.sign(raw), terminated, np.array([False]), info

    def close(self) -> None:
        pass
