"""Many seeds in one compiled program: PPO on a TensorFlow-native env, every seed at once.

Each seed has its own networks, optimizer state, envs and random streams, stacked along a
leading seed axis: a layer of all the seeds is one batched matrix product (kernels
``(seeds, in, out)``), the envs of all the seeds one batch of the native twin, and one XLA
call runs a whole PPO iteration (rollout, GAE, every epoch and minibatch) of every seed.
The seeds never mix: advantages are standardised and losses reduced per seed, gradients
are clipped per seed, minibatches are drawn per seed (``tf.gather(batch_dims=1)``), Adam
works element by element, and the seeds' losses are summed, so the gradient of one seed's
weights is that seed's own. A preset that normalises observations and rewards (Acrobot's,
MountainCar's) keeps each seed's statistics apart too (:class:`~kerasdojo.agents.seed_base.SeedNormalizer`).

Random numbers come from counter-based streams (:class:`~kerasdojo.agents.streams.Streams`): draw ``j`` of a seed is a
hash of the seed, the stream and ``j``, not a shared generator, so what a seed draws does not
depend on which other seeds share its program. That is what makes seed ``k`` of a batched run
train exactly as seed ``k`` alone (``tests/agents/test_seeds.py``), where XLA's kernels do not
change with the seed count (:mod:`~kerasdojo.agents.seed_base`). It is not the stream of
``train --native``, so a batched seed follows another trajectory than that command's.

Evaluation runs in the same program style: ``episodes`` native envs per seed, greedy, each
episode to its end, from the same start states at every evaluation (as the Gymnasium path's
seeded evaluation env). :mod:`kerasdojo.experiments.batched` drives it and writes each seed's
run directory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kerasdojo import backend
from kerasdojo.agents import distributions
from kerasdojo.agents.onpolicy import gae_tf
from kerasdojo.agents.ppo import LOSS_NAMES, clipped_loss, loss_statistics, minibatch_weights
from kerasdojo.agents.rules import schedule_tf
from kerasdojo.agents.seed_base import NORM_KEYS, SeedMLP, SeedNormalizer, SeedTrainer, clip_per_seed, initial_weights
from kerasdojo.agents.speed import compiled
from kerasdojo.agents.streams import SeedDraws
from kerasdojo.errors import DojoError

# --------------------------------------------------------------------------- the rules


def explained_variance_rows(returns: Any, values: Any) -> Any:
    """Each seed's explained variance of its returns ``(seeds, n)``."""
    tf = backend.tf()
    var_y = tf.math.reduce_variance(returns, axis=-1)
    ev = 1.0 - tf.math.reduce_variance(returns - values, axis=-1) / tf.where(var_y == 0, 1.0, var_y)
    return tf.where(var_y == 0, float("nan"), ev)


# --------------------------------------------------------------------------- the trainer


def ppo_unbatchable(cfg: Any, env_id: str) -> str | None:
    """Why PPO with ``cfg`` cannot train its seeds in one program on ``env_id`` (None: it can)."""
    from kerasdojo.envs import native

    if env_id not in native.ENVS:
        return f"{env_id} has no TensorFlow-native twin"
    if not cfg.ortho_init:
        return "ortho_init is off (batched PPO draws orthogonal initial weights)"
    if cfg.target_kl > 0:
        return "target_kl is set (its early stop would end the epochs of every seed at once)"
    return None


