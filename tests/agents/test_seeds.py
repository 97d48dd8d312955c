"""Many seeds in one program (kerasdojo.agents.seeds): random streams, per-seed rules, and seed k of
a batched program training exactly as seed k beside other seeds or alone."""

from __future__ import annotations

import numpy as np
import pytest

from kerasdojo import backend
from kerasdojo.agents.seed_base import clip_per_seed
from kerasdojo.agents.seeds import SeedsPPO
from kerasdojo.agents.streams import Streams
from kerasdojo.experiments.batched import check_batchable
from kerasdojo.training.spec import resolve_config

SMALL = {"n_envs": 4, "n_steps": 32, "batch_size": 64, "n_epochs": 2}


def small_cfg(env_id="CartPole-v1", **extra):
    return resolve_config("ppo", env_id, {**SMALL, **extra}, 4096)


def test_a_seed_draws_the_same_numbers_whatever_seeds_share_its_program() -> None:
    together, alone = Streams([4, 7, 9], salt=2), Streams([7], salt=2)
    for _ in range(3):
        a, b = together.uniform([5, 3]).numpy(), alone.uniform([5, 3]).numpy()
        np.testing.assert_array_equal(a[1], b[0])
        assert a.shape == (3, 5, 3) and (a > 0).all() and (a < 1).all()
    assert not np.array_equal(a[0], a[2])  # seeds differ
    other = Streams([7], salt=3).uniform([5, 3]).numpy()
    assert not np.array_equal(other[0], b[0])  # so do streams
    many = Streams([0], salt=0).uniform([100_000]).numpy()[0]
    assert abs(many.mean() - 0.5) < 0.01 and abs(many.var() - 1 / 12) < 0.002


def test_the_top_draw_stays_below_one_and_its_normal_finite(monkeypatch) -> None:
    """(2^24 - 0.5) / 2^24 rounds to 1.0 in float32; 1.0 made erfinv infinite and a SAC seed NaN."""
    from kerasdojo.agents.streams import SeedDraws

    tf = backend.tf()
    streams = Streams([0], salt=0)
    monkeypatch.setattr(streams, "bits", lambda size: tf.fill([1, size], tf.constant(0xFFFFFFFF, tf.uint32)))
    assert (streams.uniform([3]).numpy() < 1.0).all()
    assert np.isfinite(SeedDraws(streams).normal(tf.constant([1, 3])).numpy()).all()


def test_gradients_are_clipped_per_seed_as_keras_clips_one_model() -> None:
    tf = backend.tf()
    rng = np.random.default_rng(0)
    grads = [tf.constant(rng.normal(size=(3, 4, 5)) * s, tf.float32) for s in (1.0, 0.01)]
    grads.append(tf.constant(rng.normal(size=(3, 5)) * 0.01, tf.float32))
    clipped = clip_per_seed(grads, 0.5)
    for k in range(3):
        expected, _ = tf.clip_by_global_norm([g[k] for g in grads], 0.5)
        for got, want in zip(clipped, expected, strict=True):
            np.testing.assert_allclose(got[k].numpy(), want.numpy(), rtol=1e-6)


NORMALISED = {"normalize_obs": True, "normalize_reward": True}


