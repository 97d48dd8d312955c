"""The Gymnasium path's speed paths: PPO's and A2C's update is one call that also sets the
learning rate and hands back the weights acting needs, and one env steps on its own."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from kerasdojo import envs
from kerasdojo.agents.rules import schedule
from kerasdojo.training.spec import build_agent, resolve_config


def _learned(agent_name: str, env_id: str, iterations: int = 3):
    overrides = {"n_steps": 16, "lr_schedule": "linear"}
    if agent_name == "ppo":
        overrides |= {"batch_size": 32, "n_epochs": 2}
    cfg = resolve_config(agent_name, env_id, overrides, total_steps=1_000, n_envs=2)
    env = envs.make_vec(env_id, cfg.n_envs, seed=0)
    agent = build_agent(agent_name, cfg, env, seed=0)
    agent.begin(env)
    step = 0
    for _ in range(iterations):
        taken, _ = agent.learn(env, step, cfg.total_steps)
        step += taken
    return agent, cfg, step - taken


@pytest.mark.parametrize(
    ("agent_name", "env_id"), [("ppo", "CartPole-v1"), ("a2c", "CartPole-v1"), ("ppo", "Pendulum-v1")]
)
def test_update_call_sets_the_rate_refreshes_acting_and_traces_once(agent_name, env_id) -> None:
    agent, cfg, last_step = _learned(agent_name, env_id)
    # The learning rate the call set is the schedule's at the last update, as an eager assign gave.
    expected = np.float32(schedule(cfg.lr_schedule, cfg.learning_rate, last_step / cfg.total_steps))
    assert expected < np.float32(cfg.learning_rate)  # the linear schedule moved it
    assert np.float32(agent.opt.learning_rate.numpy()) == expected
    # The NumPy acting copies hold exactly the weights the update wrote.
    copies = agent.forward._np
    assert copies is not None
    for copy, model in zip(copies, agent.forward.models, strict=True):
        dense = [w.numpy() for w in model.weights]
        held = [a for pair in copy.params for a in pair if a is not None]
        assert len(held) == len(dense)
        for a, b in zip(held, dense, strict=True):
            np.testing.assert_array_equal(a, b)
    if agent.log_std is not None:
        np.testing.assert_array_equal(agent._log_std, agent.log_std.numpy())
    # The copies act as the Keras model does.
    obs = np.random.default_rng(0).normal(size=(5, *agent.obs_shape)).astype(np.float32)
    np.testing.assert_allclose(agent.forward(obs)[0], agent.pi(obs).numpy(), rtol=1e-5, atol=1e-6)
    assert agent._update.experimental_get_tracing_count() == 1
    with pytest.raises(ValueError, match="values for"):  # a count that does not match is an error, not a shift
        agent.forward.refresh([np.zeros(1, np.float32)])


def test_one_env_steps_alone_along_the_vectorised_envs_trajectory() -> None:
    short = {"max_episode_steps": 20}  # truncations as well as terminations
    one = envs.make_vec("CartPole-v1", 1, seed=7, env_kwargs=short)
    assert isinstance(one.env.unwrapped, gym.vector.SyncVectorEnv)
    eight = envs.make_vec("CartPole-v1", 8, seed=7)
    assert not isinstance(eight.env.unwrapped, gym.vector.SyncVectorEnv)  # Gymnasium's CartPoleVectorEnv
    reference = gym.make_vec("CartPole-v1", num_envs=1, vectorization_mode="vector_entry_point", **short)
    obs_ref, _ = reference.reset(seed=7)
    np.testing.assert_array_equal(one.reset(seed=7), obs_ref)
    rng = np.random.default_rng(0)
    ends, truncations = 0, 0
    for _ in range(600):  # several episodes: the resets agree too
        actions = rng.integers(0, 2, 1)
        obs, reward, terminated, truncated, _ = one.step(actions)
        obs_r, reward_r, terminated_r, truncated_r, _ = reference.step(actions)
        np.testing.assert_array_equal(obs, obs_r)
        np.testing.assert_array_equal(reward, reward_r)
        np.testing.assert_array_equal(terminated, terminated_r)
        np.testing.assert_array_equal(truncated, truncated_r)
        ends += int(terminated[0] or truncated[0])
        truncations += int(truncated[0])
    assert ends >= 20 and truncations >= 5
