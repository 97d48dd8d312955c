"""Action distributions, one class per kind (after Stable-Baselines3's ``distributions.py``).

Each class is built once per agent with what is fixed (the number of actions, the action
shape) and keeps no state: its methods take the network outputs (``logits``, or ``mean``
and ``log_std``) first, then the random generator or the actions, so a caller can hold
the parameters as a tuple and write ``dist.np_sample(*params, rng)``. Every method comes
in two twins with the same arithmetic:

- ``np_*``: NumPy, for fast acting between environment steps (a ``numpy.random.Generator``);
  ``np_sample`` and ``np_mode`` return actions in the action space's shape.
- ``tf_*``: TensorFlow, inside compiled updates and XLA rollouts (a ``tf.random.Generator``);
  actions are flat, shaped ``(batch,)`` or ``(batch, dim)``.

Log-probabilities are summed over action dimensions, one per batch row. TensorFlow is
imported on first use through :func:`kerasdojo.backend.tf`, so importing this module is
cheap. :func:`for_space` picks the distribution of a Gymnasium action space.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from kerasdojo import backend
from kerasdojo.errors import DojoError

LOG_2PI = math.log(2.0 * math.pi)
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3's clamp of SAC's state-dependent log-std


class ActionDistribution:
    """What every action distribution declares: the shape and NumPy dtype of one action as the env takes it."""

    action_shape: tuple[int, ...]
    action_dtype: ClassVar[type] = np.float32


@dataclasses.dataclass(frozen=True)
class Categorical(ActionDistribution):
    """Categorical over ``n`` actions from unnormalised logits shaped ``(batch, n)``; sampled with Gumbel-max."""

    n: int
    action_dtype: ClassVar[type] = np.int64

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Shape of one action: a scalar index."""
        return ()

    # ------------------------------------------------------------------ NumPy
    def np_sample(self, logits: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Actions ``argmax(logits + Gumbel noise)`` (one ``rng.random`` call) and their log-probabilities."""
        logits = logits - logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        gumbel = -np.log(-np.log(rng.random(logits.shape, dtype=np.float32) + 1e-20) + 1e-20)
        actions = np.argmax(logits + gumbel, axis=1)
        return actions, log_probs[np.arange(len(actions)), actions]

    def np_log_prob(self, logits: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Log-probabilities ``log_softmax(logits)[actions]``."""
        logits = logits - logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return log_probs[np.arange(len(log_probs)), np.asarray(actions).reshape(-1)]

    def np_entropy(self, logits: np.ndarray) -> np.ndarray:
        """Entropy ``-sum p log p`` per row."""
        logits = logits - logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return -(np.exp(log_probs) * log_probs).sum(axis=1)

    def np_mode(self, logits: np.ndarray) -> np.ndarray:
        """The most likely actions, ``argmax(logits)``."""
        return logits.argmax(axis=1)

    # ------------------------------------------------------------------ TensorFlow
    def tf_sample(self, logits: Any, tf_rng: Any) -> tuple[Any, Any]:
        """Int32 actions ``argmax(log_softmax - log(-log u))``, ``u ~ U[1e-20, 1)``, and their log-probabilities."""
        tf = backend.tf()
        log_p = tf.nn.log_softmax(logits)
        u = tf_rng.uniform(tf.shape(logits), minval=1e-20, maxval=1.0)
        actions = tf.argmax(log_p - tf.math.log(-tf.math.log(u)), axis=1, output_type=tf.int32)
        return actions, tf.gather(log_p, actions, batch_dims=1)

    def tf_log_prob_entropy(self, logits: Any, actions: Any) -> tuple[Any, Any]:
        """Log-probabilities of ``actions`` and the entropy, from one ``log_softmax``."""
        tf = backend.tf()
        log_p = tf.nn.log_softmax(logits)
        logp = tf.gather(log_p, actions, batch_dims=1)
        entropy = -tf.reduce_sum(tf.exp(log_p) * log_p, axis=1)
        return logp, entropy

    def tf_log_prob(self, logits: Any, actions: Any) -> Any:
        """Log-probabilities ``log_softmax(logits)[actions]``."""
        return self.tf_log_prob_entropy(logits, actions)[0]

    def tf_entropy(self, logits: Any) -> Any:
        """Entropy ``-sum p log p`` per row."""
        tf = backend.tf()
        log_p = tf.nn.log_softmax(logits)
        return -tf.reduce_sum(tf.exp(log_p) * log_p, axis=1)

    def tf_mode(self, logits: Any) -> Any:
        """The most likely actions (int32), ``argmax(logits)``."""
        tf = backend.tf()
        return tf.argmax(logits, axis=1, output_type=tf.int32)


@dataclasses.dataclass(frozen=True)
class DiagGaussian(ActionDistribution):
    """Diagonal Gaussian over actions shaped ``action_shape``: mean ``(batch, dim)``, a state-independent
    ``log_std`` shaped ``(dim,)`` (the variable in TF, its float32 copy in NumPy); sampled unclipped."""

    action_shape: tuple[int, ...]

    # ------------------------------------------------------------------ NumPy
    def np_sample(
        self, mean: np.ndarray, log_std: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Actions ``mean + exp(log_std) * noise`` (one ``rng.standard_normal``), shaped for the env, and log-probs."""
        noise = rng.standard_normal(mean.shape, dtype=np.float32)
        actions = mean + np.exp(log_std) * noise
        log_probs = (-0.5 * noise**2 - log_std - 0.5 * LOG_2PI).sum(axis=1)
        return actions.reshape(len(mean), *self.action_shape), log_probs

    def np_log_prob(self, mean: np.ndarray, log_std: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Log-density ``sum_j log N(a_j; mean_j, exp(log_std_j))`` of ``actions`` (any shape per row)."""
        z = (actions.reshape(mean.shape) - mean) * np.exp(-log_std)
        return (-0.5 * z**2 - log_std - 0.5 * LOG_2PI).sum(axis=1)

    def np_entropy(self, mean: np.ndarray, log_std: np.ndarray) -> np.ndarray:
        """Entropy ``sum_j (log_std_j + (1 + log 2 pi) / 2)``, repeated per row."""
        return (log_std + 0.5 * (1.0 + LOG_2PI)).sum() * np.ones(len(mean), np.float32)

    def np_mode(self, mean: np.ndarray, log_std: np.ndarray | None = None) -> np.ndarray:
        """The mean, shaped for the env."""
        return mean.reshape(len(mean), *self.action_shape)

    # ------------------------------------------------------------------ TensorFlow
    def tf_sample(self, mean: Any, log_std: Any, tf_rng: Any) -> tuple[Any, Any]:
        """Flat actions ``mean + exp(log_std) * noise`` (one ``tf_rng.normal``) and their log-probabilities."""
        tf = backend.tf()
        noise = tf_rng.normal(tf.shape(mean))
        actions = mean + tf.exp(log_std) * noise
        return actions, tf.reduce_sum(-0.5 * noise**2 - log_std - 0.5 * LOG_2PI, axis=1)

    def tf_log_prob_entropy(self, mean: Any, log_std: Any, actions: Any) -> tuple[Any, Any]:
        """Log-density of ``actions`` (reshaped to the mean's shape) and the entropy, per row."""
        tf = backend.tf()
        flat_actions = tf.reshape(actions, tf.shape(mean))
        z = (flat_actions - mean) * tf.exp(-log_std)
        logp = tf.reduce_sum(-0.5 * z**2 - log_std - 0.5 * LOG_2PI, axis=1)
        entropy = tf.reduce_sum(log_std + 0.5 * (1.0 + LOG_2PI)) * tf.ones_like(logp)
        return logp, entropy

    def tf_log_prob(self, mean: Any, log_std: Any, actions: Any) -> Any:
        """Log-density ``sum_j log N(a_j; mean_j, exp(log_std_j))`` of ``actions``."""
        return self.tf_log_prob_entropy(mean, log_std, actions)[0]

    def tf_entropy(self, mean: Any, log_std: Any) -> Any:
        """Entropy ``sum_j (log_std_j + (1 + log 2 pi) / 2)``, repeated per row."""
        tf = backend.tf()
        return tf.reduce_sum(log_std + 0.5 * (1.0 + LOG_2PI)) * tf.ones(tf.shape(mean)[:1])

    def tf_mode(self, mean: Any, log_std: Any = None) -> Any:
        """The mean (flat)."""
        return mean


@dataclasses.dataclass(frozen=True)
class SquashedDiagGaussian(ActionDistribution):
    """``a = tanh(u)``, ``u ~ N(mean, exp(log_std))`` over ``action_dim`` actions in [-1, 1] (SAC's actor).

    ``mean`` and ``log_std`` are both network outputs shaped ``(batch, action_dim)``; every method
    first clips ``log_std`` to ``log_std_bounds`` (none when ``None``). The log-probability applies the
    change of variables, ``log N(u) - sum_j log(1 - tanh(u_j)^2)``, with
    ``log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u))`` so that it stays finite at the bounds.
    The entropy has no closed form: ``np_entropy`` and ``tf_entropy`` return ``None`` (as SB3);
    estimate it with ``-log_prob`` of a sample.
    """

    action_dim: int
    log_std_bounds: tuple[float, float] | None = (LOG_STD_MIN, LOG_STD_MAX)
    eps: ClassVar[float] = 1e-6  # actions are clipped to [-1 + eps, 1 - eps] before atanh in log_prob

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Shape of one action: ``(action_dim,)``."""
        return (self.action_dim,)

    # ------------------------------------------------------------------ NumPy
    def np_clip_log_std(self, log_std: np.ndarray) -> np.ndarray:
        """``log_std`` clipped to ``log_std_bounds``."""
        return log_std if self.log_std_bounds is None else np.clip(log_std, *self.log_std_bounds)

    def np_sample(
        self, mean: np.ndarray, log_std: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Actions ``tanh(mean + std * noise)`` (one ``rng.standard_normal``) and their log-probabilities."""
        log_std = self.np_clip_log_std(log_std)
        std = np.exp(log_std)
        noise = rng.standard_normal(mean.shape, dtype=np.float32)
        u = mean + std * noise
        log_normal = -0.5 * noise**2 - log_std - 0.5 * LOG_2PI
        log_det = 2.0 * (math.log(2.0) - u - np.logaddexp(0.0, -2.0 * u))
        return np.tanh(u), (log_normal - log_det).sum(axis=-1)

    def np_log_prob(self, mean: np.ndarray, log_std: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Log-density of ``actions`` in (-1, 1), through ``u = atanh(a)`` (``a`` clipped ``eps`` inside the bounds)."""
        log_std = self.np_clip_log_std(log_std)
        a = np.clip(actions, -1.0 + self.eps, 1.0 - self.eps)
        u = np.arctanh(a)
        z = (u - mean) * np.exp(-log_std)
        log_det = 2.0 * (math.log(2.0) - u - np.logaddexp(0.0, -2.0 * u))
        return (-0.5 * z**2 - log_std - 0.5 * LOG_2PI - log_det).sum(axis=-1)

    def np_entropy(self, mean: np.ndarray, log_std: np.ndarray) -> None:
        """No closed form: ``None``."""
        return None

    def np_mode(self, mean: np.ndarray, log_std: np.ndarray | None = None) -> np.ndarray:
        """``tanh(mean)``."""
        return np.tanh(mean)

    # ------------------------------------------------------------------ TensorFlow
    def tf_clip_log_std(self, log_std: Any) -> Any:
        """``log_std`` clipped to ``log_std_bounds``."""
        if self.log_std_bounds is None:
            return log_std
        return backend.tf().clip_by_value(log_std, *self.log_std_bounds)

    def tf_sample(self, mean: Any, log_std: Any, tf_rng: Any) -> tuple[Any, Any]:
        """Actions ``tanh(mean + std * noise)`` (one ``tf_rng.normal``) and their log-probabilities."""
        tf = backend.tf()
        return self.tf_sample_from_noise(mean, log_std, tf_rng.normal(tf.shape(mean)))

    def tf_sample_from_noise(self, mean: Any, log_std: Any, noise: Any) -> tuple[Any, Any]:
        """Actions ``tanh(mean + std * noise)`` for given standard normal ``noise``, and their log-probabilities."""
        tf = backend.tf()
        log_std = self.tf_clip_log_std(log_std)
        u = mean + tf.exp(log_std) * noise
        log_normal = -0.5 * noise**2 - log_std - 0.5 * LOG_2PI
        log_det = 2.0 * (math.log(2.0) - u - tf.nn.softplus(-2.0 * u))
        return tf.tanh(u), tf.reduce_sum(log_normal - log_det, axis=-1)

    def tf_log_prob(self, mean: Any, log_std: Any, actions: Any) -> Any:
        """Log-density of ``actions`` in (-1, 1), through ``u = atanh(a)`` (``a`` clipped ``eps`` inside the bounds)."""
        tf = backend.tf()
        log_std = self.tf_clip_log_std(log_std)
        u = tf.atanh(tf.clip_by_value(actions, -1.0 + self.eps, 1.0 - self.eps))
        z = (u - mean) * tf.exp(-log_std)
        log_det = 2.0 * (math.log(2.0) - u - tf.nn.softplus(-2.0 * u))
        return tf.reduce_sum(-0.5 * z**2 - log_std - 0.5 * LOG_2PI - log_det, axis=-1)

    def tf_entropy(self, mean: Any, log_std: Any) -> None:
        """No closed form: ``None``."""
        return None

    def tf_mode(self, mean: Any, log_std: Any = None) -> Any:
        """``tanh(mean)``."""
        return backend.tf().tanh(mean)


def for_space(action_space: Any) -> Categorical | DiagGaussian:
    """The distribution of an on-policy agent's actions: Categorical for Discrete, DiagGaussian for Box."""
    from gymnasium import spaces

    if isinstance(action_space, spaces.Discrete):
        return Categorical(int(action_space.n))
    if isinstance(action_space, spaces.Box):
        return DiagGaussian(tuple(int(d) for d in action_space.shape))
    raise DojoError(
        f"no action distribution for {action_space}",
        hint="kerasdojo's policies act in Discrete and Box action spaces",
    )
