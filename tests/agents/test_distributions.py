"""Action distributions: bit-identical to the sampling code they replace (verbatim copies below,
same seeds, same random draws), right against scipy.stats and float64 formulas, and sampling
the distribution they claim to."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from kerasdojo import backend
from kerasdojo.agents import distributions, squashed
from kerasdojo.agents.distributions import (
    MASKED_LOGIT,
    Bernoulli,
    Categorical,
    DiagGaussian,
    MultiCategorical,
    for_space,
    np_mask_logits,
    tf_mask_logits,
)
from kerasdojo.agents.squashed import SquashedDiagGaussian
from kerasdojo.errors import DojoError


@pytest.fixture(scope="module")
def tf() -> Any:
    return backend.tf()


# ----------------------------------------------------------------------------- verbatim references
# The code each distribution replaces, copied verbatim from commit 2079ace (kerasdojo/agents/
# actor_critic.py, since moved to onpolicy.py unchanged; native.py; sac.py) into stand-ins holding
# the attributes it reads, with the module-level names it uses defined here. Do not edit: these
# are what "bit-identical" means.

LOG_2PI = math.log(2.0 * math.pi)
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3's clamp of the actor's log-std


class RefActorCritic:
    """OnPolicyActorCritic._sample, act after its forward pass, and log_prob_entropy."""

    def __init__(self, discrete: bool, action_shape: tuple[int, ...], log_std: Any, seed: int) -> None:
        self.discrete = discrete
        self.action_shape = action_shape
        self.log_std = log_std
        self._log_std = None if self.log_std is None else np.asarray(self.log_std.numpy(), np.float32)
        self.rng = np.random.default_rng(seed)

    def _sample(self, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sample actions and their log-probabilities from policy outputs (NumPy)."""
        if self.discrete:
            logits = out - out.max(axis=1, keepdims=True)
            log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            gumbel = -np.log(-np.log(self.rng.random(logits.shape, dtype=np.float32) + 1e-20) + 1e-20)
            actions = np.argmax(logits + gumbel, axis=1)
            return actions, log_probs[np.arange(len(actions)), actions]
        noise = self.rng.standard_normal(out.shape, dtype=np.float32)
        actions = out + np.exp(self._log_std) * noise
        log_probs = (-0.5 * noise**2 - self._log_std - 0.5 * LOG_2PI).sum(axis=1)
        return actions.reshape(len(out), *self.action_shape), log_probs

    def act_from(self, out: np.ndarray, deterministic: bool = True) -> np.ndarray:
        if deterministic:
            return out.argmax(axis=1) if self.discrete else out.reshape(len(out), *self.action_shape)
        return self._sample(out)[0]

    def log_prob_entropy(self, out: Any, actions: Any) -> tuple[Any, Any]:
        """Log-probabilities of ``actions`` and the entropy under the policy outputs ``out`` (TF)."""
        tf = backend.tf()
        if self.discrete:
            log_p = tf.nn.log_softmax(out)
            logp = tf.gather(log_p, actions, batch_dims=1)
            entropy = -tf.reduce_sum(tf.exp(log_p) * log_p, axis=1)
            return logp, entropy
        flat_actions = tf.reshape(actions, tf.shape(out))
        z = (flat_actions - out) * tf.exp(-self.log_std)
        logp = tf.reduce_sum(-0.5 * z**2 - self.log_std - 0.5 * LOG_2PI, axis=1)
        entropy = tf.reduce_sum(self.log_std + 0.5 * (1.0 + LOG_2PI)) * tf.ones_like(logp)
        return logp, entropy


class RefNativePPO:
    """NativePPO._sample_tf."""

    def __init__(self, discrete: bool, log_std: Any, tf_rng: Any) -> None:
        self.discrete, self.log_std, self.tf_rng = discrete, log_std, tf_rng

    def _sample_tf(self, out: Any) -> tuple[Any, Any]:
        tf = backend.tf()
        if self.discrete:
            log_p = tf.nn.log_softmax(out)
            u = self.tf_rng.uniform(tf.shape(out), minval=1e-20, maxval=1.0)
            actions = tf.argmax(log_p - tf.math.log(-tf.math.log(u)), axis=1, output_type=tf.int32)
            return actions, tf.gather(log_p, actions, batch_dims=1)
        noise = self.tf_rng.normal(tf.shape(out))
        actions = out + tf.exp(self.log_std) * noise
        return actions, tf.reduce_sum(-0.5 * noise**2 - self.log_std - 0.5 * LOG_2PI, axis=1)


def squashed_gaussian(mean: Any, log_std: Any, noise: Any) -> tuple[Any, Any]:
    """Sample ``a = tanh(mean + exp(log_std) * noise)`` and its log-probability (TF tensors).

    ``log pi(a) = sum_j [log N(u_j; mean_j, std_j) - log(1 - tanh(u_j)^2)]``, where
    ``log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u))`` keeps it finite at the bounds.
    """
    tf = backend.tf()
    u = mean + tf.exp(log_std) * noise
    log_normal = -0.5 * noise**2 - log_std - 0.5 * LOG_2PI
    log_det = 2.0 * (math.log(2.0) - u - tf.nn.softplus(-2.0 * u))
    return tf.tanh(u), tf.reduce_sum(log_normal - log_det, axis=-1)


class RefSAC:
    """SAC.actions_from and SAC._sample (its actor replaced by the identity)."""

    def __init__(self, action_dim: int, seed: int, tf_rng: Any) -> None:
        self.action_dim = action_dim
        self.rng = np.random.default_rng(seed)
        self.tf_rng = tf_rng
        self.actor = lambda obs, training: obs

    def actions_from(self, out: np.ndarray, deterministic: bool) -> np.ndarray:
        mean, log_std = out[:, : self.action_dim], out[:, self.action_dim :]
        if deterministic:
            return np.tanh(mean)
        std = np.exp(np.clip(log_std, LOG_STD_MIN, LOG_STD_MAX))
        return np.tanh(mean + std * self.rng.standard_normal(mean.shape, dtype=np.float32))

    def _sample(self, obs: Any) -> tuple[Any, Any]:
        tf = backend.tf()
        out = self.actor(obs, training=True)
        mean, log_std = out[:, : self.action_dim], tf.clip_by_value(out[:, self.action_dim :], LOG_STD_MIN, LOG_STD_MAX)
        return squashed_gaussian(mean, log_std, self.tf_rng.normal(tf.shape(mean)))


