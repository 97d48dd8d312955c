"""What SAC, TD3 and DDPG share: a Box action space seen as [-1, 1], Q critics of
``(observation, action)``, the replay buffer, and the collect-then-train cycle.

The networks work in [-1, 1] (a tanh output); the env gets actions mapped to the
Box bounds, and the replay buffer stores the [-1, 1] ones, as Stable-Baselines3
does. Each call of :meth:`OffPolicyActorCritic.learn` steps the vector env
``train_freq`` times (uniformly random actions before ``learning_starts``), then
runs ``gradient_steps`` gradient steps in one compiled TensorFlow call on
minibatches drawn at once. That call also returns the updated actor's output
for the current observations, so that with ``train_freq=1`` each env step costs
one TensorFlow call in all; other acting (evaluation, the first step) goes
through a NumPy copy of the actor, refreshed when it is next needed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from kerasdojo import backend, networks
from kerasdojo.agents.base import Agent, AgentConfig
from kerasdojo.agents.buffers import ReplayBuffer, check_replay_memory, collect
from kerasdojo.agents.ensemble import ensemble, upgrade_state
from kerasdojo.agents.her import HerConfig, HerReplayBuffer, connect, her_buffer
from kerasdojo.agents.rules import gradient_steps, polyak, scale_actions, schedule, updates_start
from kerasdojo.config import option
from kerasdojo.encoders import build_nested
from kerasdojo.errors import DojoError
from kerasdojo.observations import ObsSpec


@dataclasses.dataclass(frozen=True)
class OffPolicyConfig(HerConfig, AgentConfig):
    """Fields of every off-policy actor-critic (names and defaults follow Stable-Baselines3)."""

    kind: ClassVar[str] = "off-policy"

    net_arch: tuple[int, ...] = option((256, 256), "Hidden layer widths of the actor and of each critic.", low=1)
    activation: str = option("relu", "Hidden activation.", choices=networks.ACTIVATIONS)
    init: str = option(
        "fan_in_uniform",
        "Kernel initialiser (fan_in_uniform: PyTorch's default, which the Zoo presets were tuned with).",
        choices=networks.INITIALIZERS,
    )
    learning_rate: float = option(
        3e-4, "Adam learning rate (actor, critics and entropy coefficient).", low=0, low_open=True
    )
    lr_schedule: str = option(
        "constant", "constant, or linear decay to 0 over training.", choices=("constant", "linear")
    )
    buffer_size: int = option(1_000_000, "Replay buffer capacity (transitions).", low=1)
    learning_starts: int = option(100, "Env steps of uniformly random actions before the first update.", low=0)
    batch_size: int = option(256, "Minibatch size.", low=1)
    tau: float = option(
        0.005, "Polyak coefficient of the target networks (1: hard copy).", low=0, low_open=True, high=1
    )
    gamma: float = option(0.99, "Discount factor.", low=0, high=1)
    train_freq: int = option(1, "Vector steps between updates.", low=1)
    gradient_steps: int = option(1, "Gradient steps per update (-1: as many as env steps collected).", low=-1)


class OffPolicyActorCritic(Agent):
    """The shared cycle; subclasses build the actor, the critics and ``self.forward`` (NumPy
    acting), and provide :meth:`actions_from` and ``self._train``, the compiled
    ``(obs, actions, rewards, next_obs, terminated, n_updates, act_obs) -> (losses, actor(act_obs))``."""

    Config = OffPolicyConfig
    # Replayed transitions would mix observations scaled by different running statistics.
    supports_normalization = False

    def __init__(self, cfg: OffPolicyConfig, obs_spec: ObsSpec, action_space: Any, seed: int) -> None:
        super().__init__(cfg, obs_spec, action_space, seed)
        self.cfg: OffPolicyConfig = cfg
        self.action_shape = tuple(action_space.shape)
        self.action_dim = int(np.prod(self.action_shape))
        self.low = np.asarray(action_space.low, np.float32).reshape(-1)
        self.high = np.asarray(action_space.high, np.float32).reshape(-1)
        if not (np.isfinite(self.low).all() and np.isfinite(self.high).all()):
            raise DojoError(
                f"{self.name} needs a bounded Box action space; this one is {action_space}",
                hint="wrap the env in gymnasium.wrappers.RescaleAction or use ppo/a2c",
            )
        self.obs_dim = obs_spec.size()
        self.notes.append(check_replay_memory(cfg.buffer_size, obs_spec))
        self.buffer: ReplayBuffer | HerReplayBuffer = (
            her_buffer(cfg, obs_spec, (self.action_dim,), np.float32)
            if cfg.her
            else ReplayBuffer(cfg.buffer_size, obs_spec, (self.action_dim,), np.float32)
        )
        self.forward: Any = None
        self._stale = False  # the NumPy copy of the actor lags its weights
        self._next: np.ndarray | None = None  # the actor's output for self.obs, from the last update
        self._lr: float | None = None

    # ------------------------------------------------------------------ networks
    def critic(self, name: str) -> Any:
        """Q(o, a): an MLP of the flattened observation and the action, concatenated."""
        cfg = self.cfg
        layers = networks.mlp_layers(cfg.net_arch, cfg.activation, init=cfg.init, gain=1.0)
        return networks.build((self.obs_dim + self.action_dim,), layers + networks.q_head(1, cfg.init), name)

    def build_critics(self, n: int) -> None:
        """``n`` critics as one ensemble network (``critics``, a leading member axis in each
        kernel), its target copy and one Adam optimizer. The members start from the weights of
        ``n`` ordinary critic models, drawn as one model per critic always was."""
        keras = backend.keras()
        members = [self.critic(f"q{i + 1}") for i in range(n)]
        self.critics = ensemble(members, self.cfg.activation, "critics")
        self.critic_targets = ensemble(members, self.cfg.activation, "critics_target")
        self.critic_vars = list(self.critics.trainable_variables)
        self.critic_opt = keras.optimizers.Adam(learning_rate=self.cfg.learning_rate)
        self.critic_opt.build(self.critic_vars)

    def update_critic_targets(self, where: Any = None) -> None:
        """Polyak-average the critic targets towards the critics (inside compiled code; with
        ``where``, a boolean tensor, only when it holds)."""
        polyak(self.critic_targets.weights, self.critics.weights, self.cfg.tau, where)

    def upgrade_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Agent states saved with one Keras model per critic (kerasdojo before the ensemble) load too."""
        upgrade_state(arrays, self.critics.n, "critics", "critic")

    def actor_torso(self) -> list[Any]:
        cfg = self.cfg
        return networks.mlp_layers(
            cfg.net_arch, cfg.activation, init=cfg.init, gain=1.0, flatten=len(self.obs_shape) != 1
        )

    def build_actor(self, head: Any, name: str) -> Any:
        """The actor: the torso and ``head()``'s layers on the (flattened) observation; for a nested
        one, one named input per leaf, every leaf flattened and concatenated first. (``head`` is
        called after the torso is made: unseeded initialisers draw their seeds in creation order.)"""
        cfg = self.cfg
        if self.obs_spec.nested:
            mlp = networks.mlp_layers(cfg.net_arch, cfg.activation, init=cfg.init, gain=1.0)
            return build_nested(self.obs_spec, {"actor": mlp + head()}, name, flatten_images=True)
        return networks.build(self.obs_shape, self.actor_torso() + head(), name)

    def q(self, model: Any, obs: Any, actions: Any, members: int | None = None) -> Any:
        """The Q values of the ensemble ``model``'s members (``members``: the first so many),
        shape (members, batch), inside compiled code."""
        tf = backend.tf()
        if self.obs_spec.nested:  # every leaf flattened, in the spec's order
            leaves = [tf.cast(obs[leaf.name], tf.float32) for leaf in self.obs_spec.leaves]
            flat = tf.concat([tf.reshape(x, [tf.shape(x)[0], -1]) for x in leaves], axis=1)
        else:
            flat = tf.reshape(tf.cast(obs, tf.float32), [-1, self.obs_dim])
        return model(tf.concat([flat, actions], axis=1), members=members)

    def min_q(self, model: Any, obs: Any, actions: Any) -> Any:
        """The smallest of the ensemble ``model``'s Q values, shape (batch,), inside compiled code."""
        return backend.tf().reduce_min(self.q(model, obs, actions), axis=0)

    # ------------------------------------------------------------------ acting
    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """Map actions in [-1, 1] to the Box bounds."""
        scaled = scale_actions(actions, self.low, self.high)
        return scaled.reshape(len(actions), *self.action_shape)

    def actions_from(self, out: np.ndarray, deterministic: bool) -> np.ndarray:
        """Actions in [-1, 1], shape (batch, action_dim), from the actor's outputs."""
        raise NotImplementedError

    def actor_output(self, obs: np.ndarray) -> np.ndarray:
        if self._stale:
            self.forward.refresh()
            self._stale = False
        return self.forward(obs)[0]

    def policy_actions(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        return self.actions_from(self.actor_output(obs), deterministic)

    def refresh(self) -> None:
        self._stale, self._next = True, None

    def begin(self, env: Any) -> None:
        super().begin(env)
        self._next = None
        if self.cfg.her:
            connect(self.buffer, env)  # type: ignore[arg-type]

    def act(self, obs: Any, deterministic: bool = True, mask: np.ndarray | None = None) -> np.ndarray:
        return self.to_env(self.policy_actions(obs, deterministic))

    def on_done(self, done: np.ndarray) -> None:
        """Called after each vector step with the envs whose episode ended."""

    # ------------------------------------------------------------------ persistence
    @classmethod
    def acting_config(cls, cfg: Any) -> Any:
        """A one-transition replay buffer: acting needs none (a DQN Atari preset's holds GiBs)."""
        return dataclasses.replace(cfg, buffer_size=1)

    def extra_state(self, buffers: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return self.buffer.state() if buffers else ({}, {})

    def load_extra_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        if "replay/size" in meta:  # plain or hindsight
            self.buffer.load_state(arrays, meta)

    # ------------------------------------------------------------------ the cycle
    def learn(self, env: Any, step: int, total_steps: int) -> tuple[int, dict[str, float]]:
        cfg = self.cfg
        n_envs = env.num_envs
        assert self.obs is not None, "call begin(env) first"

        def choose(obs: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
            if step + i * n_envs < cfg.learning_starts:
                actions = self.rng.uniform(-1.0, 1.0, (n_envs, self.action_dim)).astype(np.float32)
            elif i == 0 and self._next is not None:  # computed by the last update, for these observations
                actions = self.actions_from(self._next, deterministic=False)
            else:
                actions = self.policy_actions(obs, deterministic=False)
            return self.to_env(actions), actions

        self.obs = collect(env, self.obs, self.buffer, cfg.train_freq, choose, self.on_done)
        taken = cfg.train_freq * n_envs
        n_grad = gradient_steps(cfg.gradient_steps, taken)
        if not updates_start(step, taken, cfg.learning_starts, n_grad) or len(self.buffer) == 0:
            return taken, {}  # (hindsight replay samples nothing before the first episode ends)
        lr = schedule(cfg.lr_schedule, cfg.learning_rate, step / total_steps)
        if lr != self._lr:
            for opt in self.optimizers().values():
                opt.learning_rate.assign(lr)
            self._lr = lr
        batch = self.buffer.sample(self.rng, cfg.batch_size, n_grad)
        losses, out = self._train(*batch[:5], np.int64(self.n_updates), self.obs)
        self._next, self._stale = out.numpy(), True
        # A loss the call did not compute (TD3's actor between delayed updates) comes back NaN: left out.
        stats = {f"train/{k}": float(v) for k, v in losses.items() if not np.isnan(v)}
        self.n_updates += n_grad
        stats.update({"train/learning_rate": lr, "train/n_updates": float(self.n_updates)})
        return taken, stats
