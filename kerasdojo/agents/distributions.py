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

The classes: :class:`Categorical` (Discrete), :class:`MultiCategorical` (MultiDiscrete),
:class:`Bernoulli` (MultiBinary), :class:`DiagGaussian` (Box); SAC's actor has
:class:`~kerasdojo.agents.squashed.SquashedDiagGaussian`. Log-probabilities are summed over
action dimensions, one per batch row. Invalid actions are masked as sb3-contrib's MaskablePPO:
:func:`np_mask_logits` and :func:`tf_mask_logits` set their logits to ``MASKED_LOGIT``; a
(Multi)Categorical over those never samples them and its entropy counts the legal actions only.
TensorFlow is imported on first use through :func:`kerasdojo.backend.tf`, so importing this
module is cheap. :func:`for_space` picks the distribution of a Gymnasium action space.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from kerasdojo import backend
from kerasdojo.errors import DojoError

LOG_2PI = math.log(2.0 * math.pi)
MASKED_LOGIT = -1e8  # sb3-contrib's MaskablePPO: the logit of an illegal action


def np_mask_logits(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``logits`` where ``mask`` (bool, the same shape) is True, ``MASKED_LOGIT`` elsewhere."""
    return np.where(mask, logits, MASKED_LOGIT).astype(logits.dtype, copy=False)


def tf_mask_logits(logits: Any, mask: Any) -> Any:
    """``logits`` where ``mask`` (bool, the same shape) is True, ``MASKED_LOGIT`` elsewhere."""
    tf = backend.tf()
    logits = tf.convert_to_tensor(logits)
    return tf.where(mask, logits, tf.constant(MASKED_LOGIT, logits.dtype))


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
        """Entropy ``-sum p log p`` per row (a masked action's ``p`` is exactly 0: it adds nothing)."""
        logits = logits - logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return -(np.exp(log_probs) * log_probs).sum(axis=1)

    def np_mode(self, logits: np.ndarray) -> np.ndarray:
        """The most likely actions, ``argmax(logits)``."""
        return logits.argmax(axis=1)

    # ------------------------------------------------------------------ TensorFlow
    def tf_sample(self, logits: Any, tf_rng: Any) -> tuple[Any, Any]:
        """Int32 actions ``argmax(log_softmax - log(-log u))``, ``u ~ U[1e-20, 1)``, and their log-probabilities.
        Logits may carry leading axes beyond the batch (many seeds': ``(seeds, batch, n)``)."""
        tf = backend.tf()
        log_p = tf.nn.log_softmax(logits)
        u = tf_rng.uniform(tf.shape(logits), minval=1e-20, maxval=1.0)
        actions = tf.argmax(log_p - tf.math.log(-tf.math.log(u)), axis=-1, output_type=tf.int32)
        return actions, tf.gather(log_p, actions, batch_dims=len(logits.shape) - 1)

    def tf_log_prob_entropy(self, logits: Any, actions: Any) -> tuple[Any, Any]:
        """Log-probabilities of ``actions`` and the entropy, from one ``log_softmax`` (leading axes as
        :meth:`tf_sample`)."""
        tf = backend.tf()
        log_p = tf.nn.log_softmax(logits)
        logp = tf.gather(log_p, actions, batch_dims=len(logits.shape) - 1)
        entropy = -tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1)
        return logp, entropy

    def tf_log_prob(self, logits: Any, actions: Any) -> Any:
        """Log-probabilities ``log_softmax(logits)[actions]``."""
        return self.tf_log_prob_entropy(logits, actions)[0]

    def tf_entropy(self, logits: Any) -> Any:
        """Entropy ``-sum p log p`` per row (a masked action's ``p`` is exactly 0: it adds nothing)."""
        tf = backend.tf()
        log_p = tf.nn.log_softmax(logits)
        return -tf.reduce_sum(tf.exp(log_p) * log_p, axis=1)

    def tf_mode(self, logits: Any) -> Any:
        """The most likely actions (int32), ``argmax(logits)``."""
        tf = backend.tf()
        return tf.argmax(logits, axis=1, output_type=tf.int32)


@dataclasses.dataclass(frozen=True)
class MultiCategorical(ActionDistribution):
    """Independent categoricals over ``nvec[i]`` actions each (MultiDiscrete), from logits shaped
    ``(batch, sum(nvec))``, the parts' logits concatenated in order; each part as :class:`Categorical`."""

    nvec: tuple[int, ...]
    action_dtype: ClassVar[type] = np.int64

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Shape of one action: ``(len(nvec),)`` indices."""
        return (len(self.nvec),)

    # ------------------------------------------------------------------ NumPy
    def np_split(self, x: np.ndarray) -> list[np.ndarray]:
        """``x`` shaped ``(batch, sum(nvec))`` cut into the parts' columns."""
        return np.split(x, np.cumsum(self.nvec)[:-1], axis=1)

    def np_sample(self, logits: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Actions ``(batch, len(nvec))``, Gumbel-max per part (one ``rng.random`` call), and their log-probs."""
        gumbel = -np.log(-np.log(rng.random(logits.shape, dtype=np.float32) + 1e-20) + 1e-20)
        parts = zip(self.np_split(logits), self.np_split(gumbel), strict=True)
        actions = np.stack([np.argmax(lg - lg.max(axis=1, keepdims=True) + g, axis=1) for lg, g in parts], axis=1)
        return actions, self.np_log_prob(logits, actions)

    def np_log_prob(self, logits: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Log-probabilities, summed over the parts, of ``actions`` shaped ``(batch, len(nvec))``."""
        actions = np.asarray(actions).reshape(len(logits), len(self.nvec))
        parts = enumerate(zip(self.nvec, self.np_split(logits), strict=True))
        return sum(Categorical(n).np_log_prob(lg, actions[:, i]) for i, (n, lg) in parts)

    def np_entropy(self, logits: np.ndarray) -> np.ndarray:
        """Entropy per row: the sum of the parts' entropies."""
        return sum(Categorical(n).np_entropy(lg) for n, lg in zip(self.nvec, self.np_split(logits), strict=True))

    def np_mode(self, logits: np.ndarray) -> np.ndarray:
        """The most likely action of each part, ``(batch, len(nvec))``."""
        return np.stack([lg.argmax(axis=1) for lg in self.np_split(logits)], axis=1)

    # ------------------------------------------------------------------ TensorFlow
    def tf_split(self, x: Any) -> list[Any]:
        """``x`` shaped ``(batch, sum(nvec))`` cut into the parts' columns."""
        return backend.tf().split(x, list(self.nvec), axis=1)

    def tf_sample(self, logits: Any, tf_rng: Any) -> tuple[Any, Any]:
        """Int32 actions ``(batch, len(nvec))``, Gumbel-max per part as :meth:`Categorical.tf_sample`
        (one ``tf_rng.uniform``), and their log-probabilities."""
        tf = backend.tf()
        u = tf_rng.uniform(tf.shape(logits), minval=1e-20, maxval=1.0)
        actions, logp = [], []
        for lg, u_part in zip(self.tf_split(logits), self.tf_split(u), strict=True):
            log_p = tf.nn.log_softmax(lg)
            actions.append(tf.argmax(log_p - tf.math.log(-tf.math.log(u_part)), axis=1, output_type=tf.int32))
            logp.append(tf.gather(log_p, actions[-1], batch_dims=1))
        return tf.stack(actions, axis=1), sum(logp)

    def tf_log_prob_entropy(self, logits: Any, actions: Any) -> tuple[Any, Any]:
        """Log-probabilities of ``actions`` ``(batch, len(nvec))`` and the entropy, each summed over the parts."""
        tf = backend.tf()
        actions = tf.reshape(actions, [-1, len(self.nvec)])
        parts = enumerate(zip(self.nvec, self.tf_split(logits), strict=True))
        pairs = [Categorical(n).tf_log_prob_entropy(lg, actions[:, i]) for i, (n, lg) in parts]
        return sum(logp for logp, _ in pairs), sum(entropy for _, entropy in pairs)

    def tf_log_prob(self, logits: Any, actions: Any) -> Any:
        """Log-probabilities of ``actions``, summed over the parts."""
        return self.tf_log_prob_entropy(logits, actions)[0]

    def tf_entropy(self, logits: Any) -> Any:
        """Entropy per row: the sum of the parts' entropies."""
        return sum(Categorical(n).tf_entropy(lg) for n, lg in zip(self.nvec, self.tf_split(logits), strict=True))

    def tf_mode(self, logits: Any) -> Any:
        """The most likely action of each part (int32), ``(batch, len(nvec))``."""
        tf = backend.tf()
        return tf.stack([tf.argmax(lg, axis=1, output_type=tf.int32) for lg in self.tf_split(logits)], axis=1)


@dataclasses.dataclass(frozen=True)
class Bernoulli(ActionDistribution):
    """Independent Bernoullis over 0/1 actions shaped ``action_shape`` (MultiBinary), from logits shaped
    ``(batch, n)``, ``n = prod(action_shape)``: ``P(a_j = 1) = sigmoid(logit_j)``. Log-sigmoids are
    computed as ``-softplus(-x)``, finite for any logit."""

    action_shape: tuple[int, ...]
    action_dtype: ClassVar[type] = np.int8

    # ------------------------------------------------------------------ NumPy
    def np_sample(self, logits: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Int8 actions ``u < sigmoid(logits)`` (one ``rng.random`` call), shaped for the env, and log-probs."""
        actions = rng.random(logits.shape, dtype=np.float32) < np.exp(-np.logaddexp(0.0, -logits))
        return actions.astype(np.int8).reshape(len(logits), *self.action_shape), self.np_log_prob(logits, actions)

    def np_log_prob(self, logits: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Log-probabilities ``sum_j a_j log sigmoid(l_j) + (1 - a_j) log sigmoid(-l_j)`` (any shape per row)."""
        a = np.asarray(actions).reshape(logits.shape).astype(logits.dtype)
        log_p, log_q = -np.logaddexp(0.0, -logits), -np.logaddexp(0.0, logits)
        return (a * log_p + (1 - a) * log_q).sum(axis=1)

    def np_entropy(self, logits: np.ndarray) -> np.ndarray:
        """Entropy ``-sum_j p_j log p_j + (1 - p_j) log(1 - p_j)``, ``p_j = sigmoid(l_j)``, per row."""
        log_p, log_q = -np.logaddexp(0.0, -logits), -np.logaddexp(0.0, logits)
        return -(np.exp(log_p) * log_p + np.exp(log_q) * log_q).sum(axis=1)

    def np_mode(self, logits: np.ndarray) -> np.ndarray:
        """The most likely actions, ``logits > 0`` (int8), shaped for the env."""
        return (logits > 0).astype(np.int8).reshape(len(logits), *self.action_shape)

    # ------------------------------------------------------------------ TensorFlow
    def tf_sample(self, logits: Any, tf_rng: Any) -> tuple[Any, Any]:
        """Flat int32 actions ``u < sigmoid(logits)`` (one ``tf_rng.uniform``) and their log-probabilities."""
        tf = backend.tf()
        actions = tf.cast(tf_rng.uniform(tf.shape(logits)) < tf.exp(-tf.nn.softplus(-logits)), tf.int32)
        return actions, self.tf_log_prob(logits, actions)

    def tf_log_prob_entropy(self, logits: Any, actions: Any) -> tuple[Any, Any]:
        """Log-probabilities of ``actions`` (reshaped to the logits' shape) and the entropy, per row."""
        tf = backend.tf()
        a = tf.cast(tf.reshape(actions, tf.shape(logits)), logits.dtype)
        log_p, log_q = -tf.nn.softplus(-logits), -tf.nn.softplus(logits)
        logp = tf.reduce_sum(a * log_p + (1 - a) * log_q, axis=1)
        entropy = -tf.reduce_sum(tf.exp(log_p) * log_p + tf.exp(log_q) * log_q, axis=1)
        return logp, entropy

    def tf_log_prob(self, logits: Any, actions: Any) -> Any:
        """Log-probabilities ``sum_j a_j log sigmoid(l_j) + (1 - a_j) log sigmoid(-l_j)``."""
        return self.tf_log_prob_entropy(logits, actions)[0]

    def tf_entropy(self, logits: Any) -> Any:
        """Entropy ``-sum_j p_j log p_j + (1 - p_j) log(1 - p_j)`` per row."""
        tf = backend.tf()
        log_p, log_q = -tf.nn.softplus(-logits), -tf.nn.softplus(logits)
        return -tf.reduce_sum(tf.exp(log_p) * log_p + tf.exp(log_q) * log_q, axis=1)

    def tf_mode(self, logits: Any) -> Any:
        """The most likely actions (flat int32), ``logits > 0``."""
        tf = backend.tf()
        return tf.cast(logits > 0, tf.int32)


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
        """Flat actions ``mean + exp(log_std) * noise`` (one ``tf_rng.normal``) and their log-probabilities.
        The mean may carry leading axes beyond the batch (many seeds': ``(seeds, batch, dim)``, with
        ``log_std`` shaped ``(seeds, 1, dim)``)."""
        tf = backend.tf()
        noise = tf_rng.normal(tf.shape(mean))
        actions = mean + tf.exp(log_std) * noise
        return actions, tf.reduce_sum(-0.5 * noise**2 - log_std - 0.5 * LOG_2PI, axis=-1)

    def tf_log_prob_entropy(self, mean: Any, log_std: Any, actions: Any) -> tuple[Any, Any]:
        """Log-density of ``actions`` (reshaped to the mean's shape) and the entropy, per row (leading
        axes as :meth:`tf_sample`)."""
        tf = backend.tf()
        flat_actions = tf.reshape(actions, tf.shape(mean))
        z = (flat_actions - mean) * tf.exp(-log_std)
        logp = tf.reduce_sum(-0.5 * z**2 - log_std - 0.5 * LOG_2PI, axis=-1)
        entropy = tf.reduce_sum(log_std + 0.5 * (1.0 + LOG_2PI), axis=-1) * tf.ones_like(logp)
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


def for_space(action_space: Any) -> Categorical | MultiCategorical | Bernoulli | DiagGaussian:
    """The distribution of an on-policy agent's actions: Categorical for Discrete, MultiCategorical for
    MultiDiscrete, Bernoulli for MultiBinary, DiagGaussian for Box."""
    from gymnasium import spaces

    if isinstance(action_space, spaces.Discrete):
        return Categorical(int(action_space.n))
    if isinstance(action_space, spaces.MultiDiscrete):
        if action_space.nvec.ndim != 1:
            raise DojoError(
                f"no action distribution for {action_space}: its nvec is not 1-D",
                hint="kerasdojo's policies take a MultiDiscrete with a flat nvec; reshape it with a gymnasium wrapper",
            )
        return MultiCategorical(tuple(int(n) for n in action_space.nvec.reshape(-1)))
    if isinstance(action_space, spaces.MultiBinary):
        return Bernoulli(tuple(int(d) for d in action_space.shape))
    if isinstance(action_space, spaces.Box):
        return DiagGaussian(tuple(int(d) for d in action_space.shape))
    raise DojoError(
        f"no action distribution for {action_space}",
        hint="kerasdojo's policies act in Discrete, Box, MultiDiscrete and MultiBinary action spaces",
    )