# ----------------------------------------------------------------------------- helpers
def outputs(shape: tuple[int, ...], seed: int = 0, scale: float = 2.0) -> np.ndarray:
    """Float32 'network outputs' with a few extremes in them."""
    out = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)
    out.flat[0], out.flat[-1] = 40.0, -40.0
    return out


def keras_log_std(values: np.ndarray) -> Any:
    """A log-std variable as networks.gaussian_head makes it."""
    import keras

    return keras.Variable(np.asarray(values, np.float32), name="log_std", trainable=True)


def assert_identical(new: Any, ref: Any) -> None:
    """Same dtype, shape and bits."""
    new, ref = np.asarray(new), np.asarray(ref)
    assert new.dtype == ref.dtype and new.shape == ref.shape
    assert np.array_equal(new, ref, equal_nan=True)


def assert_all_identical(new: tuple[Any, ...], ref: tuple[Any, ...]) -> None:
    """Each output the same in dtype, shape and bits."""
    assert len(new) == len(ref)
    for a, b in zip(new, ref, strict=True):
        assert_identical(a, b)


def plain(x: Any) -> Any:
    """Arguments as comparable values: tensors and arrays as (values, dtype), scalars with their type."""
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return tuple(plain(v) for v in x)
    if hasattr(x, "numpy"):
        x = x.numpy()
    if isinstance(x, np.ndarray):
        return x.tolist(), str(x.dtype)
    return x, type(x).__name__


