"""The critics of SAC/TD3/DDPG as one ensemble network: the same values and gradients as one
Keras model per critic, the same Adam steps, and agent states saved in the old layout (one
model per critic, written by kerasdojo 390d1f8 into ``data/``) still load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kerasdojo import agents, envs
from kerasdojo.agents.ensemble import ensemble, upgrade_state
from kerasdojo.files import load_arrays
from kerasdojo.training.checkpoint import load_agent_state

DATA = Path(__file__).parent / "data"
SMALL = {"net_arch": (8, 8), "learning_starts": 16, "batch_size": 8, "buffer_size": 64}


def make(name: str):
    env = envs.make_vec("Pendulum-v1", 1, seed=0)
    cls = agents.get(name).load()
    return cls(cls.Config(**SMALL), env.obs_spec, env.single_action_space, 0), env


def separate_critics(agent, n: int = 2):
    """``n`` critics as one Keras model each, with random (non-zero) biases."""
    rng = np.random.default_rng(5)
    members = [agent.critic(f"m{i}") for i in range(n)]
    for m in members:
        m.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in m.get_weights()])
    return members


def test_ensemble_equals_separate_critics_in_values_and_gradients() -> None:
    import tensorflow as tf

    agent, _ = make("sac")
    members = separate_critics(agent)
    net = ensemble(members, "relu", "critics")
    x = tf.constant(np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32))
    targets = tf.constant(np.random.default_rng(1).normal(size=(2, 16)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        q_ens = net(x)
        q_sep = tf.stack([m(x)[:, 0] for m in members])
        loss_ens = tf.reduce_sum((q_ens - targets) ** 2)
        loss_sep = tf.reduce_sum((q_sep - targets) ** 2)
    np.testing.assert_allclose(q_ens.numpy(), q_sep.numpy(), rtol=1e-5, atol=1e-6)
    g_ens = tape.gradient(loss_ens, net.trainable_variables)
    g_sep = [tape.gradient(loss_sep, m.trainable_variables) for m in members]
    for i, g in enumerate(g_ens):  # kernel_0, bias_0, ...: member c's slice is critic c's gradient
        np.testing.assert_allclose(g.numpy(), np.stack([gs[i].numpy() for gs in g_sep]), rtol=1e-4, atol=1e-5)
    # members=1 (TD3's actor loss): the first critic alone, no gradient into the second.
    with tf.GradientTape() as tape:
        first = net(x, members=1)
        loss = tf.reduce_sum(first)
    np.testing.assert_allclose(first.numpy()[0], q_sep.numpy()[0], rtol=1e-5, atol=1e-6)
    grads = tape.gradient(loss, net.trainable_variables)
    assert all(np.all(tf.convert_to_tensor(g).numpy()[1] == 0) for g in grads)


def test_old_layout_state_takes_the_same_adam_steps() -> None:
    """A state saved with one model per critic and one Adam over both, upgraded and loaded into
    the ensemble, continues exactly as the old layout would: same weights after the same step."""
    import keras

    agent, _ = make("td3")
    members = separate_critics(agent)
    old_vars = [v for m in members for v in m.trainable_variables]
    old_opt = keras.optimizers.Adam(learning_rate=1e-2)
    old_opt.build(old_vars)
    rng = np.random.default_rng(2)
    grads = [[rng.normal(size=v.shape).astype(np.float32) for v in old_vars] for _ in range(3)]
    for g in grads[:2]:  # slots that differ per variable and per critic
        old_opt.apply(g, old_vars)
    arrays = {f"net/q{c + 1}/{i}": w for c, m in enumerate(members) for i, w in enumerate(m.get_weights())}
    arrays.update({f"net/q{c + 1}_target/{i}": w for c, m in enumerate(members) for i, w in enumerate(m.get_weights())})
    arrays.update({f"opt/critic/{j}": v.numpy() for j, v in enumerate(old_opt.variables)})
    upgrade_state(arrays, 2, "critics", "critic")
    assert not [k for k in arrays if k.startswith("net/q")]
    for i, w in enumerate(agent.critics.weights):
        w.assign(arrays[f"net/critics/{i}"])
    for j, v in enumerate(agent.critic_opt.variables):
        v.assign(arrays[f"opt/critic/{j}"])
    agent.critic_opt.learning_rate.assign(1e-2)
    old_opt.apply(grads[2], old_vars)
    n = len(members[0].trainable_variables)
    agent.critic_opt.apply([np.stack([grads[2][i], grads[2][n + i]]) for i in range(n)], agent.critic_vars)
    for i, w in enumerate(agent.critics.weights):
        np.testing.assert_allclose(w.numpy(), np.stack([m.weights[i].numpy() for m in members]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["sac", "td3"])
def test_agent_state_saved_by_kerasdojo_390d1f8_loads_and_trains(name) -> None:
    arrays, meta = load_arrays(DATA / f"{name}_pendulum_390d1f8.npz")
    assert "net/q1/0" in arrays and "net/critics/0" not in arrays  # the old layout
    agent, env = make(name)
    load_agent_state(agent, arrays, meta)
    x = np.random.default_rng(3).normal(size=(6, 4)).astype(np.float32)
    for c, prefix in enumerate(("q1", "q2")):
        for net, suffix in ((agent.critics, ""), (agent.critic_targets, "_target")):
            old = agent.critic(f"old_{prefix}{suffix}")
            old.set_weights([arrays[f"net/{prefix}{suffix}/{i}"] for i in range(len(old.weights))])
            np.testing.assert_allclose(net(x).numpy()[c], old(x).numpy()[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(agent.actor.weights[0].numpy(), arrays["net/actor/0"])
    assert int(agent.critic_opt.iterations.numpy()) == int(arrays["opt/critic/0"])
    env.reset(seed=0)
    agent.begin(env)
    step, stats = 0, {}
    while step < 24:
        taken, stats = agent.learn(env, step, 1000)
        step += taken
    assert np.isfinite(stats["train/critic_loss"])