# Categorical and Gaussian policies; and observations and rewards normalised per seed (episodes end).
@pytest.mark.parametrize(("env_id", "extra"), [("CartPole-v1", {}), ("Pendulum-v1", {}), ("CartPole-v1", NORMALISED)])
def test_seed_k_trains_exactly_as_beside_other_seeds_and_alone(env_id, extra) -> None:
    cfg = small_cfg(env_id, **extra)
    runs = {seeds: SeedsPPO(cfg, env_id, list(seeds), 3) for seeds in ((0, 1, 2), (1, 2), (1,))}
    metrics: dict = {seeds: [] for seeds in runs}
    for i in range(6):
        for seeds, trainer in runs.items():
            metrics[seeds].append(trainer.iterate(i * 128, 4096)[1:])
    row = {(0, 1, 2): 1, (1, 2): 0, (1,): 0}  # where seed 1 sits in each program
    for seeds, trainer in runs.items():
        assert trainer.traces == 1 and trainer._train.experimental_get_tracing_count() == 1
        for (m, episodes), (m0, ep0) in zip(metrics[seeds], metrics[(0, 1, 2)], strict=True):
            for key in m0:
                if key == "train/explained_variance":  # a logged statistic, reduced by XLA row by row: last bits
                    np.testing.assert_allclose(m[key][row[seeds]], m0[key][1], rtol=1e-5, atol=1e-6, err_msg=key)
                else:
                    np.testing.assert_array_equal(m[key][row[seeds]], m0[key][1], err_msg=key)
            np.testing.assert_array_equal(episodes["ep_return"][:, row[seeds]], ep0["ep_return"][:, 1])
        for mine, ref in zip(trainer.train_vars, runs[(0, 1, 2)].train_vars, strict=True):
            np.testing.assert_array_equal(mine.numpy()[row[seeds]], ref.numpy()[1])
        if trainer.norm is not None:
            for key, stats in trainer.normalizer_state(row[seeds]).items():
                np.testing.assert_array_equal(stats, runs[(0, 1, 2)].normalizer_state(1)[key], err_msg=key)
            ended = sum(int(episodes["done"][:, row[seeds]].sum()) for _, episodes in metrics[seeds])
            assert ended > 10  # the statistics also took the first observations of new episodes
        returns, lengths = trainer.evaluate()
        ref_returns, _ = runs[(0, 1, 2)].evaluate()
        np.testing.assert_array_equal(returns[row[seeds]], ref_returns[1])
        assert returns.shape == (len(seeds), 3) and (lengths >= 8).all()
    assert runs[(0, 1, 2)]._evaluate.experimental_get_tracing_count() == 1
    # Different seeds learn differently.
    assert not np.array_equal(runs[(0, 1, 2)].train_vars[0].numpy()[0], runs[(0, 1, 2)].train_vars[0].numpy()[1])


