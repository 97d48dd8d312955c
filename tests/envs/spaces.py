"""Small environments over the spaces beyond one Box or Discrete: Dict, Tuple, Text and Sequence
observations, MultiDiscrete and MultiBinary actions, invalid-action masks.

Every env draws a fresh random cue each step from ``self.np_random`` (seeded by ``reset(seed=...)``),
pays for the action that matches the cue, and ends after ``length`` steps (default 10) with
``terminated=False, truncated=True``, so no TimeLimit wrapper is needed. Each docstring states the
optimal return (what a policy that reads the cue perfectly earns per episode) and what a uniform
random policy earns on average. ``render_mode="rgb_array"`` gives a small RGB frame for videos.

Import them as ``tests.envs.spaces:ClassName`` from the repository root.
"""

from __future__ import annotations

import string
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = [
    "DictImageEnv",
    "TupleEnv",
    "MultiDiscreteEnv",
    "MultiBinaryEnv",
    "MaskedEnv",
    "MultiDiscreteMaskedEnv",
    "TextDictEnv",
    "SequenceDictEnv",
    "NestedDictEnv",
]

LOW = 0.2  # cue values are drawn with |x| in [LOW, 1]: the sign is never ambiguous


class _CueEnv(gym.Env):
    """Fixed-length episodes of independent one-step cues; subclasses set the spaces and define
    ``_draw`` (a new cue into ``self``), ``_obs`` (the observation of the cue) and ``_reward``."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, length: int = 10, render_mode: str | None = None) -> None:
        if int(length) < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.length, self.render_mode = int(length), render_mode
        self.t = 0
        self.last_reward: float | None = None

    # -- to define
    def _draw(self) -> None:
        raise NotImplementedError

    def _obs(self) -> Any:
        raise NotImplementedError

    def _reward(self, action: Any) -> float:
        raise NotImplementedError

    def _info(self) -> dict:
        return {}

    # -- helpers
    def _signed(self, positive: bool) -> float:
        """A value uniform in [LOW, 1] (positive) or [-1, -LOW]."""
        magnitude = float(self.np_random.uniform(LOW, 1.0))
        return magnitude if positive else -magnitude

    # -- Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t, self.last_reward = 0, None
        self._draw()
        return self._obs(), self._info()

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        if not self.action_space.contains(action):
            raise ValueError(f"{type(self).__name__}: action {action!r} is not in {self.action_space}")
        reward = float(self._reward(action))
        self.last_reward = reward
        self.t += 1
        self._draw()
        return self._obs(), reward, False, self.t >= self.length, self._info()

    def render(self) -> np.ndarray:
        """A 32x32 frame: the top rows fill left to right with the step count; below, the last
        reward's colour (grey before the first step, green when it was the best, red otherwise)."""
        frame = np.zeros((32, 32, 3), np.uint8)
        frame[:4, : int(round(32 * self.t / self.length))] = 255
        if self.last_reward is None:
            frame[6:] = 96
        elif self.last_reward >= self._best_step_reward():
            frame[6:, :, 1] = 200
        else:
            frame[6:, :, 0] = 200
        return frame

    def _best_step_reward(self) -> float:
        return 1.0