class Recording:
    """A random generator (NumPy or TensorFlow) that logs every call and its arguments, then makes it."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, plain(args), plain(kwargs)))
            return attr(*args, **kwargs)

        return call


def assert_same_draws(new: Recording, ref: Recording) -> None:
    """The same calls with the same arguments, leaving the generators in the same state."""
    assert new.calls and new.calls == ref.calls
    if isinstance(new.inner, np.random.Generator):
        assert new.inner.bit_generator.state == ref.inner.bit_generator.state
    else:
        assert_identical(new.inner.state, ref.inner.state)


def np_rngs(seed: int) -> tuple[Recording, Recording]:
    return Recording(np.random.default_rng(seed)), Recording(np.random.default_rng(seed))


def tf_rngs(seed: int) -> tuple[Recording, Recording]:
    tf = backend.tf()
    return Recording(tf.random.Generator.from_seed(seed)), Recording(tf.random.Generator.from_seed(seed))


# ----------------------------------------------------------------------------- bit-identical: NumPy
def test_categorical_numpy_matches_actor_critic_bit_for_bit() -> None:
    dist = Categorical(5)
    ref = RefActorCritic(True, (), None, seed=3)
    rng, ref.rng = np_rngs(3)
    for seed in range(5):
        out = outputs((64, 5), seed)
        new_actions, new_logp = dist.np_sample(out, rng)
        ref_actions, ref_logp = ref._sample(out)
        assert_identical(new_actions, ref_actions)
        assert_identical(new_logp, ref_logp)
        assert_identical(dist.np_mode(out), ref.act_from(out, deterministic=True))
    assert_same_draws(rng, ref.rng)
    assert new_actions.dtype == dist.action_dtype


@pytest.mark.parametrize("action_shape", [(1,), (3,), (2, 3)])
def test_diag_gaussian_numpy_matches_actor_critic_bit_for_bit(tf: Any, action_shape: tuple[int, ...]) -> None:
    dim = int(np.prod(action_shape))
    dist = DiagGaussian(action_shape)
    ref = RefActorCritic(False, action_shape, keras_log_std(np.linspace(-1.5, 0.7, dim)), seed=4)
    log_std = np.asarray(ref.log_std.numpy(), np.float32)  # what OnPolicyActorCritic.refresh keeps
    rng, ref.rng = np_rngs(4)
    for seed in range(5):
        out = outputs((32, dim), seed)
        new_actions, new_logp = dist.np_sample(out, log_std, rng)
        ref_actions, ref_logp = ref._sample(out)
        assert_identical(new_actions, ref_actions)
        assert_identical(new_logp, ref_logp)
        assert_identical(dist.np_mode(out, log_std), ref.act_from(out, deterministic=True))
    assert_same_draws(rng, ref.rng)
    assert new_actions.shape == (32, *action_shape) and new_actions.dtype == dist.action_dtype


def test_squashed_gaussian_numpy_matches_sac_bit_for_bit() -> None:
    A = 3
    dist = SquashedDiagGaussian(A)
    ref = RefSAC(A, seed=5, tf_rng=None)
    rng, ref.rng = np_rngs(5)
    for seed in range(5):
        out = outputs((16, 2 * A), seed, scale=8.0)  # log-stds beyond [-20, 2] too
        out[0, A:] = [30.0, -30.0, 2.0]
        mean, log_std = out[:, :A], out[:, A:]
        assert_identical(dist.np_sample(mean, log_std, rng)[0], ref.actions_from(out, deterministic=False))
        assert_identical(dist.np_mode(mean, log_std), ref.actions_from(out, deterministic=True))
    assert_same_draws(rng, ref.rng)


# ----------------------------------------------------------------------------- bit-identical: TensorFlow
def test_categorical_tf_matches_actor_critic_and_native_ppo_bit_for_bit(tf: Any) -> None:
    dist = Categorical(4)
    ref = RefActorCritic(True, (), None, seed=0)
    out = tf.Variable(outputs((48, 4), 1))
    actions = tf.constant(np.random.default_rng(2).integers(0, 4, 48))
    with tf.GradientTape(persistent=True) as tape:
        new_logp, new_ent = dist.tf_log_prob_entropy(out, actions)
        ref_logp, ref_ent = ref.log_prob_entropy(out, actions)
        new_loss, ref_loss = tf.reduce_sum(new_logp + 0.01 * new_ent), tf.reduce_sum(ref_logp + 0.01 * ref_ent)
    assert_identical(new_logp, ref_logp)
    assert_identical(new_ent, ref_ent)
    assert_identical(tape.gradient(new_loss, out), tape.gradient(ref_loss, out))

    g_new, g_ref = tf_rngs(7)
    native = RefNativePPO(True, None, g_ref)
    for _ in range(3):
        new, old = dist.tf_sample(out, g_new), native._sample_tf(out)
        assert_all_identical(new, old)
    assert_same_draws(g_new, g_ref)


@pytest.mark.parametrize("action_shape", [(1,), (2, 3)])
def test_diag_gaussian_tf_matches_actor_critic_and_native_ppo_bit_for_bit(
    tf: Any, action_shape: tuple[int, ...]
) -> None:
    dim = int(np.prod(action_shape))
    dist = DiagGaussian(action_shape)
    log_std = keras_log_std(np.linspace(-2.0, 0.5, dim))
    ref = RefActorCritic(False, action_shape, log_std, seed=0)
    out = tf.Variable(outputs((32, dim), 2))
    actions = tf.constant(outputs((32, *action_shape), 3))
    with tf.GradientTape(persistent=True) as tape:
        new_logp, new_ent = dist.tf_log_prob_entropy(out, log_std, actions)
        ref_logp, ref_ent = ref.log_prob_entropy(out, actions)
        new_loss, ref_loss = tf.reduce_sum(new_logp + 0.01 * new_ent), tf.reduce_sum(ref_logp + 0.01 * ref_ent)
    assert_identical(new_logp, ref_logp)
    assert_identical(new_ent, ref_ent)
    assert_all_identical(tape.gradient(new_loss, [out, log_std]), tape.gradient(ref_loss, [out, log_std]))

    g_new, g_ref = tf_rngs(8)
    native = RefNativePPO(False, log_std, g_ref)
    for _ in range(3):
        assert_all_identical(dist.tf_sample(out, log_std, g_new), native._sample_tf(out))
    assert_same_draws(g_new, g_ref)


def test_native_samplers_match_inside_xla(tf: Any) -> None:
    """NativePPO samples inside one jit-compiled program: the same there."""
    log_std = keras_log_std([-0.3, 0.2])
    cases = (
        (Categorical(3), (outputs((16, 3), 4),), True),
        (DiagGaussian((2,)), (outputs((16, 2), 5), log_std), False),
    )
    for dist, params, discrete in cases:
        g_new, g_ref = tf.random.Generator.from_seed(9), tf.random.Generator.from_seed(9)
        native = RefNativePPO(discrete, log_std, g_ref)
        new = tf.function(dist.tf_sample, jit_compile=True)
        old = tf.function(native._sample_tf, jit_compile=True)
        for _ in range(2):
            assert_all_identical(new(*params, g_new), old(params[0]))
        assert_identical(g_new.state, g_ref.state)


def test_squashed_gaussian_tf_matches_sac_bit_for_bit(tf: Any) -> None:
    A = 3
    dist = SquashedDiagGaussian(A)
    out = outputs((24, 2 * A), 6, scale=8.0)
    out[0, A:], out[1, :A] = [30.0, -30.0, 2.0], [25.0, -25.0, 0.0]
    out = tf.Variable(out)
    g_new, g_ref = tf_rngs(10)
    ref = RefSAC(A, seed=0, tf_rng=g_ref)
    for _ in range(2):
        with tf.GradientTape(persistent=True) as tape:
            new = dist.tf_sample(out[:, :A], out[:, A:], g_new)
            old = ref._sample(out)
            new_loss, ref_loss = (tf.reduce_sum(a) + 0.1 * tf.reduce_sum(logp) for a, logp in (new, old))
        assert_all_identical(new, old)
        assert_identical(tape.gradient(new_loss, out), tape.gradient(ref_loss, out))
    assert_same_draws(g_new, g_ref)

    # From given noise, as sac.squashed_gaussian is called with an in-range log-std.
    mean, log_std = out[:, :A], tf.clip_by_value(out[:, A:], LOG_STD_MIN, LOG_STD_MAX)
    noise = tf.constant(outputs((24, A), 7))
    assert_all_identical(dist.tf_sample_from_noise(mean, log_std, noise), squashed_gaussian(mean, log_std, noise))
    assert_identical(dist.tf_mode(mean, log_std), tf.tanh(mean))


# ----------------------------------------------------------------------------- against references
def test_categorical_log_prob_and_entropy_match_scipy(tf: Any) -> None:
    stats, special = pytest.importorskip("scipy.stats"), pytest.importorskip("scipy.special")
    dist = Categorical(6)
    logits = outputs((40, 6), 11, scale=3.0)
    logits[0] = [-30.0, 30.0, 0.0, 0.0, 1.0, 2.0]  # near-deterministic row
    actions = np.random.default_rng(12).integers(0, 6, 40)
    p = special.softmax(logits.astype(np.float64), axis=1)
    expected = np.array([stats.multinomial(1, p[i]).logpmf(np.eye(6)[actions[i]]) for i in range(40)])
    entropy = stats.entropy(p, axis=1)
    np.testing.assert_allclose(dist.np_log_prob(logits, actions), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dist.np_entropy(logits), entropy, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dist.tf_log_prob(logits, actions), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dist.tf_entropy(logits), entropy, rtol=1e-5, atol=1e-5)
    # The log-probabilities that come with samples are the same densities.
    sampled, logp = dist.np_sample(logits, np.random.default_rng(0))
    np.testing.assert_allclose(logp, np.log(p[np.arange(40), sampled]), rtol=1e-5, atol=1e-5)
    sampled, logp = dist.tf_sample(logits, tf.random.Generator.from_seed(0))
    np.testing.assert_allclose(logp, np.log(p[np.arange(40), sampled.numpy()]), rtol=1e-5, atol=1e-5)


def test_diag_gaussian_log_prob_and_entropy_match_scipy(tf: Any) -> None:
    stats = pytest.importorskip("scipy.stats")
    dist = DiagGaussian((2, 2))
    mean = outputs((30, 4), 13)
    log_std = np.array([-1.0, -0.2, 0.3, 1.1], np.float32)
    actions = outputs((30, 2, 2), 14)
    scale = np.exp(log_std.astype(np.float64))
    expected = stats.norm.logpdf(actions.reshape(30, 4), loc=mean, scale=scale).sum(axis=1)
    entropy = stats.norm.entropy(scale=scale).sum()
    np.testing.assert_allclose(dist.np_log_prob(mean, log_std, actions), expected, rtol=1e-5)
    np.testing.assert_allclose(dist.np_entropy(mean, log_std), np.full(30, entropy), rtol=1e-6)
    np.testing.assert_allclose(dist.tf_log_prob(mean, log_std, actions), expected, rtol=1e-5)
    np.testing.assert_allclose(dist.tf_entropy(mean, log_std), np.full(30, entropy), rtol=1e-6)
    logp, ent = dist.tf_log_prob_entropy(mean, log_std, actions)
    np.testing.assert_allclose(logp, expected, rtol=1e-5)
    np.testing.assert_allclose(ent, np.full(30, entropy), rtol=1e-6)
    sampled, logp = dist.np_sample(mean, log_std, np.random.default_rng(0))
    np.testing.assert_allclose(logp, stats.norm.logpdf(sampled.reshape(30, 4), mean, scale).sum(1), rtol=1e-4)
    sampled, logp = dist.tf_sample(mean, log_std, tf.random.Generator.from_seed(0))
    np.testing.assert_allclose(logp, stats.norm.logpdf(sampled.numpy(), mean, scale).sum(1), rtol=1e-4)


def squashed_log_prob_f64(mean: np.ndarray, log_std: np.ndarray, u: np.ndarray, textbook: bool = False) -> np.ndarray:
    """log p(tanh(u)) by the change of variables in float64: log N(u; mean, std) - sum log(d tanh/du),
    with d tanh/du = 1 / cosh(u)^2, or the textbook 1 - tanh(u)^2 (which rounds to 0 for |u| > ~19)."""
    mean, log_std, u = (np.asarray(x, np.float64) for x in (mean, log_std, u))
    log_normal = -0.5 * ((u - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    log_jacobian = np.log(1.0 - np.tanh(u) ** 2) if textbook else -2.0 * np.log(np.cosh(u))
    return (log_normal - log_jacobian).sum(axis=-1)


def test_squashed_gaussian_log_prob_is_the_change_of_variables(tf: Any) -> None:
    A = 4
    dist = SquashedDiagGaussian(A)
    mean = outputs((64, A), 15, scale=1.5)
    mean[:4] = [[30.0, -30.0, 45.0, -12.0], [60.0, 0.5, -60.0, 9.0], [15.0, -15.0, 18.0, -18.0], [0.0, 0.0, 0.0, 0.0]]
    log_std = np.clip(outputs((64, A), 16, scale=0.8), -3.0, 1.5)
    noise = outputs((64, A), 17, scale=1.0)
    u = mean.astype(np.float64) + np.exp(log_std.astype(np.float64)) * noise
    expected = squashed_log_prob_f64(mean, log_std, u)
    moderate = (np.abs(u) < 5).all(axis=1)
    textbook = squashed_log_prob_f64(mean[moderate], log_std[moderate], u[moderate], textbook=True)
    np.testing.assert_allclose(textbook, expected[moderate])

    actions, logp = dist.tf_sample_from_noise(mean, log_std, noise)
    assert np.isfinite(logp.numpy()).all() and np.abs(u).max() > 50
    np.testing.assert_allclose(logp, expected, rtol=1e-5, atol=2e-4)
    np.testing.assert_allclose(actions, np.tanh(u), atol=1e-6)

    # The NumPy twin: its draws are rng.standard_normal(mean.shape, float32), so replay them.
    np_actions, np_logp = dist.np_sample(mean, log_std, np.random.default_rng(18))
    np_noise = np.random.default_rng(18).standard_normal(mean.shape, dtype=np.float32)
    np_u = mean.astype(np.float64) + np.exp(log_std.astype(np.float64)) * np_noise
    assert np.isfinite(np_logp).all()
    np.testing.assert_allclose(np_logp, squashed_log_prob_f64(mean, log_std, np_u), rtol=1e-5, atol=2e-4)
    np.testing.assert_allclose(np_actions, np.tanh(np_u), atol=1e-6)

    # The log-density of given actions (atanh) agrees where atanh is well conditioned,
    # and stays finite at the bounds.
    inside = moderate & (np.abs(u) < 3).all(axis=1)
    for log_prob in (dist.np_log_prob, dist.tf_log_prob):
        given = np.asarray(log_prob(mean, log_std, np.tanh(u).astype(np.float32)))
        np.testing.assert_allclose(given[inside], expected[inside], rtol=1e-3, atol=1e-3)
        assert np.isfinite(np.asarray(log_prob(mean, log_std, np.sign(mean).astype(np.float32)))).all()
    assert dist.np_entropy(mean, log_std) is None and dist.tf_entropy(mean, log_std) is None


def test_squashed_gaussian_clips_log_std_unless_told_not_to(tf: Any) -> None:
    mean = np.zeros((2, 2), np.float32)
    log_std = np.array([[5.0, -25.0], [1.0, -1.0]], np.float32)
    noise = np.ones((2, 2), np.float32)
    clipped = np.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)
    dist, free = SquashedDiagGaussian(2), SquashedDiagGaussian(2, log_std_bounds=None)
    assert_all_identical(
        dist.tf_sample_from_noise(mean, log_std, noise), free.tf_sample_from_noise(mean, clipped, noise)
    )
    assert_identical(dist.np_clip_log_std(log_std), clipped)
    assert_identical(free.np_clip_log_std(log_std), log_std)
    assert not np.array_equal(
        free.tf_sample_from_noise(mean, log_std, noise)[0], dist.tf_sample_from_noise(mean, log_std, noise)[0]
    )


# ----------------------------------------------------------------------------- sampling the distribution
def test_categorical_sample_frequencies(tf: Any) -> None:
    dist = Categorical(4)
    logits = np.tile(np.array([[1.0, -0.5, 0.0, 2.0]], np.float32), (20000, 1))
    p = np.exp(logits[0] - logits[0].max())
    p /= p.sum()
    np_actions, _ = dist.np_sample(logits, np.random.default_rng(20))
    tf_actions, _ = dist.tf_sample(logits, tf.random.Generator.from_seed(20))
    for actions in (np_actions, tf_actions.numpy()):
        np.testing.assert_allclose(np.bincount(actions, minlength=4) / len(actions), p, atol=0.015)
    assert_identical(dist.np_mode(logits[:2]), np.array([3, 3]))
    assert_identical(dist.tf_mode(logits[:2]), np.array([3, 3], np.int32))


def test_diag_gaussian_sample_moments(tf: Any) -> None:
    dist = DiagGaussian((2,))
    mean = np.tile(np.array([[0.5, -2.0]], np.float32), (20000, 1))
    log_std = np.array([-1.0, 0.7], np.float32)
    np_actions, _ = dist.np_sample(mean, log_std, np.random.default_rng(21))
    tf_actions, _ = dist.tf_sample(mean, log_std, tf.random.Generator.from_seed(21))
    for actions in (np_actions, tf_actions.numpy()):
        np.testing.assert_allclose(actions.mean(axis=0), mean[0], atol=0.06)
        np.testing.assert_allclose(actions.std(axis=0), np.exp(log_std), rtol=0.03)
    assert_identical(dist.tf_mode(mean[:3], log_std), mean[:3])


def test_squashed_gaussian_sample_moments(tf: Any) -> None:
    dist = SquashedDiagGaussian(2)
    mean = np.tile(np.array([[0.8, -0.3]], np.float32), (20000, 1))
    log_std = np.tile(np.array([[0.0, -1.0]], np.float32), (20000, 1))
    # E[tanh(u)] and E[tanh(u)^2] under N(mean, std) by Gauss-Hermite quadrature.
    x, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / w.sum()
    u = mean[0, :, None] + np.exp(log_std[0, :, None]) * x
    first, second = (np.tanh(u) * w).sum(axis=1), (np.tanh(u) ** 2 * w).sum(axis=1)
    np_actions, _ = dist.np_sample(mean, log_std, np.random.default_rng(22))
    tf_actions, _ = dist.tf_sample(mean, log_std, tf.random.Generator.from_seed(22))
    for actions in (np_actions, tf_actions.numpy()):
        assert np.abs(actions).max() <= 1.0
        np.testing.assert_allclose(actions.mean(axis=0), first, atol=0.015)
        np.testing.assert_allclose((actions**2).mean(axis=0), second, atol=0.015)
    np.testing.assert_allclose(dist.np_mode(mean[:2], log_std[:2]), np.tanh(mean[:2]))


# ----------------------------------------------------------------------------- choosing one
def test_constants_are_those_of_the_code_they_replace() -> None:
    assert distributions.LOG_2PI == LOG_2PI
    assert (squashed.LOG_STD_MIN, squashed.LOG_STD_MAX) == (LOG_STD_MIN, LOG_STD_MAX)
    assert SquashedDiagGaussian(1).log_std_bounds == (LOG_STD_MIN, LOG_STD_MAX)
    assert MASKED_LOGIT == -1e8  # sb3-contrib's MaskableCategorical


def test_for_space_picks_the_distribution() -> None:
    from gymnasium import spaces

    assert for_space(spaces.Discrete(5)) == Categorical(5)
    box = for_space(spaces.Box(-1.0, 1.0, (2, 3), np.float32))
    assert box == DiagGaussian((2, 3)) and box.action_shape == (2, 3)
    assert Categorical(5).action_shape == () and SquashedDiagGaussian(3).action_shape == (3,)
    multi = for_space(spaces.MultiDiscrete([3, 4, 2]))
    assert multi == MultiCategorical((3, 4, 2)) and multi.action_shape == (3,) and multi.action_dtype == np.int64
    assert all(type(n) is int for n in multi.nvec)
    assert for_space(spaces.MultiBinary(4)) == Bernoulli((4,))
    binary = for_space(spaces.MultiBinary([2, 3]))
    assert binary == Bernoulli((2, 3)) and binary.action_shape == (2, 3) and binary.action_dtype == np.int8
    with pytest.raises(DojoError, match="nvec is not 1-D"):
        for_space(spaces.MultiDiscrete([[2, 3], [4, 5]]))
    for space in (spaces.Text(5), spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3)))):
        with pytest.raises(DojoError, match="no action distribution") as error:
            for_space(space)
        assert "MultiDiscrete and MultiBinary" in error.value.hint


def test_importing_the_module_does_not_import_tensorflow() -> None:
    code = "import sys, kerasdojo.agents.distributions; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_squashed_gaussian_log_prob_matches_a_numerical_density() -> None:
    """log pi(a) against the density of a = tanh(u), u ~ N(mu, sigma), taken as the finite
    difference of its CDF Phi((atanh(a) - mu) / sigma)."""
    import tensorflow as tf

    from kerasdojo.agents.squashed import SquashedDiagGaussian

    squashed_gaussian = SquashedDiagGaussian(1, log_std_bounds=None).tf_sample_from_noise

    def cdf(a: float, mu: float, sigma: float) -> float:
        return 0.5 * (1.0 + math.erf((math.atanh(a) - mu) / (sigma * math.sqrt(2.0))))

    for mu, log_std, noise in [(0.3, -0.5, 0.7), (-1.2, 0.4, -1.5), (2.0, -1.0, 0.9), (0.0, 0.0, 0.0)]:
        action, logp = squashed_gaussian(
            tf.constant([[mu]], tf.float64), tf.constant([[log_std]], tf.float64), tf.constant([[noise]], tf.float64)
        )
        a, sigma, h = float(action[0, 0]), math.exp(log_std), 1e-6
        density = (cdf(a + h, mu, sigma) - cdf(a - h, mu, sigma)) / (2 * h)
        assert abs(a - math.tanh(mu + sigma * noise)) < 1e-12
        assert abs(float(logp[0]) - math.log(density)) < 1e-4, (mu, log_std, noise)
    # Several dimensions: the log-probabilities add up; near the bounds it stays finite.
    mean = tf.constant([[0.3, -1.2, 9.0]], tf.float64)
    log_std = tf.constant([[-0.5, 0.4, 0.0]], tf.float64)
    noise = tf.constant([[0.7, -1.5, 3.0]], tf.float64)
    _, joint = squashed_gaussian(mean, log_std, noise)
    parts = [
        float(squashed_gaussian(mean[:, j : j + 1], log_std[:, j : j + 1], noise[:, j : j + 1])[1][0]) for j in range(3)
    ]
    assert np.isfinite(float(joint[0])) and abs(float(joint[0]) - sum(parts)) < 1e-9


# ----------------------------------------------------------------------------- MultiCategorical and Bernoulli
NVEC = (3, 5, 2)


def multi_parts(x: np.ndarray, nvec: tuple[int, ...] = NVEC) -> list[np.ndarray]:
    """The parts' columns of ``x``, cut by hand."""
    ends = np.cumsum(nvec)
    return [x[:, end - n : end] for n, end in zip(nvec, ends, strict=True)]


