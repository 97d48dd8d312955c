"""Training compiled end to end: PPO and DQN on TensorFlow-native environments (``--native``).

For the classic-control envs that have a TensorFlow twin (:mod:`kerasdojo.envs.native`),
one ``tf.function(jit_compile=True)`` call does a whole iteration: PPO samples its
policy, steps the envs, collects ``n_steps`` steps, computes GAE and runs every
epoch and minibatch of its update; DQN acts epsilon-greedily, steps, stores into a
replay buffer held in TensorFlow variables and runs its gradient steps. Python only
calls it, appends finished episodes to the statistics and runs the hooks between
calls, so everything else (run directory, TensorBoard, checkpoints, resume, the best
agent, ``policy.keras``, evaluation on Gymnasium's own env) is the same as for any run.

:class:`~kerasdojo.envs.native.vector.NativeVecEnv` stands where the Gymnasium vector env stands for the session and
its hooks; :class:`NativePPO` and :class:`NativeDQN` are PPO and DQN with their networks,
optimizers, updates and checkpoint contents unchanged, so a native run's agent loads
and evaluates as a plain PPO or DQN agent.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kerasdojo import backend
from kerasdojo.agents.buffers import check_replay_memory
from kerasdojo.agents.dqn import DQN
from kerasdojo.agents.onpolicy import explained_variance_tf, gae_tf
from kerasdojo.agents.ppo import PPO
from kerasdojo.agents.rules import (
    collapsed_tau,
    due_updates,
    gradient_steps,
    linear_tf,
    polyak,
    schedule_tf,
    target_interval,
    updates_start,
)
from kerasdojo.agents.speed import compiled
from kerasdojo.agents.tf_replay import KEYS, TFReplay
from kerasdojo.envs.native.vector import NativeVecEnv
from kerasdojo.errors import DojoError

# --------------------------------------------------------------------------- the agents


class NativeTrainer:
    """What both compiled trainers share: the env they drive, one compiled call per
    ``learn``, a count of its traces, and NumPy acting copies refreshed only when used."""

    env: NativeVecEnv
    traces: int
    _stale: bool

    def _finish(self, out: dict[str, Any]) -> dict[str, float]:
        """Take the episodes out of a call's results; the rest are scalars to log."""
        self.env.record(out.pop("done").numpy(), out.pop("ep_return").numpy(), out.pop("ep_length").numpy())
        self._stale = True
        return {k: float(v) for k, v in out.items()}

    def _fresh(self) -> None:
        if self._stale:
            self._stale = False
            self.refresh()

    def _rollout(self, steps: int, obs: Any, columns: dict[str, Any], step_fn: Any) -> tuple[Any, dict[str, Any]]:
        """``steps`` vector steps of the native env inside the compiled call, from ``obs``.
        ``step_fn(i, state, t, obs, ep_return, ep_length) -> (row, out, ep_return, ep_length, next_obs)``,
        ``row`` a tuple of tensors, one per column (name: dtype), and ``out`` the env's step; the
        env's variables hold where it stopped. Returns the last observation and the columns stacked."""
        tf = backend.tf()
        env = self.env

        def body(i: Any, state: Any, t: Any, obs: Any, ep_return: Any, ep_length: Any, arrays: Any) -> Any:
            row, out, ep_return, ep_length, next_obs = step_fn(i, state, t, obs, ep_return, ep_length)
            arrays = tuple(a.write(i, v) for a, v in zip(arrays, row, strict=True))
            return i + 1, out.state, out.t, next_obs, ep_return, ep_length, arrays

        start = (tf.constant(0), env.state.read_value(), env.t.read_value(), obs)
        start += (env.ep_return.read_value(), env.ep_length.read_value())
        start += (tuple(tf.TensorArray(d, size=steps) for d in columns.values()),)
        _, state, t, obs, ep_return, ep_length, arrays = tf.while_loop(lambda i, *_: i < steps, body, start)
        env.state.assign(state)
        env.t.assign(t)
        env.ep_return.assign(ep_return)
        env.ep_length.assign(ep_length)
        return obs, dict(zip(columns, (a.stack() for a in arrays), strict=True))


