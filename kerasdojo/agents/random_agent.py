"""The random agent: uniformly random actions, the baseline every curve is compared with."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from kerasdojo.agents.base import Agent, AgentConfig
from kerasdojo.config import option


@dataclasses.dataclass(frozen=True)
class RandomConfig(AgentConfig):
    kind: ClassVar[str] = "random"

    n_steps: int = option(256, "Vector steps per learn() call (only sets the logging rhythm).", low=1)


class RandomAgent(Agent):
    name = "random"
    Config = RandomConfig

    def __init__(
        self, cfg: RandomConfig, obs_shape: tuple[int, ...], obs_dtype: Any, action_space: Any, seed: int
    ) -> None:
        super().__init__(cfg, obs_shape, obs_dtype, action_space, seed)
        self.cfg: RandomConfig = cfg
        self.action_space.seed(seed)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        from gymnasium import spaces

        if isinstance(self.action_space, spaces.Discrete):  # indices; the env wrapper adds ``start``
            return self.rng.integers(0, int(self.action_space.n), len(obs))
        return np.stack([self.action_space.sample() for _ in range(len(obs))])

    def learn(self, env: Any, step: int, total_steps: int) -> tuple[int, dict[str, float]]:
        for _ in range(self.cfg.n_steps):
            env.step(self.act(env.obs))
        return self.cfg.n_steps * env.num_envs, {}

    def extra_state(self, buffers: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"rng/action_space": self.action_space.np_random.bit_generator.state}

    def load_extra_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        if "rng/action_space" in meta:
            self.action_space.np_random.bit_generator.state = meta["rng/action_space"]
