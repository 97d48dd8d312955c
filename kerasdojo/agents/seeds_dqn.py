"""Many seeds in one compiled program: DQN on a TensorFlow-native env, every seed at once.

As :mod:`kerasdojo.agents.seeds` does for PPO: each seed has its own Q-network, target
network, Adam state, replay buffer, envs and random streams along a leading seed axis, and
one XLA call runs ``train_freq`` vector steps of every seed (epsilon-greedy acting, the env
step, storing the transitions) and then ``gradient_steps`` gradient steps of every seed on
minibatches drawn from its own buffer. The rules are NativeDQN's (SB3's): uniformly random
actions before ``learning_starts``, a linearly decaying epsilon, Double DQN's target, the
Huber loss, the target updates due during a collection collapsed into one before the
update, the global gradient norm clipped (per seed here). Losses are reduced per seed and
summed, so a seed's gradient is its own.

A seed's checkpoint is a plain DQN agent state, its replay buffer included, so ``kerasdojo
eval``, ``export`` and ``resume`` take the run as any DQN run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kerasdojo import backend
from kerasdojo.agents.buffers import check_replay_memory
from kerasdojo.agents.rules import (
    collapsed_tau,
    due_updates,
    gradient_steps,
    linear_tf,
    polyak,
    target_interval,
    updates_start,
)
from kerasdojo.agents.seed_base import SeedMLP, SeedReplay, SeedTrainer, clip_per_seed, fan_in_weights
from kerasdojo.agents.speed import compiled, repeat
from kerasdojo.agents.tf_replay import KEYS
from kerasdojo.errors import DojoError
from kerasdojo.observations import ObsSpec


def dqn_unbatchable(cfg: Any, env_id: str) -> str | None:
    """Why DQN with ``cfg`` cannot train its seeds in one program on ``env_id`` (None: it can)."""
    from kerasdojo.envs import native

    if env_id not in native.ENVS:
        return f"{env_id} has no TensorFlow-native twin"
    if not native.ENVS[env_id].discrete:
        return f"{env_id} has continuous actions (DQN acts in Discrete spaces)"
    if cfg.normalize_obs or cfg.normalize_reward:
        return "normalize_obs/normalize_reward are set (DQN replays raw observations)"
    if cfg.dueling:
        return "dueling is set (batched DQN has the plain Q head only)"
    if cfg.init != "fan_in_uniform":
        return f"init is {cfg.init} (batched DQN draws fan_in_uniform weights)"
    # overlap_update is the Gymnasium path's (an update in a thread beside the env steps); like
    # NativeDQN, one compiled call runs both, so it has nothing to overlap.
    if cfg.optimize_memory_usage or cfg.her:
        return "optimize_memory_usage or her is set (batched DQN has a plain replay buffer)"
    return None


class SeedsDQN(SeedTrainer):
    """DQN for ``seeds`` at once on the native twin of ``env_id``: one compiled call per
    ``train_freq`` vector steps of every seed and its update, one compiled greedy evaluation."""

    stream_names = ("env", "act", "sample", "eval")

    def __init__(self, cfg: Any, env_id: str, seeds: list[int], eval_episodes: int) -> None:
        why = dqn_unbatchable(cfg, env_id)
        if why:
            raise DojoError(f"cannot batch these seeds: {why}")
        members = self._seat(cfg, env_id, seeds, eval_episodes)
        tf, keras = backend.tf(), backend.keras()
        self.n_actions = self.env.env.n_actions
        sizes = [self.obs_dim, *cfg.net_arch, self.n_actions]
        weights = [fan_in_weights(s, sizes, 0) for s in members]
        self.q = SeedMLP(weights, cfg.activation, "q")
        self.q_target = SeedMLP(weights, cfg.activation, "q_target")  # starts as a copy, as DQN's
        self.opt = keras.optimizers.Adam(learning_rate=cfg.learning_rate, epsilon=cfg.adam_eps)
        self.opt.build(self.q.weights)
        # The seeds' buffers, and the one-seed agent's NumPy buffer a checkpoint is written through.
        check_replay_memory((self.members + 1) * cfg.buffer_size, ObsSpec.box((self.obs_dim,)))
        self.huber = keras.losses.Huber(delta=1.0, reduction=None)  # DQN's (SB3's smooth L1), not averaged over seeds
        self.replay = SeedReplay(cfg.buffer_size, self.members, self.obs_dim, (), tf.int32)
        self.calls = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.pending = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.exploration_rate = float(cfg.exploration_initial_eps)
        self._numpy: dict[str, list[np.ndarray]] | None = None
        self._iterate = compiled(self._iteration, jit=True, autograph=False)
        self._evaluate = compiled(self._evaluation, jit=True, autograph=False)

    # ------------------------------------------------------------------ called from Python
    def iterate(self, step: int, total_steps: int) -> tuple[int, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """``train_freq`` vector steps of every seed and its update: the env steps each took, its
        scalars ``(seeds,)`` and its finished episodes (shaped ``(steps, seeds, envs)``)."""
        cfg, n = self.cfg, self.n
        out = self._iterate(np.int64(step), np.int64(total_steps))
        self._numpy = None
        episodes = {k: out.pop(k).numpy()[:, :n] for k in ("done", "ep_return", "ep_length")}
        self.exploration_rate = float(out["rollout/exploration_rate"].numpy())
        metrics = {"rollout/exploration_rate": np.full(n, self.exploration_rate)}
        taken = cfg.train_freq * self.n_envs
        if bool(out["trained"].numpy()):
            self.n_updates += gradient_steps(cfg.gradient_steps, taken)
            metrics["train/loss"] = out["train/loss"].numpy()[:n]
            metrics["train/q_values"] = out["train/q_values"].numpy()[:n]
            metrics["train/learning_rate"] = np.full(n, cfg.learning_rate)
        return taken, metrics, episodes

    # ------------------------------------------------------------------ one seed as a DQN agent
    def _arrays(self) -> dict[str, list[np.ndarray]]:
        if self._numpy is None:
            self._numpy = {
                "q": [w.numpy() for w in self.q.weights],
                "q_target": [w.numpy() for w in self.q_target.weights],
                "opt": [v.numpy() for v in self.opt.variables],
            }
        return self._numpy

    def snapshot(self, k: int) -> dict[str, list[np.ndarray]]:
        """Copies of seed ``k``'s networks and Adam state (the optimizer's scalars as they are)."""
        return {name: [np.array(w[k] if w.ndim else w) for w in ws] for name, ws in self._arrays().items()}

    def to_agent(self, k: int, agent: Any, snapshot: dict[str, list[np.ndarray]] | None = None) -> None:
        """Put seed ``k`` into ``agent``, a one-seed DQN of the same shapes: its networks and Adam
        state (now, or as ``snapshot`` took them), and, now, its replay buffer and target counts."""
        seed = snapshot if snapshot is not None else self.snapshot(k)
        agent.q.set_weights(seed["q"])
        agent.q_target.set_weights(seed["q_target"])
        for mine, theirs in zip(seed["opt"], agent.opt.variables, strict=True):
            theirs.assign(mine)
        if snapshot is not None:
            return
        self.replay.to_buffer(k, agent.buffer)
        agent.n_calls, agent.pending_target_updates = int(self.calls.numpy()), int(self.pending.numpy())
        agent.exploration_rate = self.exploration_rate

    def load_seeds(self, saved: list[tuple[dict[str, np.ndarray], dict[str, Any]]], n_updates: int) -> None:
        """Load each seed's saved state (arrays and meta, as a checkpoint of :meth:`to_agent`'s
        agent and :meth:`seed_extra` holds them)."""
        states = self._load_envs([arrays for arrays, _ in saved])
        meta = saved[0][1]
        try:
            for i, w in enumerate(self.q.weights):
                w.assign(np.stack([s[f"net/q/{i}"] for s in states]))
            for i, w in enumerate(self.q_target.weights):
                w.assign(np.stack([s[f"net/q_target/{i}"] for s in states]))
            for j, v in enumerate(self.opt.variables):
                slots = [s[f"opt/adam/{j}"] for s in states]
                v.assign(np.stack(slots) if len(v.shape) == slots[0].ndim + 1 else slots[0])
            self.replay.load(states, meta)
        except (KeyError, ValueError) as exc:
            raise DojoError(f"a seed's checkpoint does not fit this batched program: {exc}") from None
        self.calls.assign(int(meta.get("n_calls", 0)))
        self.pending.assign(int(meta.get("pending_target_updates", 0)))
        self.exploration_rate = float(meta.get("exploration_rate", self.cfg.exploration_final_eps))
        self.n_updates = n_updates
        self._numpy = None

    # ------------------------------------------------------------------ compiled
    def _greedy(self, obs: Any) -> Any:
        tf = backend.tf()
        return tf.argmax(self.q(obs), axis=-1, output_type=tf.int32)

    def _iteration(self, step: Any, total_steps: Any) -> dict[str, Any]:
        tf = backend.tf()
        self.traces += 1
        cfg, env, S, E, T = self.cfg, self.env, self.members, self.n_envs, self.cfg.train_freq
        taken = T * E
        f32 = tf.float32
        columns = {"obs": f32, "actions": tf.int32, "rewards": f32, "next_obs": f32, "terminated": f32}
        columns |= {"done": tf.bool, "ep_return": tf.float64, "ep_length": tf.int32}

        def seeds_first(x: Any) -> Any:  # (S * E, ...) -> (S, E, ...)
            return tf.reshape(x, [S, E, *x.shape[1:]])

        def epsilon(i: Any) -> tuple[Any, Any]:
            done_steps = step + tf.cast(i * E, tf.int64)
            progress = tf.cast(done_steps, f32) / tf.cast(total_steps, f32)
            eps = linear_tf(cfg.exploration_initial_eps, cfg.exploration_final_eps, cfg.exploration_fraction, progress)
            return eps, done_steps

        def step_fn(i: Any, state: Any, t: Any, obs: Any, ep_return: Any, ep_length: Any) -> Any:
            eps, done_steps = epsilon(i)
            greedy = self._greedy(seeds_first(obs))
            explore = self.streams["act"].uniform([E]) < eps
            random = self.streams["act"].integers([E], self.n_actions)
            explore = explore | (done_steps < cfg.learning_starts)  # uniformly random at first, as SB3
            actions = tf.where(explore, random, greedy)
            out, ep_return, ep_length, (done, ep_ret_end, ep_len_end) = env.tf_step(
                state, t, tf.reshape(actions, [S * E]), ep_return, ep_length
            )
            # next_obs is the true last observation where an episode ended: truncations bootstrap.
            row = (seeds_first(obs), actions, seeds_first(out.reward), seeds_first(out.final_obs))
            row += (seeds_first(tf.cast(out.terminated, f32)), seeds_first(done))
            row += (seeds_first(ep_ret_end), seeds_first(ep_len_end))
            return row, out, ep_return, ep_length, out.obs

        _, data = self._rollout(T, env.observe(), columns, step_fn)  # columns (T, S, E, ...)

        def in_order(x: Any) -> Any:  # (T, S, E, ...) -> (T * E, S, ...): a one-seed buffer's order
            x = tf.transpose(x, [0, 2, 1, *range(3, len(x.shape))])
            return tf.reshape(x, [taken, S, *x.shape[3:]])

        self.replay.store({k: in_order(data[k]) for k in KEYS})
        target_every = target_interval(cfg.target_update_interval, E)
        calls = self.calls + T
        self.pending.assign_add(due_updates(self.calls, calls, target_every))
        self.calls.assign(calls)
        n_grad = gradient_steps(cfg.gradient_steps, taken)
        train = updates_start(step, taken, cfg.learning_starts, n_grad)

        def train_steps() -> tuple[Any, Any]:
            # The online nets have not changed since the last update: the target updates due collapse into one.
            tau = collapsed_tau(cfg.tau, tf.cast(self.pending, f32))
            polyak(self.q_target.weights, self.q.weights, tau, where=self.pending > 0)
            self.pending.assign(0)
            return self._train_steps(n_grad)

        zeros = tf.zeros([S])
        loss, q_mean = tf.cond(train, train_steps, lambda: (zeros, zeros))
        out = {"train/loss": loss, "train/q_values": q_mean, "trained": train}
        out["rollout/exploration_rate"] = epsilon(T - 1)[0]
        for key in ("done", "ep_return", "ep_length"):
            out[key] = data[key]
        return out

    def _train_steps(self, k: int) -> tuple[Any, Any]:
        """``k`` gradient steps of every seed on minibatches drawn uniformly from its own buffer;
        each seed's mean loss and Q value over them."""
        tf = backend.tf()
        cfg, S = self.cfg, self.members
        obs, actions, rewards, next_obs, terminated = self.replay.sample(self.streams["sample"], k, cfg.batch_size)

        def body(i: Any, sums: tuple[Any, Any]) -> tuple[Any, Any]:
            o, a, r, o2, d = (x[:, i] for x in (obs, actions, rewards, next_obs, terminated))
            q_next_target = self.q_target(o2)
            if cfg.double_q:
                next_actions = tf.argmax(self.q(o2), axis=-1, output_type=tf.int32)
                q_next = tf.gather(q_next_target, next_actions, batch_dims=2)
            else:
                q_next = tf.reduce_max(q_next_target, axis=-1)
            target = tf.stop_gradient(r + cfg.gamma * (1.0 - d) * q_next)
            with tf.GradientTape() as tape:
                q = tf.gather(self.q(o), a, batch_dims=2)
                loss = self.huber(target, q)  # each seed's mean over its minibatch
                total = tf.reduce_sum(loss)
            grads = clip_per_seed(tape.gradient(total, self.q.weights), cfg.max_grad_norm)
            self.opt.apply(grads, self.q.weights)
            return sums[0] + loss, sums[1] + tf.reduce_mean(q, axis=-1)

        loss_sum, q_sum = repeat(k, body, (tf.zeros([S]), tf.zeros([S])))
        count = float(max(k, 1))
        return loss_sum / count, q_sum / count


__all__ = ["SeedsDQN", "dqn_unbatchable"]
