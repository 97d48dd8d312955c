"""What every many-seeds trainer shares (:mod:`kerasdojo.agents.seeds` for PPO,
:mod:`~kerasdojo.agents.seeds_dqn` for DQN, :mod:`~kerasdojo.agents.seeds_sac` for SAC):
networks with a leading seed axis, per-seed gradient clipping, initial weights drawn per
seed, per-seed observation and reward normalisation (:class:`SeedNormalizer`), and a base
class that holds the seeds' native envs and random streams, evaluates every seed greedily
in one compiled call, and moves each seed's envs and streams in and out of its checkpoint.

A lone seed gets a twin in the program: XLA simplifies a seed axis of size one into other
kernels, which would change its arithmetic; with the twin, seed ``k`` alone computes the same
bits as beside other seeds in the tests. Other seed counts can make XLA pick other kernels,
and then a seed's numbers differ in the last bits (RESULTS.md, "Many seeds": PPO on CartPole
stayed identical from 1 to 33 seeds, PPO on Pendulum and DQN differed at 16). Only the first
``n`` rows are reported.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kerasdojo import backend
from kerasdojo.agents.native import NativeTrainer
from kerasdojo.agents.streams import RowStreams, Streams
from kerasdojo.envs.native.vector import NativeVecEnv
from kerasdojo.envs.normalization import Normalizer
from kerasdojo.errors import DojoError

# --------------------------------------------------------------------------- the networks


def orthogonal(rng: np.random.Generator, fan_in: int, fan_out: int, gain: float) -> np.ndarray:
    """An orthogonal ``(fan_in, fan_out)`` matrix times ``gain`` (as Keras' ``Orthogonal``)."""
    a = rng.standard_normal((max(fan_in, fan_out), min(fan_in, fan_out)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if fan_in < fan_out:
        q = q.T
    return (gain * q[:fan_in, :fan_out]).astype(np.float32)


def initial_weights(seed: int, sizes: list[int], head_gain: float, salt: int) -> list[np.ndarray]:
    """Kernel and bias of each layer of an MLP of ``sizes`` for ``seed``: orthogonal, gain
    sqrt(2) in the hidden layers and ``head_gain`` in the last, biases 0 (SB3's ortho_init)."""
    rng = np.random.default_rng([seed, salt])
    weights = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        gain = head_gain if i == len(sizes) - 2 else math.sqrt(2)
        weights += [orthogonal(rng, fan_in, fan_out, gain), np.zeros(fan_out, np.float32)]
    return weights


def fan_in_weights(seed: int, sizes: list[int], salt: int) -> list[np.ndarray]:
    """Kernel and bias of each layer of an MLP of ``sizes`` for ``seed``: kernels uniform in
    +-1/sqrt(fan_in), biases 0 (``networks.initializer("fan_in_uniform")`` with Keras' zero biases)."""
    rng = np.random.default_rng([seed, salt])
    weights = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        limit = 1.0 / math.sqrt(fan_in)
        weights += [rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32), np.zeros(fan_out, np.float32)]
    return weights


class SeedMLP:
    """MLPs of the same sizes, one per seed, as kernels ``(seeds, in, out)`` and biases
    ``(seeds, out)``: their weights in the order of a Keras model of Dense layers."""

    def __init__(self, weights: list[list[np.ndarray]], activation: str, name: str) -> None:
        keras = backend.keras()
        self.activation = keras.activations.get(activation)
        stacked = [np.stack(ws) for ws in zip(*weights, strict=True)]
        self.weights = [keras.Variable(w, name=f"{name}_{i}") for i, w in enumerate(stacked)]

    def __call__(self, x: Any) -> Any:
        """``x`` shaped ``(seeds, batch, in)`` to ``(seeds, batch, out)``."""
        tf = backend.tf()
        n = len(self.weights) // 2
        for i in range(n):
            x = tf.matmul(x, self.weights[2 * i]) + self.weights[2 * i + 1][:, None, :]
            if i < n - 1:
                x = self.activation(x)
        return x


def clip_per_seed(grads: list[Any], max_norm: float) -> list[Any]:
    """Each seed's gradients scaled to a global norm of at most ``max_norm``, as Keras'
    ``global_clipnorm`` does for one model (``g * c / max(norm, c)``), the norm per seed."""
    tf = backend.tf()
    squares = [tf.reduce_sum(tf.square(g), axis=list(range(1, len(g.shape)))) for g in grads]
    norm = tf.sqrt(tf.add_n(squares))
    scale = max_norm / tf.maximum(norm, max_norm)
    return [g * tf.reshape(scale, [-1] + [1] * (len(g.shape) - 1)) for g in grads]


# --------------------------------------------------------------------------- normalisation

NORM_KEYS = ("obs_mean", "obs_var", "obs_count", "ret_mean", "ret_var", "ret_count")


def rms_per_seed(mean: Any, var: Any, count: Any, batch: Any, where: Any = None) -> None:
    """Gymnasium's ``RunningMeanStd`` update of each seed's statistics (``mean``/``var``
    ``(seeds, ...)``, ``count`` ``(seeds,)``) with its own rows of ``batch`` ``(seeds, n, ...)``,
    those where ``where`` ``(seeds, n)`` is True; the formulas of the one-seed update
    (:func:`kerasdojo.envs.native.vector._rms_update`), row by row."""
    tf = backend.tf()
    w = tf.ones(tf.shape(batch)[:2], tf.float64) if where is None else tf.cast(where, tf.float64)
    features = [1] * (len(batch.shape) - 2)
    b_count = tf.reduce_sum(w, axis=1)

    def rows(x: Any) -> Any:  # (seeds,) against (seeds, *features)
        return tf.reshape(x, [-1, *features])

    safe = rows(tf.maximum(b_count, 1.0))
    w = w[(...,) + (None,) * len(features)]
    b_mean = tf.reduce_sum(w * batch, axis=1) / safe
    b_var = tf.reduce_sum(w * (batch - b_mean[:, None]) ** 2, axis=1) / safe
    delta = b_mean - mean
    total = count + b_count
    m2 = var * rows(count) + b_var * rows(b_count) + delta**2 * rows(count) * rows(b_count) / rows(total)
    mean.assign(mean + delta * rows(b_count) / rows(total))
    var.assign(m2 / rows(total))
    count.assign(total)


class SeedNormalizer:
    """SB3's VecNormalize statistics of every seed, in variables with a leading seed axis, updated
    inside the compiled call as :class:`~kerasdojo.envs.native.vector.TFNormalizer` updates one
    seed's: each seed's observations and discounted returns feed only its own statistics."""

    def __init__(self, members: int, obs_dim: int, n_envs: int, cfg: Any) -> None:
        tf = backend.tf()
        self.norm_obs, self.norm_reward = bool(cfg.normalize_obs), bool(cfg.normalize_reward)
        self.gamma = getattr(cfg, "gamma", 0.99)
        self.template = Normalizer((obs_dim,), self.norm_obs, self.norm_reward, self.gamma)
        self.clip, self.epsilon = self.template.clip, self.template.epsilon
        f64, S = tf.float64, members
        self.vars = {
            "obs_mean": tf.Variable(tf.zeros([S, obs_dim], f64), trainable=False),
            "obs_var": tf.Variable(tf.ones([S, obs_dim], f64), trainable=False),
            "obs_count": tf.Variable(tf.fill([S], tf.constant(1e-4, f64)), trainable=False),
            "ret_mean": tf.Variable(tf.zeros([S], f64), trainable=False),
            "ret_var": tf.Variable(tf.ones([S], f64), trainable=False),
            "ret_count": tf.Variable(tf.fill([S], tf.constant(1e-4, f64)), trainable=False),
        }
        self.returns = tf.Variable(tf.zeros([S, n_envs], f64), trainable=False)

    def update_obs(self, obs: Any, where: Any = None) -> None:
        """Add each seed's observations ``(seeds, n, obs_dim)`` (where ``where`` is True) to its statistics."""
        if self.norm_obs:
            v = self.vars
            rms_per_seed(v["obs_mean"], v["obs_var"], v["obs_count"], backend.tf().cast(obs, "float64"), where)

    def observation(self, obs: Any) -> Any:
        """``obs`` ``(seeds, n, obs_dim)`` scaled by each seed's statistics (which it leaves alone)."""
        tf = backend.tf()
        if not self.norm_obs:
            return obs
        mean, var = self.vars["obs_mean"][:, None], self.vars["obs_var"][:, None]
        out = (tf.cast(obs, tf.float64) - mean) / tf.sqrt(var + self.epsilon)
        return tf.cast(tf.clip_by_value(out, -self.clip, self.clip), tf.float32)

    def reward(self, reward: Any, done: Any) -> Any:
        """Rewards ``(seeds, envs)`` over the running std of each seed's discounted returns."""
        tf = backend.tf()
        if not self.norm_reward:
            return reward
        v = self.vars
        returns = self.returns * self.gamma + tf.cast(reward, tf.float64)
        rms_per_seed(v["ret_mean"], v["ret_var"], v["ret_count"], returns)
        self.returns.assign(tf.where(done, tf.zeros_like(returns), returns))
        out = tf.cast(reward, tf.float64) / tf.sqrt(v["ret_var"][:, None] + self.epsilon)
        return tf.cast(tf.clip_by_value(out, -self.clip, self.clip), tf.float32)

    def snapshot(self, k: int) -> dict[str, np.ndarray]:
        """Seed ``k``'s statistics, as :meth:`Normalizer.state` names them."""
        return {key: np.array(var.numpy()[k]) for key, var in self.vars.items()}

    def load(self, states: list[dict[str, np.ndarray]]) -> None:
        """Each seed's saved statistics (``norm/<key>`` arrays of its checkpoint) and running returns."""
        for key, var in self.vars.items():
            var.assign(np.stack([np.asarray(s[f"norm/{key}"], np.float64) for s in states]))
        self.returns.assign(np.stack([np.asarray(s["seeds/norm_returns"], np.float64) for s in states]))


# --------------------------------------------------------------------------- replay


class SeedReplay:
    """Every seed's replay buffer in variables shaped ``(capacity, seeds, ...)``: every seed
    stores as many transitions per call, so they share ``pos`` and ``size``. Columns are
    :data:`~kerasdojo.agents.tf_replay.KEYS`, as a one-seed agent's buffer holds them."""

    def __init__(self, capacity: int, members: int, obs_dim: int, action_shape: tuple[int, ...], action_dtype: Any):
        tf = backend.tf()
        self.capacity, self.members = capacity, members
        shapes = {"obs": [obs_dim], "actions": list(action_shape), "rewards": [], "next_obs": [obs_dim]}
        shapes["terminated"] = []
        self.vars = {
            k: tf.Variable(
                tf.zeros([capacity, members, *shape], action_dtype if k == "actions" else tf.float32), trainable=False
            )
            for k, shape in shapes.items()
        }
        self.pos, self.size = tf.Variable(0, trainable=False), tf.Variable(0, trainable=False)

    def store(self, columns: dict[str, Any]) -> None:
        """Add ``n`` transitions of every seed (each column shaped ``(n, seeds, ...)``, in the order
        of a one-seed buffer); more than the buffer holds: the last ``capacity`` stay."""
        tf = backend.tf()
        cap = self.capacity
        n = int(columns["rewards"].shape[0])
        rows = (self.pos + tf.range(n)) % cap
        keep = slice(-cap, None) if n > cap else slice(None)
        for key, x in columns.items():
            self.vars[key].scatter_nd_update(rows[keep, None], x[keep])
        self.pos.assign((self.pos + n) % cap)
        self.size.assign(tf.minimum(self.size + n, cap))

    def sample(self, stream: Any, k: int, batch: int) -> list[Any]:
        """``k`` minibatches of ``batch`` transitions of every seed, drawn uniformly from its own
        buffer with ``stream``: each column shaped ``(seeds, k, batch, ...)``."""
        tf = backend.tf()
        idx = stream.integers([k, batch], self.size)  # (S, k, B)
        at = tf.stack([idx, tf.broadcast_to(tf.range(self.members)[:, None, None], idx.shape)], axis=-1)
        return [tf.gather_nd(self.vars[c].read_value(), at) for c in self.vars]

    def to_buffer(self, k: int, buf: Any) -> None:
        """Copy seed ``k``'s transitions into a one-seed NumPy buffer (what checkpoints hold)."""
        size = int(self.size.numpy())
        for key, var in self.vars.items():
            field = getattr(buf, key)
            field[:size] = var[:size, k].numpy().reshape(field[:size].shape)
        buf.pos, buf.size = int(self.pos.numpy()), size

    def load(self, states: list[dict[str, np.ndarray]], meta: dict[str, Any]) -> None:
        """Load each seed's saved buffer (``replay/<column>`` arrays, ``replay/size`` and
        ``replay/pos`` in ``meta``: the seeds stopped at the same step)."""
        size, pos = int(meta["replay/size"]), int(meta["replay/pos"])
        for key, var in self.vars.items():
            data = var.numpy()
            for k, s in enumerate(states):
                data[:size, k] = np.asarray(s[f"replay/{key}"]).reshape(data[:size, k].shape)
            var.assign(data)
        self.pos.assign(pos)
        self.size.assign(size)


# --------------------------------------------------------------------------- the trainers


class SeedTrainer(NativeTrainer):
    """The seeds, their native envs (``n_envs`` rows per seed, seed after seed) and random
    streams (``stream_names``: ``env`` draws the envs' starts, ``eval`` the evaluations'), and
    the greedy evaluation of every seed. Subclasses give :meth:`_greedy`."""

    stream_names: tuple[str, ...] = ()

    def _seat(self, cfg: Any, env_id: str, seeds: list[int], eval_episodes: int) -> list[int]:
        """Set up the seeds' envs and streams; returns the program's members (a lone seed twice)."""
        self.cfg, self.seeds, self.n = cfg, list(seeds), len(seeds)
        members = self.seeds * 2 if self.n == 1 else self.seeds
        self.members = len(members)
        self.n_envs, self.eval_episodes = cfg.n_envs, eval_episodes
        self.env = NativeVecEnv(env_id, self.members * cfg.n_envs, seed=0)
        self.streams = {name: Streams(members, salt) for salt, name in enumerate(self.stream_names)}
        self.env.rng = RowStreams(self.streams["env"], cfg.n_envs)
        self.env.reset()
        native_env = self.env.env
        self.obs_dim, self.discrete = native_env.obs_dim, native_env.discrete
        self.action_shape: tuple[int, ...] = () if self.discrete else tuple(self.env.single_action_space.shape)
        self.traces = 0
        self.n_updates = 0
        self.norm: SeedNormalizer | None = None  # a trainer that normalises sets its own
        return members

    def normalizer_state(self, k: int, snapshot: dict[str, list[Any]] | None = None) -> dict[str, np.ndarray] | None:
        """Seed ``k``'s observation and return statistics, now or as ``snapshot`` took them
        (None: this program normalises nothing)."""
        if self.norm is None:
            return None
        if snapshot is not None:
            return dict(zip(NORM_KEYS, snapshot["norm"], strict=True))
        return self.norm.snapshot(k)

    def evaluate(self) -> tuple[np.ndarray, np.ndarray]:
        """Every seed's greedy evaluation: returns and lengths ``(seeds, episodes)``."""
        returns, lengths = self._evaluate()
        return returns.numpy()[: self.n], lengths.numpy()[: self.n]

    def seed_extra(self, k: int) -> dict[str, np.ndarray]:
        """Seed ``k``'s envs and stream counters: what a resume needs besides its agent state."""
        rows = slice(k * self.n_envs, (k + 1) * self.n_envs)
        env = self.env
        out = {key: var.numpy()[rows] for key, var in (("state", env.state), ("t", env.t))}
        out |= {key: var.numpy()[rows] for key, var in (("ep_return", env.ep_return), ("ep_length", env.ep_length))}
        out |= {f"rng/{name}": s.counter.numpy()[k : k + 1] for name, s in self.streams.items()}
        if self.norm is not None:  # each env's discounted return so far, which reward scaling goes on from
            out["norm_returns"] = self.norm.returns.numpy()[k]
        return out

    def _load_envs(self, states: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Check the count of saved seeds and load their envs and stream counters (as
        :meth:`seed_extra` wrote them); returns the states, a lone seed's twice."""
        if len(states) != self.n:
            raise DojoError(f"a batched program of {self.n} seeds was given {len(states)} saved states")
        states = states * (self.members // self.n)
        try:
            env = self.env
            for key, var in (("state", env.state), ("t", env.t), ("ep_return", env.ep_return)):
                var.assign(np.concatenate([s[f"seeds/{key}"] for s in states]))
            env.ep_length.assign(np.concatenate([s["seeds/ep_length"] for s in states]))
            for name, stream in self.streams.items():
                stream.counter.assign(np.concatenate([s[f"seeds/rng/{name}"] for s in states]))
            if self.norm is not None:
                self.norm.load(states)
        except (KeyError, ValueError) as exc:
            raise DojoError(f"a seed's checkpoint does not fit this batched program: {exc}") from None
        return states

    def _greedy(self, obs: Any) -> Any:
        """The greedy actions of every seed for ``obs`` ``(seeds, episodes, obs_dim)``, shaped
        ``(seeds, episodes, *action_shape)``."""
        raise NotImplementedError

    def _evaluation(self) -> tuple[Any, Any]:
        """Greedy episodes on fresh native envs, ``eval_episodes`` per seed, each to its end, from
        the same start states at every evaluation (as the Gymnasium path's seeded evaluation env)."""
        tf = backend.tf()
        native_env, S, K = self.env.env, self.members, self.eval_episodes
        stream = self.streams["eval"]
        stream.counter.assign(tf.zeros_like(stream.counter))
        state = native_env.initial(RowStreams(stream, K), S * K)
        zeros = tf.zeros([S * K], tf.float64)
        alive = tf.ones([S * K], tf.bool)

        def body(t: Any, state: Any, alive: Any, ret: Any, length: Any) -> Any:
            obs = tf.reshape(native_env.observe(state), [S, K, self.obs_dim])
            if self.norm is not None:
                obs = self.norm.observation(obs)
            actions = tf.reshape(self._greedy(obs), [S * K, *self.action_shape])
            state, reward, terminated = native_env.dynamics(state, actions)  # the env clips a continuous action
            ret = ret + tf.where(alive, tf.cast(reward, tf.float64), 0.0)
            length = length + tf.cast(alive, tf.int32)
            alive = alive & ~terminated & (t + 1 < native_env.max_episode_steps)
            return t + 1, state, alive, ret, length

        def cond(t: Any, state: Any, alive: Any, ret: Any, length: Any) -> Any:
            return tf.reduce_any(alive)

        start = (tf.constant(0), state, alive, zeros, tf.zeros([S * K], tf.int32))
        _, _, _, ret, length = tf.while_loop(cond, body, start)
        return tf.reshape(ret, [S, K]), tf.reshape(length, [S, K])


__all__ = [
    "SeedMLP",
    "SeedNormalizer",
    "SeedReplay",
    "SeedTrainer",
    "clip_per_seed",
    "fan_in_weights",
    "initial_weights",
]