class NativePPO(NativeTrainer, PPO):
    """PPO whose whole iteration (rollout, GAE, every epoch of the update) is one XLA program."""

    def begin(self, env: NativeVecEnv) -> None:
        if not isinstance(env, NativeVecEnv):
            raise TypeError("NativePPO trains on a NativeVecEnv")
        self.env = env
        self.obs = None
        self.traces = 0
        self._stale = False
        self._iterate = compiled(self._iteration, jit=True, autograph=False)

    def act(self, obs: Any, deterministic: bool = True, mask: np.ndarray | None = None) -> np.ndarray:
        self._fresh()
        return super().act(obs, deterministic, mask)

    def learn(self, env: Any, step: int, total_steps: int) -> tuple[int, dict[str, float]]:
        cfg = self.cfg
        progress = np.float32(step / total_steps)
        out = self._iterate(progress)
        metrics = self._finish(out)
        self.n_updates += int(metrics.pop("gradient_steps"))
        metrics["train/n_updates"] = float(self.n_updates)
        if self.log_std is None:
            metrics.pop("train/std")
        return cfg.n_steps * env.num_envs, metrics

    # ------------------------------------------------------------------ compiled
    def _iteration(self, progress: Any) -> dict[str, Any]:
        tf = backend.tf()
        self.traces += 1
        cfg, env = self.cfg, self.env
        n_steps, n_envs = cfg.n_steps, env.num_envs
        norm = env.tf_normalizer
        lr = schedule_tf(cfg.lr_schedule, cfg.learning_rate, progress)
        clip = schedule_tf(cfg.clip_schedule, cfg.clip_range, progress)
        self.opt.learning_rate.assign(lr)

        f32 = tf.float32
        columns = {"obs": f32, "actions": tf.int32 if self.discrete else f32, "log_probs": f32, "values": f32}
        columns |= {"rewards": f32, "terminated": f32, "done": tf.bool, "final_obs": f32}
        columns |= {"ep_return": tf.float64, "ep_length": tf.int32}

        def step_fn(i: Any, state: Any, t: Any, obs: Any, ep_return: Any, ep_length: Any) -> Any:
            logits = self.pi(obs, training=False)
            value = self.vf(obs, training=False)[:, 0]
            actions, log_probs = self.dist.tf_sample(*self.dist_params(logits, tf_graph=True), self.tf_rng)
            env_actions = actions if self.discrete else tf.reshape(actions, [n_envs, *self.action_shape])
            out, ep_return, ep_length, (done, ep_ret_end, ep_len_end) = env.tf_step(
                state, t, env_actions, ep_return, ep_length
            )
            # As the Gymnasium path: the statistics see the last observation of an episode and the
            # first of the next one; both are scaled with the statistics after the update.
            norm.update_obs(out.final_obs)
            norm.update_obs(out.obs, where=done)
            next_obs = norm.tf_observation(out.obs, update=False)
            final_obs = norm.tf_observation(out.final_obs, update=False)
            reward = norm.tf_reward(out.reward, done)
            row = (obs, actions, log_probs, value, reward, tf.cast(out.terminated, tf.float32), done, final_obs)
            row += (ep_ret_end, ep_len_end)
            return row, out, ep_return, ep_length, next_obs

        first = norm.tf_observation(env.observe(), update=False)
        obs, data = self._rollout(n_steps, first, columns, step_fn)
        values, done = data["values"], data["done"]
        last_value = self.vf(obs, training=False)[:, 0]
        final_values = tf.reshape(self.vf(tf.reshape(data["final_obs"], [n_steps * n_envs, -1]))[:, 0], [n_steps, -1])
        following = tf.concat([values[1:], last_value[None]], axis=0)
        next_values = tf.where(done, final_values, following)  # an ended episode bootstraps from its own last obs
        advantages, returns = gae_tf(
            data["rewards"], values, next_values, data["terminated"], done, cfg.gamma, cfg.gae_lambda
        )

        def flat(x: Any) -> Any:
            return tf.reshape(x, [n_steps * n_envs, *x.shape[2:]])

        actions = flat(data["actions"])
        if not self.discrete:
            actions = tf.reshape(actions, [n_steps * n_envs, *self.action_shape])
        stats = self._update_step(
            flat(data["obs"]),
            actions,
            flat(data["log_probs"]),
            flat(advantages),
            flat(returns),
            flat(values),
            tf.ones([n_steps * n_envs]),
            clip,
        )
        out = {f"train/{k}": v for k, v in stats.items() if k != "gradient_steps"}
        out["gradient_steps"] = stats["gradient_steps"]
        out["train/explained_variance"] = explained_variance_tf(returns, values)
        out["train/learning_rate"] = lr
        out["train/clip_range"] = clip
        out["train/std"] = tf.reduce_mean(tf.exp(self.log_std)) if self.log_std is not None else tf.constant(0.0)
        out["done"] = done
        out["ep_return"] = data["ep_return"]
        out["ep_length"] = data["ep_length"]
        return out


