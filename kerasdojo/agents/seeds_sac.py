"""Many seeds in one compiled program: SAC on a TensorFlow-native env, every seed at once.

As :mod:`kerasdojo.agents.seeds` does for PPO: each seed has its own actor, twin critics and
their targets, entropy coefficient, three Adam states, replay buffer, envs and random streams
along a leading seed axis (the critics of seed ``k`` are members ``2k`` and ``2k + 1`` of one
batched network). One XLA call runs up to :data:`~kerasdojo.agents.native_offpolicy.CHUNK`
env steps of every seed, followed every ``train_freq`` vector steps by ``gradient_steps``
gradient steps of every seed on minibatches drawn from its own buffer. The rules are SAC's
(SB3's): uniformly random actions before ``learning_starts``, soft Bellman targets from the
target critics and a fresh next action, the actor's reparameterised loss, the entropy
coefficient tuned towards the target entropy (``-|A|`` by default) or fixed, Polyak-averaged
targets. Losses are per seed and summed,
so a seed's gradients are its own.

A seed's checkpoint is a plain SAC agent state (actor, critic ensemble, optimizers, entropy
coefficient, replay buffer): ``kerasdojo eval``, ``export`` and ``resume`` take the run as any.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kerasdojo import backend
from kerasdojo.agents.buffers import check_replay_memory
from kerasdojo.agents.native_offpolicy import CHUNK
from kerasdojo.agents.rules import gradient_steps, polyak, scale_actions, schedule, schedule_tf, updates_start
from kerasdojo.agents.seed_base import SeedMLP, SeedReplay, SeedTrainer, fan_in_weights
from kerasdojo.agents.speed import compiled, repeat
from kerasdojo.agents.squashed import SquashedDiagGaussian
from kerasdojo.agents.streams import SeedDraws
from kerasdojo.errors import DojoError
from kerasdojo.observations import ObsSpec

LOSSES = ("actor_loss", "critic_loss", "ent_coef", "ent_coef_loss")
PAIRED = ("critics", "critics_target", "opt_critic")  # seed k's rows are 2k and 2k + 1


def sac_unbatchable(cfg: Any, env_id: str) -> str | None:
    """Why SAC with ``cfg`` cannot train its seeds in one program on ``env_id`` (None: it can)."""
    from kerasdojo.envs import native

    if env_id not in native.ENVS:
        return f"{env_id} has no TensorFlow-native twin"
    if native.ENVS[env_id].discrete:
        return f"{env_id} has discrete actions (SAC acts in Box spaces)"
    if cfg.init != "fan_in_uniform":
        return f"init is {cfg.init} (batched SAC draws fan_in_uniform weights)"
    if cfg.her:
        return "her is set (batched SAC has a plain replay buffer)"
    if cfg.normalize_obs or cfg.normalize_reward:
        return "normalize_obs/normalize_reward are set (SAC replays raw observations)"
    if cfg.buffer_size < cfg.n_envs:
        return "buffer_size is below n_envs (one vector step would not fit the buffer)"
    return None


class SeedsSAC(SeedTrainer):
    """SAC for ``seeds`` at once on the native twin of ``env_id``: one compiled call per chunk of
    vector steps and their updates, one compiled greedy evaluation."""

    stream_names = ("env", "act", "sample", "eval", "train")

    def __init__(self, cfg: Any, env_id: str, seeds: list[int], eval_episodes: int) -> None:
        why = sac_unbatchable(cfg, env_id)
        if why:
            raise DojoError(f"cannot batch these seeds: {why}")
        members = self._seat(cfg, env_id, seeds, eval_episodes)
        tf, keras = backend.tf(), backend.keras()
        space = self.env.single_action_space
        self.low, self.high = (np.asarray(b, np.float32).reshape(-1) for b in (space.low, space.high))
        A = self.action_dim = int(np.prod(self.action_shape))
        self.dist = SquashedDiagGaussian(A)
        self.draws, self.train_draws = SeedDraws(self.streams["act"]), SeedDraws(self.streams["train"])
        hidden = list(cfg.net_arch)
        self.actor = SeedMLP(
            [fan_in_weights(s, [self.obs_dim, *hidden, 2 * A], 0) for s in members], cfg.activation, "actor"
        )
        critics = [fan_in_weights(s, [self.obs_dim + A, *hidden, 1], 1 + c) for s in members for c in range(2)]
        self.critics = SeedMLP(critics, cfg.activation, "critics")
        self.critics_target = SeedMLP(critics, cfg.activation, "critics_target")
        start, self.tune_entropy = cfg.entropy_start()
        self.log_ent_coef = keras.Variable(np.full(self.members, math.log(start), np.float32), name="log_ent_coef")
        self.target_entropy = float(-A if cfg.target_entropy == "auto" else float(cfg.target_entropy))
        self.opts = {
            name: keras.optimizers.Adam(learning_rate=cfg.learning_rate) for name in ("actor", "critic", "ent")
        }
        self.opts["actor"].build(self.actor.weights)
        self.opts["critic"].build(self.critics.weights)
        self.opts["ent"].build([self.log_ent_coef])
        # The seeds' buffers, and the one-seed agent's NumPy buffer a checkpoint is written through.
        check_replay_memory((self.members + 1) * cfg.buffer_size, ObsSpec.box((self.obs_dim,)))
        self.replay = SeedReplay(cfg.buffer_size, self.members, self.obs_dim, (A,), tf.float32)
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.per_call = max(1, CHUNK // (cfg.train_freq * self.n_envs)) * cfg.train_freq  # vector steps per call
        self._numpy: dict[str, list[np.ndarray]] | None = None
        self._iterate = compiled(self._iteration, jit=True, autograph=False)
        self._evaluate = compiled(self._evaluation, jit=True, autograph=False)

    # ------------------------------------------------------------------ called from Python
    def iterate(self, step: int, total_steps: int) -> tuple[int, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Up to a chunk of vector steps of every seed and their updates: the env steps each took,
        its scalars ``(seeds,)`` and its finished episodes (shaped ``(steps, seeds, envs)``)."""
        cfg, n, E, freq = self.cfg, self.n, self.n_envs, self.cfg.train_freq
        left = -(-(total_steps - step) // E)  # vector steps still to take, in whole cycles
        calls = min(self.per_call, -(-left // freq) * freq)
        out = self._iterate(np.int64(step), np.int64(total_steps), np.int32(calls))
        self._numpy = None
        episodes = {k: out.pop(k).numpy()[:calls, :n] for k in ("done", "ep_return", "ep_length")}
        self.n_updates = int(self.updates.numpy())
        metrics: dict[str, np.ndarray] = {}
        if bool(out["trained"].numpy()):
            metrics = {f"train/{k}": out[k].numpy()[:n] for k in LOSSES}
            last = step + (calls - freq) * E  # where the call's last cycle began: the rate it trained with
            metrics["train/learning_rate"] = np.full(
                n, schedule(cfg.lr_schedule, cfg.learning_rate, last / total_steps)
            )
        return calls * E, metrics, episodes

    # ------------------------------------------------------------------ one seed as a SAC agent
    def _arrays(self) -> dict[str, list[np.ndarray]]:
        if self._numpy is None:
            nets = {"actor": self.actor, "critics": self.critics, "critics_target": self.critics_target}
            self._numpy = {name: [w.numpy() for w in net.weights] for name, net in nets.items()}
            self._numpy |= {f"opt_{name}": [v.numpy() for v in opt.variables] for name, opt in self.opts.items()}
            self._numpy["log_ent_coef"] = [self.log_ent_coef.numpy()]
        return self._numpy

    def snapshot(self, k: int) -> dict[str, list[np.ndarray]]:
        """Copies of seed ``k``'s networks, optimizer states and entropy coefficient."""
        rows = {name: slice(2 * k, 2 * k + 2) if name in PAIRED else k for name in self._arrays()}
        return {name: [np.array(w[rows[name]] if w.ndim else w) for w in ws] for name, ws in self._arrays().items()}

    def to_agent(self, k: int, agent: Any, snapshot: dict[str, list[np.ndarray]] | None = None) -> None:
        """Put seed ``k`` into ``agent``, a one-seed SAC of the same shapes: its networks, optimizers
        and entropy coefficient (now, or as ``snapshot`` took them), and, now, its replay buffer."""
        seed = snapshot if snapshot is not None else self.snapshot(k)
        agent.actor.set_weights(seed["actor"])
        agent.critics.set_weights(seed["critics"])
        agent.critic_targets.set_weights(seed["critics_target"])
        opts = {"actor": agent.actor_opt, "critic": agent.critic_opt, "ent": agent.ent_opt}
        for name, opt in opts.items():
            for mine, theirs in zip(seed[f"opt_{name}"], opt.variables, strict=True):
                theirs.assign(mine)
        agent.log_ent_coef.assign(seed["log_ent_coef"][0])
        if snapshot is not None:
            return
        self.replay.to_buffer(k, agent.buffer)

    def load_seeds(self, saved: list[tuple[dict[str, np.ndarray], dict[str, Any]]], n_updates: int) -> None:
        """Load each seed's saved state (arrays and meta of a checkpoint)."""
        states = self._load_envs([arrays for arrays, _ in saved])
        try:
            for w, i in zip(self.actor.weights, range(len(self.actor.weights)), strict=True):
                w.assign(np.stack([s[f"net/actor/{i}"] for s in states]))
            for net, name in ((self.critics, "critics"), (self.critics_target, "critics_target")):
                for i, w in enumerate(net.weights):
                    w.assign(np.concatenate([s[f"net/{name}/{i}"] for s in states]))
            for name, key in (("actor", "actor"), ("critic", "critic"), ("ent", "ent_coef")):
                for j, v in enumerate(self.opts[name].variables):
                    slots = [s[f"opt/{key}/{j}"] for s in states]
                    if len(v.shape) == 0:
                        v.assign(slots[0])
                    else:
                        v.assign(np.concatenate(slots) if name == "critic" else np.stack(slots))
            self.log_ent_coef.assign(np.stack([s["var/log_ent_coef"] for s in states]))
            self.replay.load(states, saved[0][1])
        except (KeyError, ValueError) as exc:
            raise DojoError(f"a seed's checkpoint does not fit this batched program: {exc}") from None
        self.updates.assign(n_updates)
        self.n_updates = n_updates
        self._numpy = None

    # ------------------------------------------------------------------ compiled
    def _greedy(self, obs: Any) -> Any:
        out = self.actor(obs)
        return scale_actions(self.dist.tf_mode(out[..., : self.action_dim]), self.low, self.high)

    def _sample(self, obs: Any, draws: Any) -> tuple[Any, Any]:
        """Reparameterised actions of every seed's actor for ``obs`` ``(seeds, batch, obs_dim)``."""
        out = self.actor(obs)
        A = self.action_dim
        return self.dist.tf_sample(out[..., :A], out[..., A:], draws)

    def _q(self, net: SeedMLP, obs: Any, actions: Any) -> Any:
        """Both critics' values ``(seeds, 2, batch)``."""
        tf = backend.tf()
        x = tf.repeat(tf.concat([obs, actions], axis=-1), 2, axis=0)  # each seed's input, once per critic
        return tf.reshape(net(x)[..., 0], [self.members, 2, -1])

    def _train_steps(self, k: int) -> tuple[Any, ...]:
        """``k`` gradient steps of every seed; each seed's mean losses and entropy coefficient."""
        tf = backend.tf()
        cfg, S = self.cfg, self.members
        batch = self.replay.sample(self.streams["sample"], k, cfg.batch_size)
        actor_vars, critic_vars = self.actor.weights, self.critics.weights

        def step(i: Any, sums: tuple[Any, ...]) -> tuple[Any, ...]:
            o, a, r, o2, d = (x[:, i] for x in batch)
            ent_coef = tf.exp(self.log_ent_coef)[:, None]  # this step's value, before its own update
            next_a, next_logp = self._sample(o2, self.train_draws)
            q_next = tf.reduce_min(self._q(self.critics_target, o2, next_a), axis=1) - ent_coef * next_logp
            target = tf.stop_gradient(r + cfg.gamma * (1.0 - d) * q_next)
            with tf.GradientTape() as tape:
                per_seed = 0.5 * tf.reduce_sum(
                    tf.reduce_mean((self._q(self.critics, o, a) - target[:, None]) ** 2, -1), 1
                )
                total = tf.reduce_sum(per_seed)
            self.opts["critic"].apply(tape.gradient(total, critic_vars), critic_vars)
            with tf.GradientTape() as tape:
                a_pi, logp = self._sample(o, self.train_draws)
                q_pi = tf.reduce_min(self._q(self.critics, o, a_pi), axis=1)
                actor_loss = tf.reduce_mean(ent_coef * logp - q_pi, axis=-1)
                total = tf.reduce_sum(actor_loss)
            self.opts["actor"].apply(tape.gradient(total, actor_vars), actor_vars)
            excess = tf.stop_gradient(tf.reduce_mean(logp + self.target_entropy, axis=-1))
            ent_coef_loss = -self.log_ent_coef * excess
            if self.tune_entropy:
                self.opts["ent"].apply([-excess], [self.log_ent_coef])
            due = (self.updates + tf.cast(i, tf.int64) + 1) % cfg.target_update_interval == 0
            polyak(self.critics_target.weights, self.critics.weights, cfg.tau, where=due)
            values = (actor_loss, per_seed, ent_coef[:, 0], ent_coef_loss)
            return tuple(x + y for x, y in zip(sums, values, strict=True))

        sums = repeat(k, step, tuple(tf.zeros([S]) for _ in LOSSES))
        self.updates.assign_add(k)
        return tuple(s / float(max(k, 1)) for s in sums)

    def _iteration(self, step: Any, total_steps: Any, n: Any) -> dict[str, Any]:
        tf = backend.tf()
        self.traces += 1
        cfg, env, S, E, freq, A = self.cfg, self.env, self.members, self.n_envs, self.cfg.train_freq, self.action_dim
        taken = freq * E
        n_grad = gradient_steps(cfg.gradient_steps, taken)

        def seeds_first(x: Any) -> Any:  # (S * E, ...) -> (S, E, ...)
            return tf.reshape(x, [S, E, *x.shape[1:]])

        def update(cycle_start: Any) -> tuple[Any, ...]:
            if cfg.lr_schedule != "constant":
                progress = tf.cast(cycle_start, tf.float32) / tf.cast(total_steps, tf.float32)
                for opt in self.opts.values():
                    opt.learning_rate.assign(schedule_tf(cfg.lr_schedule, cfg.learning_rate, progress))
            return self._train_steps(n_grad)

        def body(i: Any, state: Any, t: Any, obs: Any, ep_return: Any, ep_length: Any, carry: Any) -> Any:
            records, sums, count = carry
            done_steps = step + tf.cast(i * E, tf.int64)
            warmup = done_steps < cfg.learning_starts
            uniform = 2.0 * self.streams["act"].uniform([E, A]) - 1.0
            explore = self._sample(seeds_first(obs), self.draws)[0]
            actions = tf.where(warmup, uniform, explore)  # (S, E, A) in [-1, 1]
            env_actions = tf.reshape(scale_actions(actions, self.low, self.high), [S * E, *self.action_shape])
            out, ep_return, ep_length, ends = env.tf_step(state, t, env_actions, ep_return, ep_length)
            # next_obs is the true last observation where an episode ended: truncations bootstrap.
            row = {"obs": seeds_first(obs), "actions": actions, "rewards": seeds_first(out.reward)}
            row |= {
                "next_obs": seeds_first(out.final_obs),
                "terminated": seeds_first(tf.cast(out.terminated, tf.float32)),
            }
            self.replay.store(
                {k: tf.transpose(tf.cast(v, tf.float32), [1, 0, *range(2, len(v.shape))]) for k, v in row.items()}
            )
            ends = tuple(seeds_first(x) for x in ends)
            records = tuple(tf.tensor_scatter_nd_update(r, [[i]], v[None]) for r, v in zip(records, ends, strict=True))
            cycle_start = done_steps - (freq - 1) * E
            train = ((i + 1) % freq == 0) & updates_start(cycle_start, taken, cfg.learning_starts, n_grad)
            values = tf.cond(train, lambda: update(cycle_start), lambda: tuple(tf.zeros([S]) for _ in LOSSES))
            sums = tuple(s + v for s, v in zip(sums, values, strict=True))
            carry = (records, sums, count + tf.cast(train, tf.float32))
            return i + 1, out.state, out.t, tf.cast(out.obs, tf.float32), ep_return, ep_length, carry

        size = self.per_call
        records = (
            tf.zeros([size, S, E], tf.bool),
            tf.zeros([size, S, E], tf.float64),
            tf.zeros([size, S, E], tf.int32),
        )
        zeros = tuple(tf.zeros([S]) for _ in LOSSES)
        start = (tf.constant(0), env.state.read_value(), env.t.read_value(), tf.cast(env.observe(), tf.float32))
        start += (env.ep_return.read_value(), env.ep_length.read_value(), (records, zeros, tf.constant(0.0)))
        _, state, t, _, ep_return, ep_length, carry = tf.while_loop(lambda i, *_: i < n, body, start)
        env.state.assign(state)
        env.t.assign(t)
        env.ep_return.assign(ep_return)
        env.ep_length.assign(ep_length)
        (done, ep_ret, ep_len), sums, count = carry
        out = {k: s / tf.maximum(count, 1.0) for k, s in zip(LOSSES, sums, strict=True)}
        return out | {"trained": count > 0, "done": done, "ep_return": ep_ret, "ep_length": ep_len}


__all__ = ["SeedsSAC", "sac_unbatchable"]
