"""SAC, TD3 and DDPG compiled end to end on the TensorFlow-native envs (``--native``).

One ``tf.function(jit_compile=True)`` call runs up to :data:`CHUNK` env steps. Each vector
step acts (uniformly random before ``learning_starts``, then the actor with the algorithm's
own exploration), steps the native env, and stores the transition in a replay buffer held
in TensorFlow variables (:class:`~kerasdojo.agents.tf_replay.TFReplay`); every
``train_freq`` vector steps it runs ``gradient_steps`` gradient steps on minibatches drawn
from those variables, through the very update the Gymnasium path compiles
(``SAC._train_steps``, ``TD3._train_steps``). Python calls it once per chunk, takes the
finished episodes and runs the hooks between calls. The losses it logs are their averages
over the call's gradient steps (the Gymnasium path logs those of its last update).

Networks, optimizers, checkpoint contents and ``policy.keras`` are those of SAC, TD3 and
DDPG, so a native run's agent loads, resumes and evaluates as a plain one; the replay
buffer goes into checkpoints through the agent's NumPy buffer, as native DQN's does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kerasdojo import backend
from kerasdojo.agents.buffers import check_replay_memory
from kerasdojo.agents.native import NativeTrainer
from kerasdojo.agents.rules import gradient_steps, ou_step, scale_actions, schedule, schedule_tf, updates_start
from kerasdojo.agents.sac import SAC
from kerasdojo.agents.speed import compiled
from kerasdojo.agents.td3 import DDPG, TD3
from kerasdojo.agents.tf_replay import TFReplay
from kerasdojo.envs.native.vector import NativeVecEnv
from kerasdojo.errors import DojoError

# Env steps one compiled call covers at most (whole ``train_freq`` cycles): Python's share of a
# run becomes negligible, while hooks (evaluation, progress, Ctrl-C) still come round often.
CHUNK = 500


class NativeOffPolicy(NativeTrainer):
    """The compiled collect-store-train loop shared by native SAC, TD3 and DDPG. Subclasses give
    :meth:`explore` (the exploring action in [-1, 1]) and ``loss_names``, the losses their
    ``_train_steps`` returns."""

    loss_names: tuple[str, ...] = ()
    # the algorithm's own (OffPolicyActorCritic) attributes, read below
    cfg: Any
    obs_dim: int
    action_dim: int
    action_shape: tuple[int, ...]
    low: np.ndarray
    high: np.ndarray
    buffer: Any
    n_updates: int
    tf_rng: Any
    actor: Any
    _train_steps: Any
    _next: Any

    def __init__(self, cfg: Any, obs_spec: Any, action_space: Any, seed: int) -> None:
        if cfg.her:
            raise DojoError("--native trains on the classic-control twins, which have no goals: leave her off")
        super().__init__(cfg, obs_spec, action_space, seed)  # type: ignore[call-arg]
        tf = backend.tf()
        # The TF buffer sits beside the NumPy one that checkpoints read: check room for both.
        check_replay_memory(2 * cfg.buffer_size, obs_spec)
        self.replay = TFReplay(cfg.buffer_size, self.obs_dim, (self.action_dim,), tf.float32)
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._iterate = compiled(self._iteration, jit=True, autograph=False)

    def begin(self, env: NativeVecEnv) -> None:
        if not isinstance(env, NativeVecEnv):
            raise TypeError(f"{type(self).__name__} trains on a NativeVecEnv")
        if env.num_envs != self.cfg.n_envs:
            raise ValueError(f"{type(self).__name__} was built for {self.cfg.n_envs} envs, not {env.num_envs}")
        self.env = env
        self.obs = None
        self.traces = 0
        self._stale, self._next = True, None
        freq = self.cfg.train_freq
        self.per_call = max(1, CHUNK // (freq * env.num_envs)) * freq  # vector steps per call
        self.updates.assign(self.n_updates)

    # ------------------------------------------------------------------ persistence: the TF buffer
    def extra_state(self, buffers: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if buffers:  # the NumPy buffer is what checkpoints hold
            self.replay.pull(self.buffer)
        return super().extra_state(buffers)  # type: ignore[misc]

    def load_extra_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        super().load_extra_state(arrays, meta)  # type: ignore[misc]
        if "replay/size" in meta:  # move the loaded NumPy buffer into the variables
            self.replay.push(self.buffer)

    # ------------------------------------------------------------------ the cycle
    def learn(self, env: Any, step: int, total_steps: int) -> tuple[int, dict[str, float]]:
        cfg = self.cfg
        n_envs, freq = env.num_envs, cfg.train_freq
        left = -(-(total_steps - step) // n_envs)  # vector steps still to take, in whole cycles
        n = min(self.per_call, -(-left // freq) * freq)
        out = self._iterate(np.int64(step), np.int64(total_steps), np.int32(n))
        metrics = self._finish(out)
        self._next = None
        trained = metrics.pop("trained")
        self.n_updates = int(metrics.pop("n_updates"))
        # A loss no gradient step computed (before learning starts; TD3's actor between delayed
        # updates) comes back NaN: left out, as on the Gymnasium path.
        metrics = {k: v for k, v in metrics.items() if not math.isnan(v)}
        if trained:
            last = step + (n - freq) * n_envs  # where the call's last cycle began: the rate it trained with
            metrics["train/learning_rate"] = schedule(cfg.lr_schedule, cfg.learning_rate, last / total_steps)
            metrics["train/n_updates"] = float(self.n_updates)
        return n * n_envs, metrics

    def explore(self, obs: Any, warmup: Any) -> Any:
        """The exploring actions in [-1, 1] for ``obs``, inside compiled code (``warmup``: a
        boolean tensor, true while the actions taken are uniformly random instead)."""
        raise NotImplementedError

    def episode_ends(self, done: Any) -> None:
        """After each vector step, inside compiled code, with the envs whose episode ended."""

    # ------------------------------------------------------------------ compiled
    def _iteration(self, step: Any, total_steps: Any, n: Any) -> dict[str, Any]:
        tf = backend.tf()
        self.traces += 1
        cfg, env = self.cfg, self.env
        n_envs, freq, dim = env.num_envs, cfg.train_freq, self.action_dim
        taken = freq * n_envs
        n_grad = gradient_steps(cfg.gradient_steps, taken)
        low, high = tf.constant(self.low), tf.constant(self.high)
        names = self.loss_names
        nothing = tf.zeros([0, self.obs_dim])  # the update's actor output is not needed here

        def update(cycle_start: Any) -> tuple[Any, ...]:
            if cfg.lr_schedule != "constant":
                progress = tf.cast(cycle_start, tf.float32) / tf.cast(total_steps, tf.float32)
                lr = schedule_tf(cfg.lr_schedule, cfg.learning_rate, progress)
                for opt in self.optimizers().values():  # type: ignore[attr-defined]
                    opt.learning_rate.assign(lr)
            batch = self.replay.sample(self.tf_rng, [n_grad, cfg.batch_size])
            losses, _ = self._train_steps(*batch, self.updates.read_value(), nothing)
            self.updates.assign_add(n_grad)
            return tuple(losses[k] for k in names)

        def body(i: Any, state: Any, t: Any, obs: Any, ep_return: Any, ep_length: Any, carry: Any) -> Any:
            records, sums, counts, trained = carry
            done_steps = step + tf.cast(i * n_envs, tf.int64)
            warmup = done_steps < cfg.learning_starts
            uniform = self.tf_rng.uniform([n_envs, dim], -1.0, 1.0)
            actions = tf.where(warmup, uniform, self.explore(obs, warmup))
            env_actions = tf.reshape(scale_actions(actions, low, high), [n_envs, *self.action_shape])
            out, ep_return, ep_length, ends = env.tf_step(state, t, env_actions, ep_return, ep_length)
            # next_obs is the true last observation where an episode ended: truncations bootstrap.
            transition = {"obs": obs, "actions": actions, "rewards": out.reward, "next_obs": out.final_obs}
            transition["terminated"] = out.terminated
            self.replay.store({k: tf.cast(v, tf.float32) for k, v in transition.items()})
            self.episode_ends(ends[0])
            records = tuple(tf.tensor_scatter_nd_update(r, [[i]], v[None]) for r, v in zip(records, ends, strict=True))
            # Every ``train_freq`` vector steps, the update of the cycle that began (freq - 1) steps ago.
            cycle_start = done_steps - (freq - 1) * n_envs
            train = ((i + 1) % freq == 0) & updates_start(cycle_start, taken, cfg.learning_starts, n_grad)
            values = tf.cond(train, lambda: update(cycle_start), lambda: tuple(tf.constant(np.nan) for _ in names))
            finite = [~tf.math.is_nan(v) for v in values]
            sums = tuple(s + tf.where(f, v, 0.0) for s, v, f in zip(sums, values, finite, strict=True))
            counts = tuple(c + tf.cast(f, tf.float32) for c, f in zip(counts, finite, strict=True))
            carry = (records, sums, counts, trained | train)
            return i + 1, out.state, out.t, tf.cast(out.obs, tf.float32), ep_return, ep_length, carry

        size = self.per_call
        records = (
            tf.zeros([size, n_envs], tf.bool),
            tf.zeros([size, n_envs], tf.float64),
            tf.zeros([size, n_envs], tf.int32),
        )
        zeros = tuple(tf.constant(0.0) for _ in names)
        start = (tf.constant(0), env.state.read_value(), env.t.read_value(), tf.cast(env.observe(), tf.float32))
        start += (env.ep_return.read_value(), env.ep_length.read_value(), (records, zeros, zeros, tf.constant(False)))
        _, state, t, _, ep_return, ep_length, carry = tf.while_loop(lambda i, *_: i < n, body, start)
        env.state.assign(state)
        env.t.assign(t)
        env.ep_return.assign(ep_return)
        env.ep_length.assign(ep_length)
        (done, ep_ret, ep_len), sums, counts, trained = carry
        out = {
            f"train/{k}": tf.where(c > 0, s / tf.maximum(c, 1.0), np.nan)
            for k, s, c in zip(names, sums, counts, strict=True)
        }
        out |= {"trained": tf.cast(trained, tf.float32), "n_updates": tf.cast(self.updates, tf.float64)}
        return out | {"done": done, "ep_return": ep_ret, "ep_length": ep_len}


class NativeSAC(NativeOffPolicy, SAC):
    """SAC whose acting, env steps, replay and gradient steps run as one XLA program per chunk."""

    loss_names = ("actor_loss", "critic_loss", "ent_coef", "ent_coef_loss")

    def explore(self, obs: Any, warmup: Any) -> Any:
        out = self.actor(obs, training=False)
        return self.dist.tf_sample(out[:, : self.action_dim], out[:, self.action_dim :], self.tf_rng)[0]


class NativeTD3(NativeOffPolicy, TD3):
    """TD3 whose acting, env steps, replay and gradient steps run as one XLA program per chunk;
    its Ornstein-Uhlenbeck noise lives in a variable, one process per env."""

    loss_names = ("critic_loss", "actor_loss")

    def __init__(self, cfg: Any, obs_spec: Any, action_space: Any, seed: int) -> None:
        super().__init__(cfg, obs_spec, action_space, seed)
        tf = backend.tf()
        self.ou = tf.Variable(tf.zeros([cfg.n_envs, self.action_dim]), trainable=False)

    def explore(self, obs: Any, warmup: Any) -> Any:
        tf = backend.tf()
        cfg = self.cfg
        mu = self.actor(obs, training=False)
        if cfg.noise_type == "none":
            return mu
        white = self.tf_rng.normal(tf.shape(mu))
        if cfg.noise_type == "normal":
            return tf.clip_by_value(mu + cfg.noise_std * white, -1.0, 1.0)
        x = ou_step(self.ou, white, cfg.ou_theta, cfg.ou_dt, cfg.noise_std)  # still while actions are random
        self.ou.assign(tf.where(warmup, self.ou, x))
        return tf.clip_by_value(mu + x, -1.0, 1.0)

    def episode_ends(self, done: Any) -> None:
        if self.cfg.noise_type == "ornstein-uhlenbeck":
            tf = backend.tf()
            self.ou.assign(tf.where(done[:, None], tf.zeros_like(self.ou), self.ou))

    def extra_state(self, buffers: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if self.cfg.noise_type == "ornstein-uhlenbeck":
            self.ou_state = self.ou.numpy()
        return super().extra_state(buffers)

    def load_extra_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        super().load_extra_state(arrays, meta)
        if self.ou_state is not None and self.ou_state.shape == tuple(self.ou.shape):
            self.ou.assign(self.ou_state)


class NativeDDPG(NativeTD3, DDPG):
    """DDPG (TD3 with one critic, no delay, no smoothing) compiled end to end."""


__all__ = ["CHUNK", "NativeDDPG", "NativeSAC", "NativeTD3"]
