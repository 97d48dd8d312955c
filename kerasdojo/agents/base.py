"""The agent contract: what an algorithm provides so that one loop trains them all.

An algorithm is one file with a config dataclass and an :class:`Agent` subclass,
plus an entry in the registry (``agents/__init__.py``) and presets
(``agents/presets.py``). The loop (:mod:`kerasdojo.training.loop`) calls only
``begin`` once and then ``learn`` until the step budget is spent; evaluation
calls ``act``; checkpoints (:mod:`kerasdojo.training.checkpoint`) save and
restore what the agent names. So an agent provides:

* ``__init__(cfg, obs_spec, action_space, seed)``: its networks (``obs_spec``, an
  :class:`~kerasdojo.observations.ObsSpec`, says what the observations are: one array, or
  for Dict and Tuple spaces a dict of arrays, one per leaf),
  one optimizer per network (or per loss), and its compiled update;
* ``act(obs, deterministic, mask)``: actions for a batch of observations (NumPy in,
  NumPy out; indices for Discrete spaces, unclipped arrays for Box ones); ``mask``, the
  env's legal actions (one row per env, or None), is respected by agents that can;
* ``learn(env, step, total_steps) -> (env_steps, scalars)``: collect from the
  vector env and update once. On-policy agents (PPO, A2C) collect a rollout
  and run every epoch of their update; off-policy agents (DQN, SAC, TD3)
  collect ``train_freq`` steps into their replay buffer and run their gradient
  steps. ``scalars`` use SB3's TensorBoard tags (``train/...``);
* what a checkpoint holds, by name: ``networks()`` (target networks too),
  ``optimizers()``, ``variables()`` (trainable tensors outside the networks: a
  Gaussian log-std, SAC's log entropy coefficient), and ``extra_state(buffers)``
  / ``load_extra_state`` for the rest (replay buffer, counters, exploration
  noise state); the checkpoint adds the RNG states and the update count;
* ``policy_model()``: the Keras model a user keeps (``policy.keras``), or None;
* ``refresh()``: called after weights change outside an update (a checkpoint
  loaded), to refresh any NumPy copy used for acting;
* ``supports_normalization``: False for agents whose replay buffer would mix
  observations scaled by different running statistics.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from kerasdojo import backend
from kerasdojo.agents.speed import PRECISIONS
from kerasdojo.config import option, validate
from kerasdojo.encoders import representative
from kerasdojo.networks import ACTIVATIONS
from kerasdojo.observations import ObsSpec


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """Fields every agent has; presets and --set may change any of them."""

    kind: ClassVar[str] = "agent"

    n_envs: int = option(1, "Environments stepped in parallel (one vector env).", low=1)
    total_steps: int = option(100_000, "Environment steps to train for (summed over envs).", low=1)
    normalize_obs: bool = option(False, "Standardise observations with running statistics (saved with the agent).")
    normalize_reward: bool = option(False, "Scale rewards by the running std of the discounted return.")
    net_arch: tuple[int, ...] = option((64, 64), "Hidden layer widths of each network.", low=1)
    activation: str = option("tanh", "Hidden activation.", choices=ACTIVATIONS)
    jit_compile: bool = option(True, "Compile the update with XLA (faster on CPU and GPU).")
    fast_act: bool = option(True, "Act through a NumPy copy of Dense-only networks (faster than a TF call per step).")
    atari_wrapper: bool = option(
        True, "ALE ids: the standard Atari preprocessing (84x84 gray, 4 frames, skip 4; false: raw frames)."
    )
    use_masks: bool = option(
        True, "Act only on legal actions where the env says which (action_masks() or info['action_mask'])."
    )
    precision: str = option(
        "auto",
        "Math of CNN updates: mixed_bfloat16 (bfloat16 math, float32 weights), float32, or auto "
        "(mixed_bfloat16 for the Nature CNN where the CPU or GPU does bfloat16 natively). policy.keras is float32.",
        choices=PRECISIONS,
    )

    def __post_init__(self) -> None:
        validate(self, f"{self.kind} config")


class Agent:
    """Base class: the contract above."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[AgentConfig]] = AgentConfig
    supports_normalization: ClassVar[bool] = True

    def __init__(self, cfg: AgentConfig, obs_spec: ObsSpec, action_space: Any, seed: int) -> None:
        tf = backend.tf()
        self.cfg = cfg
        self.obs_spec = obs_spec
        # A plain observation's shape and dtype; for nested ones, what the speed rules look at.
        self.obs_shape, self.obs_dtype = representative(obs_spec)
        self.obs_shape = tuple(self.obs_shape)
        self.obs_dtype = np.dtype(self.obs_dtype)
        self.action_space = action_space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.tf_rng = tf.random.Generator.from_seed(seed)
        self.n_updates = 0
        self.obs: Any = None
        self.notes: list[str] = obs_spec.notes()  # one-line facts the CLI prints at start (replay memory)
        self.precision = "float32"  # the networks' dtype policy (CNN agents may pick mixed_bfloat16)

    # ------------------------------------------------------------------ interface
    def begin(self, env: Any) -> None:
        """Start collecting from ``env``, which has just been reset."""
        self.obs = env.obs

    def masks_of(self, env: Any) -> np.ndarray | None:
        """The legal actions of ``env``'s current observations, when the env gives them and
        ``use_masks`` is on (None otherwise)."""
        return env.action_mask if self.cfg.use_masks else None

    def learn(self, env: Any, step: int, total_steps: int) -> tuple[int, dict[str, float]]:
        """Collect and update once; return (env steps taken, scalars to log)."""
        raise NotImplementedError

    def act(self, obs: Any, deterministic: bool = True, mask: np.ndarray | None = None) -> np.ndarray:
        """Actions for a batch of observations (indices for Discrete spaces); only legal ones
        where ``mask`` says which and the agent uses masks."""
        raise NotImplementedError

    def networks(self) -> dict[str, Any]:
        return {}

    def optimizers(self) -> dict[str, Any]:
        return {}

    def variables(self) -> dict[str, Any]:
        """Trainable variables outside the networks (e.g. a Gaussian log-std)."""
        return {}

    def policy_model(self) -> Any | None:
        """The network a user needs to act (logits, Gaussian mean or Q values), or None."""
        return None

    def extra_state(self, buffers: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays and metadata beyond weights and optimizer slots: counters, and with
        ``buffers`` the data a resume needs (a replay buffer), which a saved agent leaves out."""
        return {}, {}

    def load_extra_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        pass

    def upgrade_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Rewrite, in place, a state saved by an older layout of this agent's networks into today's."""

    def refresh(self) -> None:
        """Called after weights change outside an update (loading a checkpoint)."""

    @classmethod
    def acting_config(cls, cfg: AgentConfig) -> AgentConfig:
        """The config of an agent that only acts (``kerasdojo eval``): what training alone needs,
        a replay buffer, cut to nothing."""
        return cfg
