"""Many seeds of SAC in one program (kerasdojo.agents.seeds_sac): seed k trains exactly as beside
other seeds or alone, and becomes a plain SAC agent, critics, optimizers and buffer included."""

from __future__ import annotations

import numpy as np

from kerasdojo import backend
from kerasdojo.agents.seeds_sac import SeedsSAC
from kerasdojo.training.spec import resolve_config

SMALL = {"learning_starts": 64, "buffer_size": 300, "batch_size": 32, "net_arch": (32, 32), "train_freq": 4}
SMALL |= {"gradient_steps": 2}


def small_cfg():
    return resolve_config("sac", "Pendulum-v1", SMALL, 4000)


def test_seed_k_trains_exactly_as_beside_other_seeds_and_alone() -> None:
    """Seed 1 beside seeds 0, 2 and 3 and alone. (XLA picks its kernels by the number of env rows:
    with 3 or 5 seeds, or 16, the float64 env state of Pendulum differs from the first step in
    the last bits (measured), and trajectories then part as they do under any other rounding.)"""
    cfg = small_cfg()
    runs = {seeds: SeedsSAC(cfg, "Pendulum-v1", list(seeds), 2) for seeds in ((0, 1, 2, 3), (1,))}
    out: dict = {seeds: [] for seeds in runs}
    step = 0
    while step < 400:  # past learning_starts, and round the 300-transition buffer
        for seeds, trainer in runs.items():
            out[seeds].append(trainer.iterate(step, 4000))
        step += out[(1,)][-1][0]
    for (_, m, ep), (_, m0, ep0) in zip(out[(1,)], out[(0, 1, 2, 3)], strict=True):
        assert m.keys() == m0.keys()
        for key in m0:
            np.testing.assert_array_equal(m[key][0], m0[key][1], err_msg=key)
        np.testing.assert_array_equal(ep["ep_return"][:, 0], ep0["ep_return"][:, 1])
    assert {"train/actor_loss", "train/critic_loss", "train/ent_coef"} <= out[(1,)][-1][1].keys()
    alone, together = runs[(1,)], runs[(0, 1, 2, 3)]
    for mine, ref in zip(alone.snapshot(0).values(), together.snapshot(1).values(), strict=True):
        for a, b in zip(mine, ref, strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        alone.replay.vars["actions"].numpy()[:, 0], together.replay.vars["actions"].numpy()[:, 1]
    )
    assert int(together.replay.size.numpy()) == 300 and together.n_updates == alone.n_updates > 0
    returns, lengths = together.evaluate()
    np.testing.assert_array_equal(alone.evaluate()[0][0], returns[1])
    assert (lengths == 200).all()
    assert together.traces == 1 and together._evaluate.experimental_get_tracing_count() == 1
    assert not np.array_equal(together.actor.weights[0].numpy()[0], together.actor.weights[0].numpy()[1])


def test_a_seed_becomes_a_plain_sac_agent_with_its_replay_buffer() -> None:
    from kerasdojo.envs.native.vector import NativeVecEnv
    from kerasdojo.training.spec import build_agent

    cfg = small_cfg()
    trainer = SeedsSAC(cfg, "Pendulum-v1", [3, 5], 2)
    trainer.iterate(0, 4000)
    agent = build_agent("sac", cfg, NativeVecEnv("Pendulum-v1", cfg.n_envs, seed=0), 0)
    tf = backend.tf()
    obs = np.random.default_rng(1).normal(size=(7, 3)).astype(np.float32)
    actions = np.random.default_rng(2).uniform(-1, 1, size=(7, 1)).astype(np.float32)
    for k in (0, 1):
        trainer.to_agent(k, agent)
        both = tf.constant(np.stack([obs, obs]))
        np.testing.assert_allclose(agent.actor(obs).numpy(), trainer.actor(both).numpy()[k], rtol=1e-5, atol=1e-6)
        q = trainer._q(trainer.critics, both, tf.constant(np.stack([actions, actions]))).numpy()[k]
        np.testing.assert_allclose(agent.q(agent.critics, obs, actions).numpy(), q, rtol=1e-5, atol=1e-5)
        assert float(agent.log_ent_coef.numpy()) == float(trainer.log_ent_coef.numpy()[k]) != 0.0
        assert int(agent.critic_opt.variables[0].numpy()) == trainer.n_updates > 0
        size = int(trainer.replay.size.numpy())
        assert len(agent.buffer) == size
        np.testing.assert_array_equal(agent.buffer.actions[:size], trainer.replay.vars["actions"].numpy()[:size, k])
