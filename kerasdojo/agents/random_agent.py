"""The random agent: uniformly random actions, the baseline every curve is compared with."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from kerasdojo.agents.base import Agent, AgentConfig
from kerasdojo.config import option
from kerasdojo.observations import ObsSpec, batch_size


@dataclasses.dataclass(frozen=True)
class RandomConfig(AgentConfig):
    kind: ClassVar[str] = "random"

    n_steps: int = option(256, "Vector steps per learn() call (only sets the logging rhythm).", low=1)


class RandomAgent(Agent):
    name = "random"
    Config = RandomConfig

    def __init__(self, cfg: RandomConfig, obs_spec: ObsSpec, action_space: Any, seed: int) -> None:
        super().__init__(cfg, obs_spec, action_space, seed)
        self.cfg: RandomConfig = cfg
        self.action_space.seed(seed)

    def act(self, obs: Any, deterministic: bool = True, mask: np.ndarray | None = None) -> np.ndarray:
        from gymnasium import spaces

        n = batch_size(obs)
        space = self.action_space
        if mask is not None and self.cfg.use_masks:  # uniform over the legal actions (indices, start added by the env)
            sizes = [int(space.n)] if isinstance(space, spaces.Discrete) else [int(k) for k in space.nvec.ravel()]
            parts = np.split(self.rng.random((n, sum(sizes))) * mask, np.cumsum(sizes)[:-1], axis=1)
            actions = np.stack([p.argmax(axis=1) for p in parts], axis=1)
            return actions[:, 0] if isinstance(space, spaces.Discrete) else actions
        if isinstance(space, spaces.Discrete):  # indices; the env wrapper adds ``start``
            return self.rng.integers(0, int(space.n), n)
        if isinstance(space, spaces.MultiDiscrete):  # indices per part; the env wrapper adds ``start``
            return np.stack([space.np_random.integers(0, space.nvec) for _ in range(n)])
        return np.stack([space.sample() for _ in range(n)])

    def learn(self, env: Any, step: int, total_steps: int) -> tuple[int, dict[str, float]]:
        for _ in range(self.cfg.n_steps):
            env.step(self.act(env.obs, mask=env.action_mask))
        return self.cfg.n_steps * env.num_envs, {}

    def extra_state(self, buffers: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"rng/action_space": self.action_space.np_random.bit_generator.state}

    def load_extra_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        if "rng/action_space" in meta:
            self.action_space.np_random.bit_generator.state = meta["rng/action_space"]