def test_a_whole_rollout_minibatch_is_not_shuffled_and_its_row_order_changes_nothing() -> None:
    """The CartPole preset's minibatch is the whole rollout: the update gathers nothing (the
    gathers and the permutation's sort were about 8% of a 16-seed update), and feeding its rows in
    another order gives the same weights, as the loss's means over the rows promise."""
    tf = backend.tf()

    def ops(trainer: SeedsPPO, out) -> list[str]:
        graph = trainer._train.get_concrete_function(out["batch"], out["clip"]).graph.as_graph_def()
        return [node.op for f in graph.library.function for node in f.node_def] + [node.op for node in graph.node]

    shuffled = SeedsPPO(small_cfg(), "CartPole-v1", [0, 1], 3)  # 2 minibatches of 64 an epoch
    shuffled_ops = ops(shuffled, shuffled._iterate(np.float32(0.0)))
    whole = {k: SeedsPPO(small_cfg(batch_size=128), "CartPole-v1", [0, 1], 3) for k in ("in order", "reversed")}
    outs = {k: trainer._iterate(np.float32(0.0)) for k, trainer in whole.items()}
    whole_ops = ops(whole["in order"], outs["in order"])
    assert "TopKV2" in shuffled_ops and "TopKV2" not in whole_ops  # the permutations' sort
    assert shuffled_ops.count("GatherV2") - whole_ops.count("GatherV2") == 6  # a gather per column of the batch
    outs["reversed"]["batch"] = [tf.reverse(x, axis=[1]) for x in outs["reversed"]["batch"]]
    before = whole["in order"].train_vars[1].numpy()
    stats = {k: trainer._train(outs[k]["batch"], outs[k]["clip"]) for k, trainer in whole.items()}
    for name, value in stats["in order"].items():
        np.testing.assert_allclose(value.numpy(), stats["reversed"][name].numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    for a, b in zip(whole["in order"].train_vars, whole["reversed"].train_vars, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)
    assert np.abs(whole["in order"].train_vars[1].numpy() - before).max() > 1e-5  # the update moved the weights


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_a_seed_becomes_a_plain_ppo_agent_with_its_own_weights_and_adam_state(env_id) -> None:
    from kerasdojo.envs.native.vector import NativeVecEnv
    from kerasdojo.training.spec import build_agent

    cfg = small_cfg(env_id)
    trainer = SeedsPPO(cfg, env_id, [3, 5], 2)
    trainer.iterate(0, 4096)
    agent = build_agent("ppo", cfg, NativeVecEnv(env_id, cfg.n_envs, seed=0), 0)
    obs = np.random.default_rng(1).normal(size=(7, trainer.obs_dim)).astype(np.float32)
    tf = backend.tf()
    for k in (0, 1):
        trainer.to_agent(k, agent)
        logits = trainer.pi(tf.constant(np.stack([obs, obs]))).numpy()[k]
        np.testing.assert_allclose(agent.pi(obs).numpy(), logits, rtol=1e-5, atol=1e-6)
        values = trainer.vf(tf.constant(np.stack([obs, obs]))).numpy()[k]
        np.testing.assert_allclose(agent.vf(obs).numpy(), values, rtol=1e-5, atol=1e-6)
        if trainer.log_std is not None:  # a Gaussian's log-std is the seed's own, and trained
            np.testing.assert_array_equal(agent.log_std.numpy(), trainer.log_std.numpy()[k])
            assert not np.array_equal(agent.log_std.numpy(), np.zeros(1, np.float32))
        slots = [v.numpy() for v in agent.opt.variables]
        assert int(slots[0]) == 4 and np.abs(slots[-1]).sum() > 0  # 2 epochs of 2 minibatches, velocities set


@pytest.mark.parametrize(
    ("agent", "env_id", "overrides", "why"),
    [
        ("a2c", "CartPole-v1", {}, "only ppo, dqn and sac batch"),
        ("dqn", "Pendulum-v1", {}, "continuous actions"),
        ("dqn", "CartPole-v1", {"dueling": True}, "dueling"),
        ("dqn", "CartPole-v1", {"normalize_obs": True}, "normalize_obs"),
        ("sac", "Pendulum-v1", {"normalize_reward": True}, "normalize_obs/normalize_reward"),
        ("sac", "CartPole-v1", {}, "discrete actions"),
        ("ppo", "LunarLander-v3", {}, "has no TensorFlow-native twin"),
        ("ppo", "CartPole-v1", {"target_kl": 0.01}, "target_kl"),
        ("ppo", "CartPole-v1", {"ortho_init": False}, "ortho_init"),
    ],
)
def test_what_cannot_batch_says_why(agent, env_id, overrides, why) -> None:
    cfg = resolve_config(agent, env_id, overrides, None)
    assert why in check_batchable(agent, cfg, env_id)
    assert check_batchable("ppo", small_cfg(), "CartPole-v1") is None
    assert check_batchable("ppo", resolve_config("ppo", "Acrobot-v1", {}, None), "Acrobot-v1") is None  # normalises


def test_each_seeds_statistics_update_as_one_seeds_native_normalizer() -> None:
    """SeedNormalizer against TFNormalizer (what train --native uses), seed by seed, on the same
    observations, episode ends and rewards: statistics, scaled observations and rewards."""
    from kerasdojo.agents.seed_base import SeedNormalizer
    from kerasdojo.envs.native.vector import TFNormalizer

    tf = backend.tf()
    rng = np.random.default_rng(0)
    cfg = small_cfg("Acrobot-v1", gamma=0.95)
    S, E, D = 3, 4, 6
    batched = SeedNormalizer(S, D, E, cfg)
    alone = [TFNormalizer((D,), True, True, 0.95, E) for _ in range(S)]
    for _ in range(5):
        obs = rng.normal(size=(S, E, D)) * rng.uniform(0.5, 3.0, size=(S, 1, D)) + rng.normal(size=(S, 1, D))
        done = rng.uniform(size=(S, E)) < 0.3
        reward = rng.normal(size=(S, E)).astype(np.float32) * np.arange(1, S + 1)[:, None]
        batched.update_obs(tf.constant(obs))
        batched.update_obs(tf.constant(obs * 2), where=tf.constant(done))
        scaled = batched.observation(tf.constant(obs)).numpy()
        rewards = batched.reward(tf.constant(reward), done).numpy()
        for k, one in enumerate(alone):
            one.update_obs(tf.constant(obs[k]))
            one.update_obs(tf.constant(obs[k] * 2), where=tf.constant(done[k]))
            np.testing.assert_allclose(scaled[k], one.tf_observation(obs[k], update=False).numpy(), rtol=1e-6)
            np.testing.assert_allclose(rewards[k], one.tf_reward(tf.constant(reward[k]), done[k]).numpy(), rtol=1e-6)
    for k, one in enumerate(alone):
        for key, value in one.state().items():
            np.testing.assert_allclose(batched.snapshot(k)[key], value, rtol=1e-12, err_msg=key)
    assert not np.allclose(batched.snapshot(0)["obs_mean"], batched.snapshot(1)["obs_mean"])