def test_multi_categorical_is_the_sum_of_its_parts(tf: Any) -> None:
    special = pytest.importorskip("scipy.special")
    stats = pytest.importorskip("scipy.stats")
    dist = MultiCategorical(NVEC)
    logits = outputs((40, sum(NVEC)), 23, scale=3.0)
    actions = np.stack([np.random.default_rng(24 + i).integers(0, n, 40) for i, n in enumerate(NVEC)], axis=1)
    parts = multi_parts(logits)
    logp = sum(
        Categorical(n).np_log_prob(part, actions[:, i]) for i, (n, part) in enumerate(zip(NVEC, parts, strict=True))
    )
    entropy = sum(Categorical(n).np_entropy(part) for n, part in zip(NVEC, parts, strict=True))
    # Against scipy in float64 too.
    f64 = [special.log_softmax(part.astype(np.float64), axis=1) for part in parts]
    expected = sum(lp[np.arange(40), actions[:, i]] for i, lp in enumerate(f64))
    expected_entropy = sum(stats.entropy(np.exp(lp), axis=1) for lp in f64)
    np.testing.assert_allclose(logp, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(entropy, expected_entropy, rtol=1e-5, atol=1e-5)
    for new_logp, new_ent in (
        (dist.np_log_prob(logits, actions), dist.np_entropy(logits)),
        (dist.tf_log_prob(logits, actions), dist.tf_entropy(logits)),
        dist.tf_log_prob_entropy(logits, tf.constant(actions)),
    ):
        np.testing.assert_allclose(new_logp, logp, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(new_ent, entropy, rtol=1e-6, atol=1e-6)
    # The log-probabilities that come with samples are those of the sampled actions.
    sampled, sampled_logp = dist.np_sample(logits, np.random.default_rng(0))
    assert sampled.shape == (40, 3) and sampled.dtype == dist.action_dtype == np.int64
    np.testing.assert_allclose(sampled_logp, dist.np_log_prob(logits, sampled), rtol=1e-6)
    sampled, sampled_logp = dist.tf_sample(logits, tf.random.Generator.from_seed(0))
    assert sampled.shape == (40, 3) and sampled.dtype == tf.int32
    np.testing.assert_allclose(sampled_logp, dist.np_log_prob(logits, sampled.numpy()), rtol=1e-5, atol=1e-6)
    mode = np.stack([part.argmax(axis=1) for part in parts], axis=1)
    assert_identical(dist.np_mode(logits), mode)
    assert_identical(dist.tf_mode(logits), mode.astype(np.int32))


def test_multi_categorical_with_one_part_is_categorical_bit_for_bit(tf: Any) -> None:
    """Its Gumbel-max per part is Categorical's, with the same draws."""
    multi, single = MultiCategorical((5,)), Categorical(5)
    logits = outputs((64, 5), 25)
    rng, ref_rng = np_rngs(26)
    for _ in range(3):
        (actions, logp), (ref_actions, ref_logp) = multi.np_sample(logits, rng), single.np_sample(logits, ref_rng)
        assert_identical(actions, ref_actions[:, None])
        assert_identical(logp, ref_logp)
    assert_same_draws(rng, ref_rng)
    g, ref_g = tf_rngs(27)
    for _ in range(3):
        (actions, logp), (ref_actions, ref_logp) = multi.tf_sample(logits, g), single.tf_sample(logits, ref_g)
        assert_identical(actions, ref_actions.numpy()[:, None])
        assert_identical(logp, ref_logp)
    assert_same_draws(g, ref_g)


def test_multi_categorical_sample_frequencies(tf: Any) -> None:
    dist = MultiCategorical((4, 2))
    row = np.array([1.0, -0.5, 0.0, 2.0, 0.3, -0.3], np.float32)
    logits = np.tile(row, (20000, 1))
    probs = [
        np.exp(part[0] - part[0].max()) / np.exp(part[0] - part[0].max()).sum() for part in multi_parts(logits, (4, 2))
    ]
    np_actions, _ = dist.np_sample(logits, np.random.default_rng(28))
    tf_actions, _ = dist.tf_sample(logits, tf.random.Generator.from_seed(28))
    for actions in (np_actions, tf_actions.numpy()):
        for i, p in enumerate(probs):
            np.testing.assert_allclose(np.bincount(actions[:, i], minlength=len(p)) / len(actions), p, atol=0.015)
        # The parts are independent: the joint frequencies are the products.
        joint = np.bincount(actions[:, 0] * 2 + actions[:, 1], minlength=8) / len(actions)
        np.testing.assert_allclose(joint, np.outer(*probs).reshape(-1), atol=0.015)


def test_bernoulli_log_prob_and_entropy_match_scipy(tf: Any) -> None:
    stats, special = pytest.importorskip("scipy.stats"), pytest.importorskip("scipy.special")
    dist = Bernoulli((2, 3))
    logits = outputs((40, 6), 29, scale=3.0)
    logits.flat[0], logits.flat[-1] = 12.0, -12.0
    actions = np.random.default_rng(30).integers(0, 2, (40, 2, 3)).astype(np.int8)
    p = special.expit(logits.astype(np.float64))
    expected = stats.bernoulli.logpmf(actions.reshape(40, 6), p).sum(axis=1)
    entropy = stats.bernoulli.entropy(p).sum(axis=1)
    np.testing.assert_allclose(dist.np_log_prob(logits, actions), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dist.np_entropy(logits), entropy, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dist.tf_log_prob(logits, actions), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dist.tf_entropy(logits), entropy, rtol=1e-5, atol=1e-5)
    logp, ent = dist.tf_log_prob_entropy(logits, tf.constant(actions.astype(np.int32)))
    np.testing.assert_allclose(logp, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ent, entropy, rtol=1e-5, atol=1e-5)
    sampled, logp = dist.np_sample(logits, np.random.default_rng(0))
    assert sampled.shape == (40, 2, 3) and sampled.dtype == dist.action_dtype == np.int8
    np.testing.assert_allclose(logp, stats.bernoulli.logpmf(sampled.reshape(40, 6), p).sum(1), rtol=1e-5, atol=1e-5)
    sampled, logp = dist.tf_sample(logits, tf.random.Generator.from_seed(0))
    assert sampled.shape == (40, 6) and sampled.dtype == tf.int32
    np.testing.assert_allclose(logp, stats.bernoulli.logpmf(sampled.numpy(), p).sum(1), rtol=1e-5, atol=1e-5)
    assert_identical(dist.np_mode(logits), (logits > 0).astype(np.int8).reshape(40, 2, 3))
    assert_identical(dist.tf_mode(logits), (logits > 0).astype(np.int32))


def test_bernoulli_is_finite_at_extreme_logits(tf: Any) -> None:
    special = pytest.importorskip("scipy.special")
    dist = Bernoulli((4,))
    logits = np.array([[100.0, -100.0, 1e4, -1e4], [30.0, -30.0, 0.0, 88.0]], np.float32)
    actions = np.array([[1, 0, 0, 1], [0, 1, 1, 0]], np.int8)
    f64 = logits.astype(np.float64)
    expected = (actions * special.log_expit(f64) + (1 - actions) * special.log_expit(-f64)).sum(axis=1)
    for logp, ent in (
        (dist.np_log_prob(logits, actions), dist.np_entropy(logits)),
        dist.tf_log_prob_entropy(logits, actions),
    ):
        np.testing.assert_allclose(logp, expected, rtol=1e-6)
        assert np.isfinite(np.asarray(ent)).all() and (np.asarray(ent) >= 0).all()
        np.testing.assert_allclose(ent, [0.0, math.log(2.0)], atol=1e-6)


def test_bernoulli_sample_frequencies(tf: Any) -> None:
    dist = Bernoulli((3,))
    logits = np.tile(np.array([[-1.0, 0.0, 2.0]], np.float32), (20000, 1))
    p = 1.0 / (1.0 + np.exp(-logits[0]))
    np_actions, _ = dist.np_sample(logits, np.random.default_rng(31))
    tf_actions, _ = dist.tf_sample(logits, tf.random.Generator.from_seed(31))
    for actions in (np_actions, tf_actions.numpy()):
        assert set(np.unique(actions)) <= {0, 1}
        np.testing.assert_allclose(actions.mean(axis=0), p, atol=0.015)
    rng = Recording(np.random.default_rng(32))
    dist.np_sample(logits[:5], rng)
    assert rng.calls == [("random", plain(((5, 3),)), plain({"dtype": np.float32}))]


def test_numpy_and_tf_twins_agree(tf: Any) -> None:
    for dist, logits, actions in (
        (MultiCategorical(NVEC), outputs((32, 10), 33), np.random.default_rng(34).integers(0, 2, (32, 3))),
        (Bernoulli((2, 2)), outputs((32, 4), 35), np.random.default_rng(36).integers(0, 2, (32, 2, 2))),
    ):
        np.testing.assert_allclose(dist.tf_log_prob(logits, actions), dist.np_log_prob(logits, actions), rtol=1e-5)
        np.testing.assert_allclose(dist.tf_entropy(logits), dist.np_entropy(logits), rtol=1e-5, atol=1e-6)
        assert_identical(
            dist.tf_mode(logits).numpy().reshape(32, -1), dist.np_mode(logits).reshape(32, -1).astype(np.int32)
        )


def test_multi_categorical_and_bernoulli_inside_xla(tf: Any) -> None:
    """Sampled and scored inside jit-compiled programs, as NativePPO does."""
    cases = ((MultiCategorical(NVEC), outputs((16, 10), 41), 3), (Bernoulli((2, 3)), outputs((16, 6), 42), 6))
    for dist, logits, width in cases:
        sample = tf.function(dist.tf_sample, jit_compile=True)
        score = tf.function(dist.tf_log_prob_entropy, jit_compile=True)
        actions, logp = sample(logits, tf.random.Generator.from_seed(43))
        assert actions.dtype == tf.int32 and actions.shape == (16, width)
        xla_logp, xla_entropy = score(logits, actions)
        np.testing.assert_allclose(xla_logp, logp, rtol=1e-6)
        np.testing.assert_allclose(xla_logp, dist.np_log_prob(logits, actions.numpy()), rtol=1e-5)
        np.testing.assert_allclose(xla_entropy, dist.np_entropy(logits), rtol=1e-5)


# ----------------------------------------------------------------------------- invalid-action masks
def test_mask_logits(tf: Any) -> None:
    logits = outputs((4, 5), 37)
    mask = np.random.default_rng(38).random((4, 5)) < 0.5
    masked = np_mask_logits(logits, mask)
    assert_identical(masked, np.where(mask, logits, np.float32(-1e8)))
    assert_identical(tf_mask_logits(logits, mask), masked)
    assert_identical(tf_mask_logits(tf.constant(logits), tf.constant(mask)), masked)


def test_masked_categorical(tf: Any) -> None:
    special = pytest.importorskip("scipy.special")
    dist = Categorical(6)
    raw = np.array([3.0, 0.5, -1.0, 9.0, 0.0, 1.5], np.float32)  # the illegal action 3 has the highest logit
    mask = np.array([True, True, False, False, True, True])
    legal = np.flatnonzero(mask)
    logits = np_mask_logits(np.tile(raw, (20000, 1)), np.tile(mask, (20000, 1)))
    log_softmax = np.full(6, -np.inf)
    log_softmax[legal] = special.log_softmax(raw[legal].astype(np.float64))
    np_actions, np_logp = dist.np_sample(logits, np.random.default_rng(39))
    tf_actions, tf_logp = dist.tf_sample(logits, tf.random.Generator.from_seed(39))
    for actions, logp in ((np_actions, np_logp), (tf_actions.numpy(), tf_logp.numpy())):
        assert mask[actions].all()
        np.testing.assert_allclose(np.bincount(actions, minlength=6) / len(actions), np.exp(log_softmax), atol=0.015)
        np.testing.assert_allclose(logp, log_softmax[actions], rtol=1e-5)
    assert_identical(dist.np_mode(logits[:2]), np.array([0, 0]))
    assert_identical(dist.tf_mode(logits[:2]), np.array([0, 0], np.int32))
    # The log-probabilities of legal actions are log_softmax over the legal subset; entropy counts them only.
    alone = Categorical(len(legal))
    for logp, ent in (
        (dist.np_log_prob(logits[:4], legal), dist.np_entropy(logits[:4])),
        dist.tf_log_prob_entropy(logits[:4], legal),
    ):
        np.testing.assert_allclose(logp, log_softmax[legal], rtol=1e-6)
        np.testing.assert_allclose(ent, alone.np_entropy(np.tile(raw[legal], (4, 1))), rtol=1e-6)
        np.testing.assert_allclose(ent, alone.tf_entropy(np.tile(raw[legal], (4, 1))), rtol=1e-6)
    assert dist.np_log_prob(logits[:1], [3])[0] < -1e7
    # Gradients: none to the masked logits, finite, in the dtypes policies compute logits in (float32, and
    # bfloat16 under mixed_bfloat16: -1e8 stays finite in both, so p = 0 exactly and p log p = 0).
    for dtype in (tf.float32, tf.bfloat16):
        variable = tf.Variable(tf.constant(raw[None], dtype))
        with tf.GradientTape() as tape:
            masked = tf_mask_logits(variable, mask[None])
            logp, ent = dist.tf_log_prob_entropy(masked, tf.constant([1]))
            loss = tf.reduce_sum(logp + 0.5 * ent)
        grad = tape.gradient(loss, variable).numpy()
        assert np.isfinite(ent.numpy()).all() and np.isfinite(grad).all() and (grad[0, ~mask] == 0).all()
        np.testing.assert_allclose(ent.numpy().astype(np.float32), alone.np_entropy(raw[None, legal]), rtol=2e-2)


def test_masked_multi_categorical(tf: Any) -> None:
    special = pytest.importorskip("scipy.special")
    dist = MultiCategorical((3, 4))
    raw = np.array([5.0, 0.0, 1.0, -2.0, 8.0, 0.5, 1.0], np.float32)
    mask = np.array([False, True, True, True, False, True, False])  # the best of each part is illegal
    logits = np_mask_logits(np.tile(raw, (20000, 1)), np.tile(mask, (20000, 1)))
    parts = [(raw[:3], mask[:3]), (raw[3:], mask[3:])]
    log_softmax = []
    for part, legal in parts:
        lp = np.full(len(part), -np.inf)
        lp[legal] = special.log_softmax(part[legal].astype(np.float64))
        log_softmax.append(lp)
    np_actions, _ = dist.np_sample(logits, np.random.default_rng(40))
    tf_actions, _ = dist.tf_sample(logits, tf.random.Generator.from_seed(40))
    for actions in (np_actions, tf_actions.numpy()):
        for i, (lp, (_, legal)) in enumerate(zip(log_softmax, parts, strict=True)):
            assert legal[actions[:, i]].all()
            np.testing.assert_allclose(
                np.bincount(actions[:, i], minlength=len(lp)) / len(actions), np.exp(lp), atol=0.015
            )
    assert_identical(dist.np_mode(logits[:2]), np.array([[2, 2], [2, 2]]))
    assert_identical(dist.tf_mode(logits[:2]), np.array([[2, 2], [2, 2]], np.int32))
    # Legal actions: the sum of log_softmax over each part's legal subset; entropy over the legal actions only.
    legal_actions = np.array([[1, 0], [2, 2], [1, 2]])
    expected = log_softmax[0][legal_actions[:, 0]] + log_softmax[1][legal_actions[:, 1]]
    alone = MultiCategorical((2, 2))
    legal_logits = np.tile(raw[mask], (3, 1))
    for logp, ent in (
        (dist.np_log_prob(logits[:3], legal_actions), dist.np_entropy(logits[:3])),
        dist.tf_log_prob_entropy(logits[:3], legal_actions),
    ):
        np.testing.assert_allclose(logp, expected, rtol=1e-6)
        np.testing.assert_allclose(ent, alone.np_entropy(legal_logits), rtol=1e-6)
        np.testing.assert_allclose(ent, alone.tf_entropy(legal_logits), rtol=1e-6)
