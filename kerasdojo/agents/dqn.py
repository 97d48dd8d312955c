"""Deep Q-Network (Mnih et al. 2015) with Double DQN (van Hasselt et al. 2016) on by
default and an optional dueling head (Wang et al. 2016).

Reads top to bottom: config, networks, epsilon-greedy acting, collection into
the replay buffer, and the update. Semantics follow Stable-Baselines3: every
``train_freq`` vector steps, ``gradient_steps`` minibatch updates (all in one
compiled call); the target network is updated every ``target_update_interval``
env steps, by copying (``tau=1``) or Polyak averaging.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from kerasdojo import backend, networks
from kerasdojo.agents.acting import Forward
from kerasdojo.agents.base import Agent, AgentConfig
from kerasdojo.agents.buffers import CompactReplayBuffer, ReplayBuffer, check_replay_memory, collect
from kerasdojo.agents.her import HerConfig, HerReplayBuffer, connect, her_buffer
from kerasdojo.agents.rules import (
    collapsed_tau,
    due_updates,
    gradient_steps,
    linear,
    polyak,
    target_interval,
    updates_start,
)
from kerasdojo.agents.speed import cnn_precision, compiled, repeat, static_steps, use_xla
from kerasdojo.config import option
from kerasdojo.encoders import build_nested
from kerasdojo.errors import DojoError
from kerasdojo.observations import ObsSpec


@dataclasses.dataclass(frozen=True)
class DQNConfig(HerConfig, AgentConfig):
    """DQN hyperparameters (names follow Stable-Baselines3)."""

    kind: ClassVar[str] = "dqn"

    activation: str = option("relu", "Hidden activation.", choices=networks.ACTIVATIONS)
    init: str = option(
        "fan_in_uniform",
        "Q-network kernel initialiser (fan_in_uniform: PyTorch's default, which the Zoo presets were tuned with).",
        choices=networks.INITIALIZERS,
    )
    learning_rate: float = option(1e-4, "Adam learning rate.", low=0, low_open=True)
    buffer_size: int = option(100_000, "Replay buffer capacity (transitions).", low=1)
    learning_starts: int = option(100, "Env steps before the first update.", low=0)
    batch_size: int = option(32, "Minibatch size.", low=1)
    tau: float = option(1.0, "Target update coefficient (1: hard copy, <1: Polyak).", low=0, low_open=True, high=1)
    gamma: float = option(0.99, "Discount factor.", low=0, high=1)
    train_freq: int = option(4, "Vector steps between updates.", low=1)
    gradient_steps: int = option(1, "Gradient steps per update (-1: as many as env steps collected).", low=-1)
    target_update_interval: int = option(10_000, "Env steps between target network updates.", low=1)
    exploration_fraction: float = option(0.1, "Fraction of training over which epsilon decays.", low=0, high=1)
    exploration_initial_eps: float = option(1.0, "Initial epsilon.", low=0, high=1)
    exploration_final_eps: float = option(0.05, "Final epsilon.", low=0, high=1)
    max_grad_norm: float = option(10.0, "Clip the global gradient norm.", low=0, low_open=True)
    double_q: bool = option(True, "Double DQN: the online network picks the next action, the target values it.")
    dueling: bool = option(False, "Dueling head: Q = V + A - mean(A).")
    adam_eps: float = option(1e-8, "Adam epsilon.", low=0, low_open=True)
    optimize_memory_usage: bool = option(
        False, "Store each observation once (o' is the next row): half the replay memory, for frames."
    )
    overlap_update: bool = option(
        False,
        "Run each update in a thread beside the next train_freq env steps, which act with the weights "
        "from before it (as they would in SB3's order); its minibatch is drawn before those steps.",
    )


class DQN(Agent):
    name = "dqn"
    Config = DQNConfig
    # Replayed transitions would mix observations scaled by different running statistics.
    supports_normalization = False

    def __init__(self, cfg: DQNConfig, obs_spec: ObsSpec, action_space: Any, seed: int) -> None:
        super().__init__(cfg, obs_spec, action_space, seed)
        keras = backend.keras()
        obs_shape, obs_dtype = self.obs_shape, self.obs_dtype
        self.cfg: DQNConfig = cfg
        self.n_actions = int(action_space.n)

        self.precision = cnn_precision(cfg.precision, obs_shape, obs_dtype, self.notes)

        def q_network(name: str) -> Any:
            head_fn = networks.dueling_q_head if cfg.dueling else networks.q_head
            head = head_fn(self.n_actions, init=cfg.init)
            if obs_spec.nested:
                mlp = networks.mlp_layers(cfg.net_arch, cfg.activation, init=cfg.init)
                return build_nested(obs_spec, {"q": mlp + head}, name, cnn_dtype=self.precision)
            torso = networks.torso_layers(
                obs_shape, obs_dtype, cfg.net_arch, cfg.activation, cfg.init, cnn_dtype=self.precision
            )
            return networks.build(obs_shape, torso + head, name, networks.input_dtype(obs_shape, obs_dtype))

        self.q = q_network("q")
        self.q_target = q_network("q_target")
        self.q_target.set_weights(self.q.get_weights())
        self.opt = keras.optimizers.Adam(
            learning_rate=cfg.learning_rate, epsilon=cfg.adam_eps, global_clipnorm=cfg.max_grad_norm
        )
        self.opt.build(self.q.trainable_variables)
        self.huber = keras.losses.Huber(delta=1.0)  # SB3's smooth L1 loss
        compact = cfg.optimize_memory_usage
        if cfg.her and compact:
            raise DojoError(
                "her=true needs the plain replay buffer; optimize_memory_usage=true stores o' as the next row",
                hint="--set optimize_memory_usage=false",
            )
        self.notes.append(check_replay_memory(cfg.buffer_size, obs_spec, compact, can_compact=True))
        # The legal actions at o' (all, for envs without masks): the target maximises over them.
        masks = self.n_actions if cfg.use_masks else 0
        self.buffer: ReplayBuffer | CompactReplayBuffer | HerReplayBuffer
        if cfg.her:
            self.buffer = her_buffer(cfg, obs_spec, (), np.int64, mask_size=masks)
        elif compact:
            self.buffer = CompactReplayBuffer(cfg.buffer_size, cfg.n_envs, obs_spec, mask_size=masks)
        else:
            self.buffer = ReplayBuffer(cfg.buffer_size, obs_spec, mask_size=masks)
        image = networks.is_image_space(obs_shape, obs_dtype)
        self.forward = Forward([self.q], fast=cfg.fast_act, jit=image)
        if self.precision != "float32" or (cfg.overlap_update and not self.forward.numpy):
            # Act with a float32 twin (XLA's CPU float32 convolutions are faster than its bfloat16
            # ones), whose weights stay put while an overlapped update changes the network's.
            twin = networks.float32_twin(self.q)
            self.forward = Forward([twin], fast=cfg.fast_act, jit=image, source=[self.q])
        self._pool: Any = None  # the thread of overlapped updates
        self._train = compiled(self._train_steps, use_xla(cfg.jit_compile, obs_shape, obs_dtype))
        self._sync = compiled(self._sync_target, False)
        self.n_calls = 0
        self.pending_target_updates = 0
        self.exploration_rate = cfg.exploration_initial_eps

    # ------------------------------------------------------------------ persistence
    @classmethod
    def acting_config(cls, cfg: Any) -> Any:
        """A one-transition replay buffer: acting needs none (a DQN Atari preset's holds GiBs)."""
        return dataclasses.replace(cfg, buffer_size=1)

    def networks(self) -> dict[str, Any]:
        return {"q": self.q, "q_target": self.q_target}

    def optimizers(self) -> dict[str, Any]:
        return {"adam": self.opt}

    def policy_model(self) -> Any:
        return self.q if self.precision == "float32" else networks.float32_twin(self.q)

    def refresh(self) -> None:
        self.forward.refresh()

    def extra_state(self, buffers: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, meta = self.buffer.state() if buffers else ({}, {})
        meta.update(
            n_calls=self.n_calls,
            pending_target_updates=self.pending_target_updates,
            exploration_rate=self.exploration_rate,
        )
        return arrays, meta

    def load_extra_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        if "replay/size" in meta or "replay/filled" in meta:  # plain, hindsight or compact
            try:
                self.buffer.load_state(arrays, meta)
            except (ValueError, KeyError) as exc:
                raise DojoError(f"Cannot restore the replay buffer: {exc}") from None
        self.n_calls = int(meta.get("n_calls", 0))
        self.pending_target_updates = int(meta.get("pending_target_updates", 0))
        self.exploration_rate = float(meta.get("exploration_rate", self.cfg.exploration_final_eps))

    # ------------------------------------------------------------------ acting
    def begin(self, env: Any) -> None:
        super().begin(env)
        if self.cfg.her:
            connect(self.buffer, env)  # type: ignore[arg-type]

    def act(self, obs: Any, deterministic: bool = True, mask: np.ndarray | None = None) -> np.ndarray:
        q = self.forward(obs)[0]
        mask = mask if self.cfg.use_masks else None
        greedy = (q if mask is None else np.where(mask, q, -np.inf)).argmax(axis=1)
        if deterministic:
            return greedy
        n = len(greedy)
        explore = self.rng.random(n) < self.exploration_rate
        return np.where(explore, self.random_actions(n, mask), greedy)

    def random_actions(self, n: int, mask: np.ndarray | None) -> np.ndarray:
        """Uniformly random actions, among the legal ones with ``mask``."""
        if mask is None:
            return self.rng.integers(0, self.n_actions, n)
        return np.argmax(self.rng.random((n, self.n_actions)) * mask, axis=1)

    # ------------------------------------------------------------------ collecting
    def learn(self, env: Any, step: int, total_steps: int) -> tuple[int, dict[str, float]]:
        cfg = self.cfg
        n_envs = env.num_envs
        obs = self.obs
        assert obs is not None, "call begin(env) first"
        target_every = target_interval(cfg.target_update_interval, n_envs)

        def choose(obs: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
            done = step + i * n_envs
            self.exploration_rate = linear(
                cfg.exploration_initial_eps, cfg.exploration_final_eps, cfg.exploration_fraction, done / total_steps
            )
            mask = self.masks_of(env)
            if done < cfg.learning_starts:  # fill the buffer with uniformly random actions, as SB3
                actions = self.random_actions(n_envs, mask)
            else:
                actions = self.act(obs, deterministic=False, mask=mask)
            return actions, actions

        taken = cfg.train_freq * n_envs
        n_grad = gradient_steps(cfg.gradient_steps, taken)
        updates = updates_start(step, taken, cfg.learning_starts, n_grad)
        overlapped = None
        if updates and cfg.overlap_update and len(self.buffer) > 0:
            overlapped = self._update_in_thread(n_grad, target_every)
        try:
            self.obs = collect(env, obs, self.buffer, cfg.train_freq, choose)
        finally:  # never leave an update running into a checkpoint
            if overlapped is not None:
                overlapped.exception()
        if overlapped is None:
            self._count_calls(target_every)
        metrics = {"rollout/exploration_rate": self.exploration_rate}
        if updates and (overlapped is not None or len(self.buffer) > 0):
            loss, q_mean = self._update(n_grad) if overlapped is None else overlapped.result()
            self.n_updates += n_grad
            self.forward.refresh()
            metrics.update(
                {
                    "train/loss": float(loss),
                    "train/q_values": float(q_mean),
                    "train/learning_rate": cfg.learning_rate,
                    "train/n_updates": float(self.n_updates),
                }
            )
        return taken, metrics

    def _count_calls(self, target_every: int) -> None:
        calls = self.n_calls + self.cfg.train_freq
        self.pending_target_updates += due_updates(self.n_calls, calls, target_every)
        self.n_calls = calls

    def _prepare_update(self, n_grad: int) -> tuple[np.ndarray, ...]:
        """Bring the target network up to date; the minibatches of ``n_grad`` gradient steps."""
        # The online net has not changed since the last update, so the target updates due
        # since then collapse into one.
        if self.pending_target_updates:
            self._sync(np.float32(collapsed_tau(self.cfg.tau, self.pending_target_updates)))
            self.pending_target_updates = 0
        return self.buffer.sample(self.rng, self.cfg.batch_size, n_grad)

    def _update(self, n_grad: int) -> tuple[Any, Any]:
        return self._train(*self._prepare_update(n_grad))

    def _update_in_thread(self, n_grad: int, target_every: int) -> Any:
        """Start the gradient steps in a thread (TensorFlow releases the GIL while it computes);
        the caller collects meanwhile, acting with the twin, and waits on the future. The target
        sync and the minibatches are done here, in the caller's thread, which owns the RNG and
        the buffer."""
        from concurrent.futures import ThreadPoolExecutor

        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="dqn-update")
        self._count_calls(target_every)  # the target updates due by the end of this collection
        batch = self._prepare_update(n_grad)
        return self._pool.submit(lambda: [t.numpy() for t in self._train(*batch)])

    # ------------------------------------------------------------------ the update (compiled)
    def _sync_target(self, tau: Any) -> None:
        polyak(self.q_target.weights, self.q.weights, tau)

    def _train_steps(
        self, obs: Any, actions: Any, rewards: Any, next_obs: Any, terminated: Any, next_masks: Any = None
    ) -> tuple[Any, Any]:
        """``k`` gradient steps on ``k`` minibatches (arrays shaped (k, batch, ...)); with
        ``next_masks``, the next action is the best legal one."""
        tf = backend.tf()
        cfg = self.cfg
        variables = self.q.trainable_variables
        k = static_steps(obs)

        def body(i: Any, sums: tuple[Any, Any]) -> tuple[Any, Any]:
            loss_sum, q_sum = sums
            o, o2 = tf.nest.map_structure(lambda x: x[i], (obs, next_obs))
            a, r, d = actions[i], rewards[i], terminated[i]
            q_next_target = self.q_target(o2, training=False)
            legal = (lambda q: q) if next_masks is None else (lambda q: tf.where(next_masks[i], q, -1e30))
            if next_masks is not None and not cfg.double_q:
                q_next_target = legal(q_next_target)
            if cfg.double_q:
                next_actions = tf.argmax(legal(self.q(o2, training=False)), axis=1, output_type=tf.int32)
                q_next = tf.gather(q_next_target, next_actions, batch_dims=1)
            else:
                q_next = tf.reduce_max(q_next_target, axis=1)
            target = tf.stop_gradient(r + cfg.gamma * (1.0 - d) * q_next)
            with tf.GradientTape() as tape:
                q_all = self.q(o, training=True)
                q = tf.gather(q_all, tf.cast(a, tf.int32), batch_dims=1)
                loss = self.huber(target, q)
            self.opt.apply(tape.gradient(loss, variables), variables)  # clipped by the optimizer's global_clipnorm
            return loss_sum + loss, q_sum + tf.reduce_mean(q)

        loss_sum, q_sum = repeat(k, body, (tf.constant(0.0), tf.constant(0.0)))
        count = tf.cast(tf.maximum(k, 1), tf.float32)
        return loss_sum / count, q_sum / count
