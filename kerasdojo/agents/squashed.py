"""SAC's action distribution: a tanh-squashed diagonal Gaussian whose mean and log-std are both
network outputs, with the NumPy and TensorFlow twins of :mod:`kerasdojo.agents.distributions`."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from kerasdojo import backend
from kerasdojo.agents.distributions import LOG_2PI, ActionDistribution

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3's clamp of SAC's state-dependent log-std


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
