"""The agent registry. Importing this package is cheap: agent classes load on demand.

Each entry names its module and class, a one-line summary, and the action
spaces it supports, so ``kerasdojo agents`` and ``kerasdojo envs ID`` answer
without importing TensorFlow.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from kerasdojo.errors import DojoError


@dataclass(frozen=True)
class AgentInfo:
    name: str
    module: str
    cls: str
    summary: str
    action_spaces: tuple[str, ...]
    native: str = ""  # "module:Class" of its trainer compiled end to end on TF-native envs (--native)

    def load(self, native: bool = False) -> Any:
        """The agent class (``native``: its compiled trainer; a DojoError when it has none)."""
        if not native:
            return getattr(importlib.import_module(self.module), self.cls)
        if not self.native:
            able = ", ".join(n for n, info in REGISTRY.items() if info.native)
            raise DojoError(f"--native trains {able}; {self.name} has no compiled trainer yet")
        module, cls = self.native.split(":")
        return getattr(importlib.import_module(module), cls)


REGISTRY: dict[str, AgentInfo] = {
    info.name: info
    for info in (
        AgentInfo(
            "ppo",
            "kerasdojo.agents.ppo",
            "PPO",
            "Proximal Policy Optimization: clipped surrogate, GAE, vector envs (Schulman et al. 2017)",
            ("Discrete", "Box", "MultiDiscrete", "MultiBinary"),
            native="kerasdojo.agents.native:NativePPO",
        ),
        AgentInfo(
            "ppo_lstm",
            "kerasdojo.agents.ppo_lstm",
            "PPOLSTM",
            "Recurrent PPO: an LSTM carries memory across steps, for partially observed tasks (sb3-contrib)",
            ("Discrete", "Box", "MultiDiscrete", "MultiBinary"),
        ),
        AgentInfo(
            "dqn",
            "kerasdojo.agents.dqn",
            "DQN",
            "Deep Q-Network with replay, target network, Double DQN, optional dueling head (Mnih et al. 2015)",
            ("Discrete",),
            native="kerasdojo.agents.native:NativeDQN",
        ),
        AgentInfo(
            "a2c",
            "kerasdojo.agents.a2c",
            "A2C",
            "Advantage Actor-Critic: synchronous n-step updates on vector envs, RMSprop (Mnih et al. 2016)",
            ("Discrete", "Box", "MultiDiscrete", "MultiBinary"),
        ),
        AgentInfo(
            "sac",
            "kerasdojo.agents.sac",
            "SAC",
            "Soft Actor-Critic: squashed Gaussian, twin critics, tuned entropy (Haarnoja et al. 2018)",
            ("Box",),
            native="kerasdojo.agents.native_offpolicy:NativeSAC",
        ),
        AgentInfo(
            "td3",
            "kerasdojo.agents.td3",
            "TD3",
            "Twin Delayed DDPG: twin critics, target smoothing, delayed actor (Fujimoto et al. 2018)",
            ("Box",),
            native="kerasdojo.agents.native_offpolicy:NativeTD3",
        ),
        AgentInfo(
            "ddpg",
            "kerasdojo.agents.td3",
            "DDPG",
            "Deep Deterministic Policy Gradient, as TD3 with one critic and no delay (Lillicrap et al. 2016)",
            ("Box",),
            native="kerasdojo.agents.native_offpolicy:NativeDDPG",
        ),
        AgentInfo(
            "random",
            "kerasdojo.agents.random_agent",
            "RandomAgent",
            "Uniformly random actions: the baseline every curve is compared with",
            ("Discrete", "Box", "MultiDiscrete", "MultiBinary"),
        ),
    )
}
AGENT_NAMES = tuple(REGISTRY)


def get(name: str) -> AgentInfo:
    if name not in REGISTRY:
        raise DojoError(f"Unknown agent {name!r}", hint="valid agents: " + ", ".join(AGENT_NAMES))
    return REGISTRY[name]


def supports(name: str, action_space: Any) -> bool:
    return type(action_space).__name__ in get(name).action_spaces


def fitting_agents(observation_space: Any, action_space: Any) -> list[str]:
    """Agents whose action spaces include this one, when kerasdojo can encode the observations
    (every agent reads every space :mod:`kerasdojo.observations` encodes); none when it cannot."""
    from kerasdojo.observations import ObsSpec

    try:
        ObsSpec.of(observation_space)
    except DojoError:
        return []
    return [name for name in AGENT_NAMES if supports(name, action_space)]


def check_supported(name: str, env_id: str, action_space: Any) -> None:
    """A one-line error when ``name`` cannot act in ``action_space``, naming the agents that can."""
    if supports(name, action_space):
        return
    able = [n for n in AGENT_NAMES if supports(n, action_space)]
    raise DojoError(
        f"{name} cannot act in {env_id}: its action space is {action_space}, "
        f"and {name} supports {', '.join(get(name).action_spaces)}",
        hint=f"agents for this env: {', '.join(able)}",
    )