class NativeDQN(NativeTrainer, DQN):
    """DQN whose collection (``train_freq`` vector steps into a replay buffer held in TensorFlow
    variables) and gradient steps are one XLA program per ``learn``."""

    def __init__(self, cfg: Any, obs_spec: Any, *args: Any, **kwargs: Any) -> None:
        if cfg.optimize_memory_usage:
            raise DojoError("--native DQN keeps its replay buffer in TensorFlow: leave optimize_memory_usage false")
        super().__init__(cfg, obs_spec, *args, **kwargs)
        if cfg.overlap_update:  # the CartPole preset's, for the Gymnasium path
            self.notes.append("overlap_update is the Gymnasium path's: here one compiled call collects, then updates")
        tf = backend.tf()
        # The TF buffer sits beside the NumPy one that checkpoints read: check room for both.
        check_replay_memory(2 * cfg.buffer_size, obs_spec)
        self.replay = TFReplay(cfg.buffer_size, obs_spec.size(), (), tf.int32)
        self.calls = tf.Variable(self.n_calls, dtype=tf.int64, trainable=False)
        self.pending = tf.Variable(self.pending_target_updates, dtype=tf.int64, trainable=False)
        self._collect_train = compiled(self._iteration, jit=True, autograph=False)

    def begin(self, env: NativeVecEnv) -> None:
        if not isinstance(env, NativeVecEnv):
            raise TypeError("NativeDQN trains on a NativeVecEnv")
        self.env = env
        self.obs = None
        self.traces = 0
        self._stale = False

    def act(self, obs: Any, deterministic: bool = True, mask: np.ndarray | None = None) -> np.ndarray:
        self._fresh()
        return super().act(obs, deterministic, mask)

    # ------------------------------------------------------------------ persistence: the TF buffer
    def extra_state(self, buffers: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if buffers:  # the NumPy buffer is what checkpoints hold
            self.replay.pull(self.buffer)
        self.n_calls, self.pending_target_updates = int(self.calls.numpy()), int(self.pending.numpy())
        return super().extra_state(buffers)

    def load_extra_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        super().load_extra_state(arrays, meta)
        if "replay/size" in meta:  # move the loaded NumPy buffer into the variables
            self.replay.push(self.buffer)
        self.calls.assign(self.n_calls)
        self.pending.assign(self.pending_target_updates)

    def learn(self, env: Any, step: int, total_steps: int) -> tuple[int, dict[str, float]]:
        cfg = self.cfg
        out = self._collect_train(np.int64(step), np.int64(total_steps))
        metrics = self._finish(out)
        trained = metrics.pop("trained")
        self.exploration_rate = metrics["rollout/exploration_rate"]
        n_grad = gradient_steps(cfg.gradient_steps, cfg.train_freq * env.num_envs)
        if trained:
            self.n_updates += n_grad
            metrics["train/learning_rate"] = cfg.learning_rate
            metrics["train/n_updates"] = float(self.n_updates)
        else:
            for key in ("train/loss", "train/q_values"):
                metrics.pop(key)
        return cfg.train_freq * env.num_envs, metrics

    # ------------------------------------------------------------------ compiled
    def _iteration(self, step: Any, total_steps: Any) -> dict[str, Any]:
        tf = backend.tf()
        self.traces += 1
        cfg, env = self.cfg, self.env
        n_envs, steps = env.num_envs, cfg.train_freq
        taken = steps * n_envs

        columns = {"obs": tf.float32, "actions": tf.int32, "rewards": tf.float32, "next_obs": tf.float32}
        columns |= {"terminated": tf.float32, "done": tf.bool, "ep_return": tf.float64, "ep_length": tf.int32}

        def epsilon(i: Any) -> Any:
            done_steps = step + tf.cast(i * n_envs, tf.int64)
            progress = tf.cast(done_steps, tf.float32) / tf.cast(total_steps, tf.float32)
            eps = linear_tf(cfg.exploration_initial_eps, cfg.exploration_final_eps, cfg.exploration_fraction, progress)
            return eps, done_steps

        def step_fn(i: Any, state: Any, t: Any, obs: Any, ep_return: Any, ep_length: Any) -> Any:
            eps, done_steps = epsilon(i)
            greedy = tf.argmax(self.q(obs, training=False), axis=1, output_type=tf.int32)
            random = self.tf_rng.uniform([n_envs], maxval=self.n_actions, dtype=tf.int32)
            explore = self.tf_rng.uniform([n_envs]) < eps
            explore = explore | (done_steps < cfg.learning_starts)  # uniformly random at first, as SB3
            actions = tf.where(explore, random, greedy)
            out, ep_return, ep_length, (done, ep_ret_end, ep_len_end) = env.tf_step(
                state, t, actions, ep_return, ep_length
            )
            # next_obs is the true last observation where an episode ended: truncations bootstrap.
            row = (obs, actions, out.reward, out.final_obs, tf.cast(out.terminated, tf.float32), done)
            row += (ep_ret_end, ep_len_end)
            return row, out, ep_return, ep_length, out.obs

        _, arrays = self._rollout(steps, env.observe(), columns, step_fn)
        eps = epsilon(steps - 1)[0]
        # Store the whole stretch at once, as a ring buffer.
        self.replay.store({k: tf.reshape(v, [taken, *v.shape[2:]]) for k, v in arrays.items() if k in KEYS})
        # Target updates due during collection collapse into one (see DQN.learn).
        target_every = target_interval(cfg.target_update_interval, n_envs)
        calls = self.calls + steps
        self.pending.assign_add(due_updates(self.calls, calls, target_every))
        self.calls.assign(calls)
        n_grad = gradient_steps(cfg.gradient_steps, taken)
        train = updates_start(step, taken, cfg.learning_starts, n_grad)

        def train_steps() -> tuple[Any, Any]:
            tau = collapsed_tau(cfg.tau, tf.cast(self.pending, tf.float32))
            polyak(self.q_target.weights, self.q.weights, tau, where=self.pending > 0)
            self.pending.assign(0)  # stateful ops run in program order (automatic control dependencies)
            return self._train_steps(*self.replay.sample(self.tf_rng, [n_grad, cfg.batch_size]))

        loss, q_mean = tf.cond(train, train_steps, lambda: (tf.constant(0.0), tf.constant(0.0)))
        return {
            "train/loss": loss,
            "train/q_values": q_mean,
            "rollout/exploration_rate": eps,
            "trained": tf.cast(train, tf.float32),
            "done": arrays["done"],
            "ep_return": arrays["ep_return"],
            "ep_length": arrays["ep_length"],
        }


__all__ = ["NativeDQN", "NativePPO"]
