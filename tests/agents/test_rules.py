"""The rules written once (agents/rules.py; GAE and advantages in agents/onpolicy.py): TF twins equal NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from kerasdojo.agents import onpolicy, rules


@pytest.fixture(scope="module")
def tf():
    from kerasdojo import backend

    return backend.tf()


def test_polyak_update_and_collapsed_updates(tf) -> None:
    import keras

    target, online = keras.Variable(np.zeros(3, np.float32)), keras.Variable(np.array([1.0, -2.0, 4.0], np.float32))
    rules.polyak([target], [online], 0.005)
    np.testing.assert_allclose(target.numpy(), [0.005, -0.01, 0.02], rtol=1e-6)
    rules.polyak([target], [online], 0.005)
    np.testing.assert_allclose(target.numpy(), (1 - 0.995**2) * online.numpy(), rtol=1e-5)
    # k updates towards an unchanged source collapse into one with tau = 1 - (1 - tau)^k.
    other = keras.Variable(np.zeros(3, np.float32))
    rules.polyak([other], [online], np.float32(rules.collapsed_tau(0.005, 2)))
    np.testing.assert_allclose(other.numpy(), target.numpy(), rtol=1e-5)
    rules.polyak([target], [online], 1.0, where=tf.constant(False))
    assert not np.array_equal(target.numpy(), online.numpy())
    rules.polyak([target], [online], np.float32(rules.collapsed_tau(1.0, 3)), where=tf.constant(True))
    np.testing.assert_array_equal(target.numpy(), online.numpy())  # a hard copy, exactly


def test_gae_tf_twin_matches_numpy(tf) -> None:
    rng = np.random.default_rng(0)
    T, n = 16, 3
    rewards = rng.normal(size=(T, n)).astype(np.float32)
    values = rng.normal(size=(T, n)).astype(np.float32)
    next_values = rng.normal(size=(T, n)).astype(np.float32)
    terminated = rng.random((T, n)) < 0.1
    truncated = ~terminated & (rng.random((T, n)) < 0.1)
    adv, ret = onpolicy.gae(rewards, values, next_values, terminated, truncated, 0.99, 0.95)
    adv_tf, ret_tf = onpolicy.gae_tf(
        *(tf.constant(x) for x in (rewards, values, next_values, terminated.astype(np.float32))),
        tf.constant(terminated | truncated),
        0.99,
        0.95,
    )
    np.testing.assert_array_equal(adv_tf.numpy(), adv)
    np.testing.assert_array_equal(ret_tf.numpy(), ret)
    # An episode end stops the sum: the step before it sees only its own TD error.
    t = int(np.argmax((terminated | truncated)[:, 0]))
    if t:
        delta = rewards[t, 0] + 0.99 * next_values[t, 0] * (1 - terminated[t, 0]) - values[t, 0]
        assert adv[t, 0] == pytest.approx(delta, rel=1e-6)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5])
def test_schedules_tf_twins_match(tf, fraction: float) -> None:
    for progress in (0.0, 0.03, 0.1, 0.4, 1.0, 1.2):
        p = np.float32(progress)
        assert float(rules.linear_tf(1.0, 0.05, fraction, tf.constant(p))) == pytest.approx(
            rules.linear(1.0, 0.05, fraction, float(p)), abs=1e-6
        )
        for kind in ("constant", "linear"):
            assert float(rules.schedule_tf(kind, 3e-4, tf.constant(p))) == pytest.approx(
                rules.schedule(kind, 3e-4, float(p)), rel=1e-6
            )


def test_advantage_normalisation_ignores_masked_transitions(tf) -> None:
    adv = tf.constant([1.0, 2.0, 3.0, 100.0])
    weight = onpolicy.mask_weights(tf.constant([1.0, 1.0, 1.0, 0.0]))
    out = onpolicy.normalize_advantages(adv, weight).numpy()
    np.testing.assert_allclose(out[:3], (np.array([1, 2, 3]) - 2.0) / (np.std([1, 2, 3]) + 1e-8), rtol=1e-5)


def test_gradient_steps_rule() -> None:
    assert rules.gradient_steps(1, 32) == 1
    assert rules.gradient_steps(-1, 32) == 32
    assert rules.gradient_steps(0, 32) == 0


def test_action_scaling_and_ou_noise_are_the_same_on_both_paths(tf) -> None:
    rng = np.random.default_rng(0)
    low, high = np.array([-2.0, 0.0], np.float32), np.array([2.0, 5.0], np.float32)
    actions = rng.uniform(-1, 1, (6, 2)).astype(np.float32)
    scaled = rules.scale_actions(actions, low, high)
    np.testing.assert_array_equal(rules.scale_actions(np.array([[-1.0, 1.0]], np.float32), low, high), [[-2.0, 5.0]])
    twin = rules.scale_actions(tf.constant(actions), tf.constant(low), tf.constant(high))
    np.testing.assert_array_equal(twin, scaled)
    x, white = rng.normal(size=(6, 2)).astype(np.float32), rng.normal(size=(6, 2)).astype(np.float32)
    # The NumPy path's noise term stays in float64 (its arithmetic before the rule was shared).
    step = rules.ou_step(x, white, 0.15, 0.01, 0.1, sqrt=np.sqrt).astype(np.float32)
    np.testing.assert_array_equal(step, (x - 0.15 * x * 0.01 + 0.1 * np.sqrt(0.01) * white).astype(np.float32))
    twin = rules.ou_step(tf.constant(x), tf.constant(white), 0.15, 0.01, 0.1).numpy()
    np.testing.assert_allclose(twin, step, rtol=1e-6, atol=1e-7)
