"""The vector env a ``--native`` trainer drives: a batch of TensorFlow-native envs whose state
lives in variables, with what the session and its hooks read from any vector env (spaces,
episode statistics, the normaliser). :class:`TFNormalizer` keeps SB3's VecNormalize
statistics in variables, updated inside the compiled call.

Gymnasium's wrappers (which the NumPy path's :class:`~kerasdojo.envs.wrappers.VecEnv` stacks)
cannot serve here: they wrap a Gymnasium env and compute in NumPy, while these steps, episode
ends and statistics updates run inside one compiled TensorFlow call, so what they compute is
written again below in TensorFlow, with the same formulas."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from kerasdojo import backend
from kerasdojo.envs import native, spaces_of
from kerasdojo.envs.wrappers import EpisodeStats, Normalizer
from kerasdojo.observations import ObsSpec


class TFNormalizer(Normalizer):
    """SB3's VecNormalize statistics kept in TensorFlow variables (updated inside the compiled
    call); ``state``/``load_state`` and the NumPy fields read and write those variables."""

    def __init__(self, obs_shape: tuple[int, ...], obs: bool, reward: bool, gamma: float, n_envs: int) -> None:
        super().__init__(obs_shape, obs, reward, gamma)
        tf = backend.tf()
        f64 = tf.float64
        self.vars = {
            "obs_mean": tf.Variable(tf.zeros(obs_shape, f64), trainable=False),
            "obs_var": tf.Variable(tf.ones(obs_shape, f64), trainable=False),
            "obs_count": tf.Variable(tf.constant(1e-4, f64), trainable=False),
            "ret_mean": tf.Variable(tf.constant(0.0, f64), trainable=False),
            "ret_var": tf.Variable(tf.constant(1.0, f64), trainable=False),
            "ret_count": tf.Variable(tf.constant(1e-4, f64), trainable=False),
        }
        self.returns = tf.Variable(tf.zeros([n_envs], f64), trainable=False)

    def pull(self) -> None:
        """Copy the variables into the NumPy statistics (for export and evaluation)."""
        Normalizer.load_state(self, {k: v.numpy() for k, v in self.vars.items()})

    def observation(self, obs: np.ndarray) -> np.ndarray:
        """``obs`` scaled as the compiled call scales it; only that call updates the statistics."""
        return self.tf_observation(obs, update=False).numpy()

    def state(self) -> dict[str, np.ndarray]:
        self.pull()
        return super().state()

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        super().load_state(state)
        for key, var in self.vars.items():
            var.assign(np.asarray(state[key], np.float64))

    # ------------------------------------------------------------------ inside the compiled call
    def update_obs(self, obs: Any, where: Any = None) -> None:
        """Add a batch of observations (the rows where ``where`` is True) to the statistics.
        Training always updates them; ``training`` applies to the NumPy path only."""
        if self.norm_obs:
            v = self.vars
            _rms_update(v["obs_mean"], v["obs_var"], v["obs_count"], backend.tf().cast(obs, "float64"), where)

    def tf_observation(self, obs: Any, update: bool = True) -> Any:
        tf = backend.tf()
        if not self.norm_obs:
            return obs
        v = self.vars
        x = tf.cast(obs, tf.float64)
        if update:
            _rms_update(v["obs_mean"], v["obs_var"], v["obs_count"], x)
        out = (x - v["obs_mean"]) / tf.sqrt(v["obs_var"] + self.epsilon)
        return tf.cast(tf.clip_by_value(out, -self.clip, self.clip), tf.float32)

    def tf_reward(self, reward: Any, done: Any) -> Any:
        tf = backend.tf()
        if not self.norm_reward:
            return reward
        v = self.vars
        returns = self.returns * self.gamma + tf.cast(reward, tf.float64)
        _rms_update(v["ret_mean"], v["ret_var"], v["ret_count"], returns)
        self.returns.assign(tf.where(done, tf.zeros_like(returns), returns))
        out = tf.cast(reward, tf.float64) / tf.sqrt(v["ret_var"] + self.epsilon)
        return tf.cast(tf.clip_by_value(out, -self.clip, self.clip), tf.float32)


def _rms_update(mean: Any, var: Any, count: Any, batch: Any, where: Any = None) -> None:
    """Gymnasium's ``RunningMeanStd`` update (:class:`~kerasdojo.envs.wrappers.RunningMeanStd`),
    on variables; with ``where``, over the rows where it is True (no change when there are none)."""
    tf = backend.tf()
    if where is None:
        w = tf.ones([tf.shape(batch)[0]], tf.float64)
    else:
        w = tf.cast(where, tf.float64)
    w = tf.reshape(w, [-1] + [1] * (len(batch.shape) - 1))
    b_count = tf.reduce_sum(w)
    safe = tf.maximum(b_count, 1.0)
    b_mean = tf.reduce_sum(w * batch, axis=0) / safe
    b_var = tf.reduce_sum(w * (batch - b_mean) ** 2, axis=0) / safe
    delta = b_mean - mean
    total = count + b_count
    m2 = var * count + b_var * b_count + delta**2 * count * b_count / total
    mean.assign(mean + delta * b_count / total)
    var.assign(m2 / total)
    count.assign(total)


class NativeVecEnv(EpisodeStats):
    """A batch of native envs, with what the session and its hooks read from a vector env:
    spaces, episode statistics and the normaliser. The env state lives in variables that the
    agent's compiled call reads and writes; :meth:`record` takes its finished episodes."""

    def __init__(
        self,
        env_id: str,
        n_envs: int,
        seed: int,
        normalize_obs: bool = False,
        normalize_reward: bool = False,
        gamma: float = 0.99,
    ) -> None:
        tf = backend.tf()
        self.env = native.make(env_id)
        self.env_id = env_id
        self.num_envs = n_envs
        self.single_observation_space, self.single_action_space = spaces_of(env_id)
        self.obs_shape = (self.env.obs_dim,)
        self.obs_dtype = np.float32
        self.obs_spec = ObsSpec.box(self.obs_shape)
        self.action_mask = None  # the native twins have no illegal actions
        self._normalizer = TFNormalizer(self.obs_shape, normalize_obs, normalize_reward, gamma, n_envs)
        self.rng = tf.random.Generator.from_seed(seed)
        self.state = tf.Variable(tf.zeros([n_envs, self.env.state_dim], self.env.dtype), trainable=False)
        self.t = tf.Variable(tf.zeros([n_envs], tf.int32), trainable=False)
        self.ep_return = tf.Variable(tf.zeros([n_envs], tf.float64), trainable=False)
        self.ep_length = tf.Variable(tf.zeros([n_envs], tf.int32), trainable=False)
        self.episode_returns: deque[float] = deque(maxlen=100)
        self.episode_lengths: deque[int] = deque(maxlen=100)
        self.episodes = 0
        self.reset(seed)

    @property
    def normalizer(self) -> TFNormalizer:
        self._normalizer.pull()
        return self._normalizer

    @property
    def tf_normalizer(self) -> TFNormalizer:
        """The normaliser as compiled code uses it (its statistics in variables, not pulled)."""
        return self._normalizer

    def observe(self) -> Any:
        """The envs' current observations, inside compiled code."""
        return self.env.observe(self.state)

    def reset(self, seed: int | None = None) -> None:
        tf = backend.tf()
        if seed is not None:
            self.rng.reset_from_seed(seed)
        self.state.assign(self.env.initial(self.rng, self.num_envs))
        for var in (self.t, self.ep_return, self.ep_length, self._normalizer.returns):
            var.assign(tf.zeros_like(var))

    # ------------------------------------------------------------------ inside the compiled call
    def tf_step(self, state: Any, t: Any, actions: Any, ep_return: Any, ep_length: Any) -> tuple[Any, ...]:
        """One step of every env with episode bookkeeping: returns the :class:`native.Step`
        and the running returns and lengths, with the finished episodes' totals."""
        tf = backend.tf()
        if not self.env.discrete:
            actions = tf.clip_by_value(actions, self.env.action_low, self.env.action_high)
        out = native.step(self.env, state, t, actions, self.rng)
        done = out.terminated | out.truncated
        ep_return = ep_return + tf.cast(out.reward, tf.float64)
        ep_length = ep_length + 1
        finished = (done, ep_return, ep_length)
        zeros = tf.zeros_like(ep_return)
        return out, tf.where(done, zeros, ep_return), tf.where(done, 0, ep_length), finished

    # ------------------------------------------------------------------ after the call
    def record(self, done: np.ndarray, returns: np.ndarray, lengths: np.ndarray) -> None:
        """Add the episodes a call finished (arrays shaped [steps, n_envs]) to the statistics."""
        for t, i in zip(*np.nonzero(done), strict=True):
            self.episode_returns.append(float(returns[t, i]))
            self.episode_lengths.append(int(lengths[t, i]))
            self.episodes += 1

    def close(self) -> None:
        pass
