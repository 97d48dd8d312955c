"""Many seeds of DQN in one program (kerasdojo.agents.seeds_dqn): seed k trains exactly as beside
other seeds or alone, and becomes a plain DQN agent, replay buffer included."""

from __future__ import annotations

import numpy as np

from kerasdojo import backend
from kerasdojo.agents.seeds_dqn import SeedsDQN
from kerasdojo.training.spec import resolve_config

SMALL = {"learning_starts": 256, "train_freq": 64, "gradient_steps": 8, "buffer_size": 1000, "net_arch": (64, 64)}


def small_cfg():
    return resolve_config("dqn", "CartPole-v1", SMALL, 4096)


def test_seed_k_trains_exactly_as_beside_other_seeds_and_alone() -> None:
    cfg = small_cfg()
    runs = {seeds: SeedsDQN(cfg, "CartPole-v1", list(seeds), 3) for seeds in ((0, 1, 2), (1,))}
    out: dict = {seeds: [] for seeds in runs}
    for i in range(20):  # 1280 steps: past learning_starts, and round the 1000-transition buffer
        for seeds, trainer in runs.items():
            out[seeds].append(trainer.iterate(i * 64, 4096))
    for (_, m, ep), (_, m0, ep0) in zip(out[(1,)], out[(0, 1, 2)], strict=True):
        assert m.keys() == m0.keys()
        for key in m0:
            np.testing.assert_array_equal(m[key][0], m0[key][1], err_msg=key)
        np.testing.assert_array_equal(ep["ep_return"][:, 0], ep0["ep_return"][:, 1])
    assert "train/loss" in out[(1,)][-1][1] and "train/loss" not in out[(1,)][2][1]  # updates from step 256 on
    alone, together = runs[(1,)], runs[(0, 1, 2)]
    for mine, ref in zip(
        [*alone.q.weights, *alone.opt.variables[2:]], [*together.q.weights, *together.opt.variables[2:]], strict=True
    ):
        np.testing.assert_array_equal(mine.numpy()[0], ref.numpy()[1])
    np.testing.assert_array_equal(alone.replay.vars["obs"].numpy()[:, 0], together.replay.vars["obs"].numpy()[:, 1])
    assert int(together.replay.size.numpy()) == 1000 and alone.n_updates == together.n_updates == 16 * 8
    np.testing.assert_array_equal(alone.evaluate()[0][0], together.evaluate()[0][1])
    assert together.traces == 1 and together._evaluate.experimental_get_tracing_count() == 1
    assert not np.array_equal(together.q.weights[0].numpy()[0], together.q.weights[0].numpy()[1])


def test_a_seed_becomes_a_plain_dqn_agent_with_its_replay_buffer() -> None:
    from kerasdojo.envs.native.vector import NativeVecEnv
    from kerasdojo.training.spec import build_agent

    cfg = small_cfg()
    trainer = SeedsDQN(cfg, "CartPole-v1", [3, 5], 2)
    for i in range(6):
        trainer.iterate(i * 64, 4096)
    agent = build_agent("dqn", cfg, NativeVecEnv("CartPole-v1", cfg.n_envs, seed=0), 0)
    obs = np.random.default_rng(1).normal(size=(7, 4)).astype(np.float32)
    tf = backend.tf()
    for k in (0, 1):
        trainer.to_agent(k, agent)
        q = trainer.q(tf.constant(np.stack([obs, obs]))).numpy()[k]
        np.testing.assert_allclose(agent.q(obs).numpy(), q, rtol=1e-5, atol=1e-6)
        target = trainer.q_target(tf.constant(np.stack([obs, obs]))).numpy()[k]
        np.testing.assert_allclose(agent.q_target(obs).numpy(), target, rtol=1e-5, atol=1e-6)
        assert int(agent.opt.variables[0].numpy()) == 16  # 2 updates of 8 gradient steps
        assert len(agent.buffer) == 384 and agent.buffer.pos == 384
        np.testing.assert_array_equal(agent.buffer.obs[:384], trainer.replay.vars["obs"].numpy()[:384, k])
        np.testing.assert_array_equal(agent.buffer.actions[:384], trainer.replay.vars["actions"].numpy()[:384, k])
        assert agent.n_calls == 6 * 64 and agent.exploration_rate == trainer.exploration_rate