class SeedsPPO(SeedTrainer):
    """PPO for ``seeds`` at once on the native twin of ``env_id``: one compiled call per iteration
    of every seed, and one compiled greedy evaluation of every seed."""

    stream_names = ("env", "act", "perm", "eval")

    def __init__(self, cfg: Any, env_id: str, seeds: list[int], eval_episodes: int) -> None:
        why = ppo_unbatchable(cfg, env_id)
        if why:
            raise DojoError(f"cannot batch these seeds: {why}")
        members = self._seat(cfg, env_id, seeds, eval_episodes)
        self.draws = SeedDraws(self.streams["act"])
        if cfg.normalize_obs or cfg.normalize_reward:  # each seed's own VecNormalize statistics
            self.norm = SeedNormalizer(self.members, self.obs_dim, self.n_envs, cfg)
        native_env = self.env.env
        keras = backend.keras()
        # Categorical logits, or a Gaussian's mean with a state-independent log-std per seed (as PPO).
        if self.discrete:
            self.dist: Any = distributions.Categorical(native_env.n_actions)
            outputs = native_env.n_actions
        else:
            self.dist = distributions.DiagGaussian(self.action_shape)
            outputs = int(np.prod(self.action_shape))
        sizes = [self.obs_dim, *cfg.net_arch]
        pi = [initial_weights(s, [*sizes, outputs], 0.01, 0) for s in members]
        self.pi = SeedMLP(pi, cfg.activation, "pi")
        self.vf = SeedMLP([initial_weights(s, [*sizes, 1], 1.0, 1) for s in members], cfg.activation, "vf")
        self.train_vars = [*self.pi.weights, *self.vf.weights]
        self.log_std = None
        if not self.discrete:
            std = np.full((self.members, outputs), cfg.log_std_init, np.float32)
            self.log_std = keras.Variable(std, name="log_std")
            self.train_vars.append(self.log_std)
        self.opt = keras.optimizers.Adam(learning_rate=cfg.learning_rate, epsilon=cfg.adam_eps)
        self.opt.build(self.train_vars)
        self._numpy: dict[str, list[np.ndarray]] | None = None
        self._iterate = compiled(self._iteration, jit=True, autograph=False)
        self._evaluate = compiled(self._evaluation, jit=True, autograph=False)
        # The update runs outside XLA: from 16 seeds up TensorFlow's own batched matrix products
        # are as fast as XLA's or faster (243 against 282 ms an iteration of 64 seeds; RESULTS.md,
        # "Many seeds").
        self._train = compiled(self._update, jit=False, autograph=False)

    # ------------------------------------------------------------------ called from Python
    def iterate(self, step: int, total_steps: int) -> tuple[int, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """One iteration of every seed: the env steps each took, its scalars ``(seeds,)``, and its
        finished episodes (``done``, ``ep_return``, ``ep_length`` shaped ``(steps, seeds, envs)``)."""
        out = self._iterate(np.float32(step / total_steps))
        stats = self._train(out.pop("batch"), out.pop("clip"))
        out |= {f"train/{k}": v for k, v in stats.items() if k != "gradient_steps"}
        out["gradient_steps"] = stats["gradient_steps"]
        self._numpy = None
        n = self.n
        episodes = {k: out.pop(k).numpy()[:, :n] for k in ("done", "ep_return", "ep_length")}
        self.n_updates += int(out.pop("gradient_steps"))
        metrics = {k: v.numpy()[:n] for k, v in out.items()}
        return self.cfg.n_steps * self.n_envs, metrics, episodes

    # ------------------------------------------------------------------ one seed as a PPO agent
    def _arrays(self) -> dict[str, list[np.ndarray]]:
        if self._numpy is None:
            self._numpy = {
                "pi": [w.numpy() for w in self.pi.weights],
                "vf": [w.numpy() for w in self.vf.weights],
                "opt": [v.numpy() for v in self.opt.variables],
            }
            if self.log_std is not None:
                self._numpy["log_std"] = [self.log_std.numpy()]
            if self.norm is not None:  # a best agent's snapshot keeps the statistics it acted with
                self._numpy["norm"] = [self.norm.vars[key].numpy() for key in NORM_KEYS]
        return self._numpy

    def snapshot(self, k: int) -> dict[str, list[np.ndarray]]:
        """Copies of seed ``k``'s weights and Adam state (the optimizer's scalars as they are)."""
        return {name: [np.array(w[k] if w.ndim else w) for w in ws] for name, ws in self._arrays().items()}

    def to_agent(self, k: int, agent: Any, snapshot: dict[str, list[np.ndarray]] | None = None) -> None:
        """Put seed ``k``'s weights and Adam state (now, or as ``snapshot`` took them) into ``agent``,
        a one-seed PPO of the same shapes."""
        seed = snapshot if snapshot is not None else self.snapshot(k)
        agent.pi.set_weights(seed["pi"])
        agent.vf.set_weights(seed["vf"])
        if self.log_std is not None:
            agent.log_std.assign(seed["log_std"][0])
        for mine, theirs in zip(seed["opt"], agent.opt.variables, strict=True):
            theirs.assign(mine)

    def load_seeds(self, saved: list[tuple[dict[str, np.ndarray], dict[str, Any]]], n_updates: int) -> None:
        """Load each seed's saved state (arrays and meta, as a checkpoint of :meth:`to_agent`'s
        agent and :meth:`seed_extra` holds them)."""
        states = self._load_envs([arrays for arrays, _ in saved])
        try:
            for i, w in enumerate(self.pi.weights):
                w.assign(np.stack([s[f"net/policy/{i}"] for s in states]))
            for i, w in enumerate(self.vf.weights):
                w.assign(np.stack([s[f"net/value/{i}"] for s in states]))
            if self.log_std is not None:
                self.log_std.assign(np.stack([s["var/log_std"] for s in states]))
            for j, v in enumerate(self.opt.variables):
                saved = [s[f"opt/adam/{j}"] for s in states]
                v.assign(np.stack(saved) if len(v.shape) == saved[0].ndim + 1 else saved[0])
        except (KeyError, ValueError) as exc:
            raise DojoError(f"a seed's checkpoint does not fit this batched program: {exc}") from None
        self.n_updates = n_updates
        self._numpy = None

    # ------------------------------------------------------------------ compiled
    def _forward(self, obs: Any) -> tuple[tuple[Any, ...], Any]:
        """The distribution's parameters (logits; or the mean and each seed's log-std, shaped
        ``(seeds, 1, dim)``) and the values of ``obs`` shaped ``(seeds, batch, obs_dim)``."""
        tf = backend.tf()
        out = self.pi(obs)
        params = (out,) if self.log_std is None else (out, tf.expand_dims(self.log_std, 1))
        return params, self.vf(obs)[..., 0]

    def _iteration(self, progress: Any) -> dict[str, Any]:
        tf = backend.tf()
        self.traces += 1
        cfg, env, S, E, T = self.cfg, self.env, self.members, self.n_envs, self.cfg.n_steps
        lr = schedule_tf(cfg.lr_schedule, cfg.learning_rate, progress)
        clip = schedule_tf(cfg.clip_schedule, cfg.clip_range, progress)
        self.opt.learning_rate.assign(lr)

        f32 = tf.float32
        columns = {"obs": f32, "actions": tf.int32 if self.discrete else f32, "log_probs": f32, "values": f32}
        columns |= {"rewards": f32, "terminated": f32, "done": tf.bool, "final_obs": f32, "ep_return": tf.float64}
        columns |= {"ep_length": tf.int32}

        def seeds_first(x: Any) -> Any:  # (S * E, ...) -> (S, E, ...)
            return tf.reshape(x, [S, E, *x.shape[1:]])

        norm = self.norm

        def scaled(obs: Any) -> Any:  # (S * E, obs_dim) by each seed's statistics, flat again
            return obs if norm is None else tf.reshape(norm.observation(seeds_first(obs)), [S * E, self.obs_dim])

        def step_fn(i: Any, state: Any, t: Any, obs: Any, ep_return: Any, ep_length: Any) -> Any:
            params, value = self._forward(seeds_first(obs))
            actions, log_probs = self.dist.tf_sample(*params, self.draws)
            out, ep_return, ep_length, (done, ep_ret_end, ep_len_end) = env.tf_step(
                state, t, tf.reshape(actions, [S * E, *self.action_shape]), ep_return, ep_length
            )
            reward = seeds_first(out.reward)
            if norm is not None:  # as NativePPO: the last observation of an episode and the next one's first
                norm.update_obs(seeds_first(out.final_obs))
                norm.update_obs(seeds_first(out.obs), where=seeds_first(done))
                reward = norm.reward(reward, seeds_first(done))
            row = (seeds_first(obs), actions, log_probs, value, reward)
            row += (seeds_first(tf.cast(out.terminated, f32)), seeds_first(done), seeds_first(scaled(out.final_obs)))
            row += (seeds_first(ep_ret_end), seeds_first(ep_len_end))
            return row, out, ep_return, ep_length, scaled(out.obs)

        obs, data = self._rollout(T, scaled(env.observe()), columns, step_fn)  # columns (T, S, E, ...)
        values, done = data["values"], data["done"]
        last_value = self._forward(seeds_first(obs))[1]
        final_obs = tf.reshape(tf.transpose(data["final_obs"], [1, 0, 2, 3]), [S, T * E, self.obs_dim])
        final_values = tf.transpose(tf.reshape(self._forward(final_obs)[1], [S, T, E]), [1, 0, 2])
        following = tf.concat([values[1:], last_value[None]], axis=0)
        next_values = tf.where(done, final_values, following)  # an ended episode bootstraps from its own last obs

        def envs_flat(x: Any) -> Any:  # (T, S, E) -> (T, S * E) for GAE, and back
            return tf.reshape(x, [T, S * E])

        advantages, returns = gae_tf(
            *(envs_flat(x) for x in (data["rewards"], values, next_values, data["terminated"], done)),
            cfg.gamma,
            cfg.gae_lambda,
        )

        def per_seed(x: Any) -> Any:  # (T, S, E, ...) -> (S, T * E, ...), each seed's rollout in time order
            x = tf.reshape(x, [T, S, E, *x.shape[3:]]) if len(x.shape) == 2 else x
            x = tf.transpose(x, [1, 0, 2, *range(3, len(x.shape))])
            return tf.reshape(x, [S, T * E, *x.shape[3:]])

        out = {"batch": [per_seed(data[k]) for k in ("obs", "actions", "log_probs")]}
        out["batch"] += [per_seed(advantages), per_seed(returns), per_seed(values)]
        out["clip"] = clip
        out["train/explained_variance"] = explained_variance_rows(per_seed(returns), per_seed(values))
        out["train/learning_rate"] = lr * tf.ones([S])
        out["train/clip_range"] = clip * tf.ones([S])
        for key in ("done", "ep_return", "ep_length"):
            out[key] = data[key]
        return out

    def _update(self, batch: list[Any], clip: Any) -> dict[str, Any]:
        """Every epoch and minibatch of every seed: PPO's loss per seed, summed over the seeds."""
        tf = backend.tf()
        cfg, S = self.cfg, self.members
        obs, actions, old_logp, advantages, returns, old_values = batch
        n = obs.shape[1]
        bs = min(cfg.batch_size, n)
        n_mb = n // bs
        total = cfg.n_epochs * n_mb
        batches = None  # as PPO: no permutation when every minibatch is the whole rollout
        if bs < n:
            perms = tf.argsort(self.streams["perm"].uniform([cfg.n_epochs, n]), axis=-1)[:, :, : n_mb * bs]
            batches = tf.reshape(perms, [S, total, bs])
        valid = tf.ones([S, bs])

        def body(i: Any, sums: tuple[Any, ...]) -> Any:
            rows = (obs, actions, old_logp, advantages, returns, old_values)
            if batches is not None:
                idx = batches[:, i]
                rows = tuple(tf.gather(x, idx, batch_dims=1) for x in rows)
            o, a, olp, adv, ret, ov = rows
            weight, adv = minibatch_weights(cfg, adv, valid)
            with tf.GradientTape() as tape:
                params, value = self._forward(o)
                logp, entropy = self.dist.tf_log_prob_entropy(*params, a)
                loss, parts = clipped_loss(cfg, logp, entropy, olp, adv, ret, value, ov, weight, clip)
                total_loss = tf.reduce_sum(loss)
            _, stats = loss_statistics(weight, clip, parts)
            grads = clip_per_seed(tape.gradient(total_loss, self.train_vars), cfg.max_grad_norm)
            self.opt.apply(grads, self.train_vars)
            return i + 1, tuple(a + b for a, b in zip(sums, stats, strict=True))

        start = (tf.constant(0), tuple(tf.zeros([S]) for _ in LOSS_NAMES))
        _, sums = tf.while_loop(lambda i, _: i < total, body, start)
        out = {k: v / float(total) for k, v in zip(LOSS_NAMES, sums, strict=True)}
        out["gradient_steps"] = tf.constant(float(total))
        if self.log_std is not None:
            out["std"] = tf.reduce_mean(tf.exp(self.log_std), axis=-1)
        return out

    def _greedy(self, obs: Any) -> Any:
        """The most likely action, or the Gaussian's mean."""
        tf = backend.tf()
        out = self.pi(obs)
        return tf.argmax(out, axis=-1, output_type=tf.int32) if self.discrete else out


__all__ = ["SeedsPPO", "ppo_unbatchable"]