class DictImageEnv(_CueEnv):
    """Dict({"image": Box(0, 255, (36, 36, 1), uint8), "vector": Box(-1, 1, (2,), float32)}), Discrete(4).

    Each step: the image is black with a 10x10 square of 255 somewhere in its left half (a = 0)
    or right half (a = 1); ``vector[0]`` is uniform in [0.2, 1] (b = 1) or [-1, -0.2] (b = 0) and
    ``vector[1]`` is noise in [-1, 1]. Reward 1 when the action is ``2 * a + b``, else 0: both
    leaves are needed. Optimal return = ``length`` (10); a random policy earns ``length / 4``,
    one that reads a single leaf ``length / 2``.
    """

    SIZE, SQUARE = 36, 10

    def __init__(self, length: int = 10, render_mode: str | None = None) -> None:
        super().__init__(length, render_mode)
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (self.SIZE, self.SIZE, 1), np.uint8),
                "vector": spaces.Box(-1.0, 1.0, (2,), np.float32),
            }
        )
        self.action_space = spaces.Discrete(4)
        self.a = self.b = 0
        self.image = np.zeros((self.SIZE, self.SIZE, 1), np.uint8)
        self.vector = np.zeros(2, np.float32)

    def _draw(self) -> None:
        self.a, self.b = (int(v) for v in self.np_random.integers(0, 2, size=2))
        half = self.SIZE // 2
        row = int(self.np_random.integers(0, self.SIZE - self.SQUARE + 1))
        col = int(self.np_random.integers(0, half - self.SQUARE + 1)) + half * self.a
        self.image = np.zeros((self.SIZE, self.SIZE, 1), np.uint8)
        self.image[row : row + self.SQUARE, col : col + self.SQUARE] = 255
        self.vector = np.array([self._signed(self.b == 1), self.np_random.uniform(-1.0, 1.0)], np.float32)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"image": self.image.copy(), "vector": self.vector.copy()}

    def _reward(self, action: Any) -> float:
        return float(int(action) == 2 * self.a + self.b)

    @staticmethod
    def optimal_action(obs: dict[str, np.ndarray]) -> int:
        a = int(obs["image"][:, DictImageEnv.SIZE // 2 :].max() > 0)
        return 2 * a + int(obs["vector"][0] > 0)

    def render(self) -> np.ndarray:
        """The current image in grey over a 4-row bar (green: last action right, red: wrong)."""
        frame = np.zeros((self.SIZE + 4, self.SIZE, 3), np.uint8)
        frame[: self.SIZE] = self.image
        if self.last_reward is not None:
            frame[self.SIZE :, :, 1 if self.last_reward > 0 else 0] = 200
        return frame


class TupleEnv(_CueEnv):
    """Tuple((Discrete(3), Box(-1, 1, (2,), float32))), Discrete(6).

    The correct action is ``2 * d + (box[0] > 0)`` where ``d`` is the Discrete part and
    ``|box[0]| >= 0.2`` (``box[1]`` is noise); reward 1 when correct, else 0.
    Optimal return = ``length`` (10); random: ``length / 6``.
    """

    def __init__(self, length: int = 10, render_mode: str | None = None) -> None:
        super().__init__(length, render_mode)
        self.observation_space = spaces.Tuple((spaces.Discrete(3), spaces.Box(-1.0, 1.0, (2,), np.float32)))
        self.action_space = spaces.Discrete(6)
        self.d, self.box = 0, np.zeros(2, np.float32)

    def _draw(self) -> None:
        self.d = int(self.np_random.integers(0, 3))
        positive = bool(self.np_random.integers(0, 2))
        self.box = np.array([self._signed(positive), self.np_random.uniform(-1.0, 1.0)], np.float32)

    def _obs(self) -> tuple[int, np.ndarray]:
        return self.d, self.box.copy()

    def _reward(self, action: Any) -> float:
        return float(int(action) == 2 * self.d + int(self.box[0] > 0))

    @staticmethod
    def optimal_action(obs: tuple[int, np.ndarray]) -> int:
        return 2 * int(obs[0]) + int(obs[1][0] > 0)


class MultiDiscreteEnv(_CueEnv):
    """Box(0, 1, (6,), float32), MultiDiscrete([3, 3]).

    The observation is the one-hot of a target ``t0`` in {0, 1, 2} followed by the one-hot of
    ``t1``; reward ``(a0 == t0) + (a1 == t1)`` per step. Optimal return = ``2 * length`` (20);
    random: ``2 * length / 3``.
    """

    def __init__(self, length: int = 10, render_mode: str | None = None) -> None:
        super().__init__(length, render_mode)
        self.observation_space = spaces.Box(0.0, 1.0, (6,), np.float32)
        self.action_space = spaces.MultiDiscrete([3, 3])
        self.targets = np.zeros(2, np.int64)

    def _draw(self) -> None:
        self.targets = self.np_random.integers(0, 3, size=2)

    def _obs(self) -> np.ndarray:
        obs = np.zeros(6, np.float32)
        obs[self.targets[0]] = 1.0
        obs[3 + self.targets[1]] = 1.0
        return obs

    def _reward(self, action: Any) -> float:
        action = np.asarray(action)
        return float(np.sum(action == self.targets))

    def _best_step_reward(self) -> float:
        return 2.0

    @staticmethod
    def optimal_action(obs: np.ndarray) -> np.ndarray:
        return np.array([np.argmax(obs[:3]), np.argmax(obs[3:])], np.int64)


class MultiBinaryEnv(_CueEnv):
    """Box(-1, 1, (4,), float32), MultiBinary(4).

    Each entry of the observation has ``|x| >= 0.2`` and a random sign; reward = the number of
    action bits equal to ``obs > 0``, divided by 4. Optimal return = ``length`` (10); random:
    ``length / 2``.
    """

    def __init__(self, length: int = 10, render_mode: str | None = None) -> None:
        super().__init__(length, render_mode)
        self.observation_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.action_space = spaces.MultiBinary(4)
        self.values = np.zeros(4, np.float32)

    def _draw(self) -> None:
        signs = np.where(self.np_random.integers(0, 2, size=4) == 1, 1.0, -1.0)
        self.values = (signs * self.np_random.uniform(LOW, 1.0, size=4)).astype(np.float32)

    def _obs(self) -> np.ndarray:
        return self.values.copy()

    def _reward(self, action: Any) -> float:
        return float(np.mean(np.asarray(action).astype(bool) == (self.values > 0)))

    @staticmethod
    def optimal_action(obs: np.ndarray) -> np.ndarray:
        return (obs > 0).astype(np.int8)


def _random_mask(rng: np.random.Generator, n: int, p: float = 0.4) -> np.ndarray:
    """Each of ``n`` actions legal with probability ``p``; one picked at random if none was."""
    mask = rng.random(n) < p
    if not mask.any():
        mask[rng.integers(0, n)] = True
    return mask


class MaskedEnv(_CueEnv):
    """Box(-1, 1, (1,), float32) (always zero: it tells nothing), Discrete(n_actions) (5).

    Each step a fresh random non-empty set of legal actions (each legal with probability 0.4,
    one forced legal when none was); reward +1 for a legal action, -1 for an illegal one. The
    mask of the current state (a bool per action) is given

    - ``mask_via="method"``: by ``env.action_masks()`` (sb3-contrib's convention); ``info`` has no mask;
    - ``mask_via="info"``: as ``info["action_mask"]``, an int8 array, from both ``reset`` and
      ``step`` (Gymnasium's Taxi convention); the env then has no ``action_masks`` attribute.

    Optimal return (a policy that honours the mask) = ``length`` (10). Without the mask no
    policy can do better than choosing the action most often legal: about ``-0.2 * length``
    for a uniform random one (each action is legal with probability ~0.42 for n_actions=5).
    """

    def __init__(
        self, mask_via: str = "method", n_actions: int = 5, length: int = 10, render_mode: str | None = None
    ) -> None:
        if mask_via not in ("method", "info"):
            raise ValueError(f"mask_via must be 'method' or 'info', got {mask_via!r}")
        if int(n_actions) < 2:
            raise ValueError(f"n_actions must be >= 2, got {n_actions}")
        super().__init__(length, render_mode)
        self.mask_via, self.n_actions = mask_via, int(n_actions)
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Discrete(self.n_actions)
        self.mask = np.ones(self.n_actions, bool)

    def _draw(self) -> None:
        self.mask = _random_mask(self.np_random, self.n_actions)

    def _obs(self) -> np.ndarray:
        return np.zeros(1, np.float32)

    def _info(self) -> dict:
        return {"action_mask": self.mask.astype(np.int8)} if self.mask_via == "info" else {}

    def _reward(self, action: Any) -> float:
        return 1.0 if self.mask[int(action)] else -1.0

    @property
    def action_masks(self):
        """``action_masks()``: the current state's legal actions (bool), with mask_via="method" only."""
        if self.mask_via != "method":
            raise AttributeError("action_masks: this MaskedEnv gives its mask in info['action_mask'] (mask_via='info')")
        return self._action_masks

    def _action_masks(self) -> np.ndarray:
        return self.mask.copy()


class MultiDiscreteMaskedEnv(_CueEnv):
    """Box(-1, 1, (1,), float32) (always zero), MultiDiscrete([3, 3]).

    Each step each part draws its own random non-empty set of legal values (as MaskedEnv);
    ``action_masks()`` returns the concatenation of the two parts' masks, 6 bools
    (sb3-contrib's convention for MultiDiscrete). Reward +1 per legal part chosen, -1 per illegal
    part. Optimal return = ``2 * length`` (20); a uniform random policy earns about
    ``-0.11 * length``.
    """

    NVEC = (3, 3)

    def __init__(self, length: int = 10, render_mode: str | None = None) -> None:
        super().__init__(length, render_mode)
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = spaces.MultiDiscrete(list(self.NVEC))
        self.masks = [np.ones(n, bool) for n in self.NVEC]

    def _draw(self) -> None:
        self.masks = [_random_mask(self.np_random, n) for n in self.NVEC]

    def _obs(self) -> np.ndarray:
        return np.zeros(1, np.float32)

    def _reward(self, action: Any) -> float:
        return float(sum(1.0 if mask[int(a)] else -1.0 for mask, a in zip(self.masks, np.asarray(action), strict=True)))

    def _best_step_reward(self) -> float:
        return 2.0

    def action_masks(self) -> np.ndarray:
        return np.concatenate(self.masks)


class TextDictEnv(_CueEnv):
    """Dict({"state": Box(-1, 1, (2,), float32), "mission": Text(max_length=20)}), Discrete(2).

    The correct action is ``int(state[0] > 0)`` (``|state[0]| >= 0.2``, ``state[1]`` noise); the
    mission is always the string ``"go right"``, which carries nothing (a learner may drop it).
    Reward 1 when correct. Optimal return = ``length`` (10); random: ``length / 2``.
    """

    MISSION = "go right"

    def __init__(self, length: int = 10, render_mode: str | None = None) -> None:
        super().__init__(length, render_mode)
        self.observation_space = spaces.Dict(
            {
                "state": spaces.Box(-1.0, 1.0, (2,), np.float32),
                "mission": spaces.Text(max_length=20, charset=string.ascii_lowercase + " "),
            }
        )
        self.action_space = spaces.Discrete(2)
        self.state = np.zeros(2, np.float32)

    def _draw(self) -> None:
        positive = bool(self.np_random.integers(0, 2))
        self.state = np.array([self._signed(positive), self.np_random.uniform(-1.0, 1.0)], np.float32)

    def _obs(self) -> dict[str, Any]:
        return {"state": self.state.copy(), "mission": self.MISSION}

    def _reward(self, action: Any) -> float:
        return float(int(action) == int(self.state[0] > 0))

    @staticmethod
    def optimal_action(obs: dict[str, Any]) -> int:
        return int(obs["state"][0] > 0)


class SequenceDictEnv(TextDictEnv):
    """Dict({"state": Box(-1, 1, (2,), float32), "path": Sequence(Box(-1, 1, (2,), float32))}), Discrete(2).

    A variable-length observation leaf that kerasdojo must refuse (with a clear error): the env
    only has to construct, reset and step. ``path`` holds 0 to 3 random points; the correct action
    is ``int(state[0] > 0)`` as in TextDictEnv. Optimal return = ``length`` (10); random:
    ``length / 2``.
    """

    def __init__(self, length: int = 10, render_mode: str | None = None) -> None:
        super().__init__(length, render_mode)
        self.observation_space = spaces.Dict(
            {
                "state": spaces.Box(-1.0, 1.0, (2,), np.float32),
                "path": spaces.Sequence(spaces.Box(-1.0, 1.0, (2,), np.float32)),
            }
        )
        self.path: tuple[np.ndarray, ...] = ()

    def _draw(self) -> None:
        super()._draw()
        n = int(self.np_random.integers(0, 4))
        self.path = tuple(self.np_random.uniform(-1.0, 1.0, size=2).astype(np.float32) for _ in range(n))

    def _obs(self) -> dict[str, Any]:
        return {"state": self.state.copy(), "path": tuple(p.copy() for p in self.path)}


class NestedDictEnv(_CueEnv):
    """Dict({"agent": Dict({"pos": Box(-1, 1, (2,), float32), "dir": Discrete(4)}), "flags": MultiBinary(3)}),
    Discrete(4).

    The correct action is ``obs["agent"]["dir"]``; ``pos`` and ``flags`` are noise. Reward 1 when
    correct. Optimal return = ``length`` (10); random: ``length / 4``.
    """

    def __init__(self, length: int = 10, render_mode: str | None = None) -> None:
        super().__init__(length, render_mode)
        self.observation_space = spaces.Dict(
            {
                "agent": spaces.Dict({"pos": spaces.Box(-1.0, 1.0, (2,), np.float32), "dir": spaces.Discrete(4)}),
                "flags": spaces.MultiBinary(3),
            }
        )
        self.action_space = spaces.Discrete(4)
        self.dir, self.pos, self.flags = 0, np.zeros(2, np.float32), np.zeros(3, np.int8)

    def _draw(self) -> None:
        self.dir = int(self.np_random.integers(0, 4))
        self.pos = self.np_random.uniform(-1.0, 1.0, size=2).astype(np.float32)
        self.flags = self.np_random.integers(0, 2, size=3).astype(np.int8)

    def _obs(self) -> dict[str, Any]:
        return {"agent": {"pos": self.pos.copy(), "dir": self.dir}, "flags": self.flags.copy()}

    def _reward(self, action: Any) -> float:
        return float(int(action) == self.dir)

    @staticmethod
    def optimal_action(obs: dict[str, Any]) -> int:
        return int(obs["agent"]["dir"])
