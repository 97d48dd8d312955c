"""SAC, TD3/DDPG and A2C: the maths on values worked by hand, the shared replay
buffer's truncation handling, no retracing, resume, export and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from kerasdojo import envs
from kerasdojo.agents.buffers import ReplayBuffer, collect
from kerasdojo.cli import app
from kerasdojo.files import load_arrays
from kerasdojo.training.session import TrainSpec, resume, start

runner = CliRunner()
SMALL = {"learning_starts": 64, "batch_size": 32, "net_arch": (32, 32)}


def make(agent: str, env_id: str = "Pendulum-v1", **overrides):
    from kerasdojo import agents

    info = agents.get(agent)
    cls = info.load()
    env = envs.make_vec(env_id, 2, seed=1)
    cfg = cls.Config(**{k: v for k, v in {**SMALL, **overrides}.items() if k in cls.Config.__dataclass_fields__})
    return cls(cfg, env.obs_spec, env.single_action_space, 0), env


# ----------------------------------------------------------------------------- SAC's distribution


# ----------------------------------------------------------------------------- TD3's targets
class _Constant:
    """A stand-in network that returns fixed outputs."""

    def __init__(self, value) -> None:
        self.value = np.asarray(value, np.float32)

    def __call__(self, *_args, **_kwargs):
        import tensorflow as tf

        return tf.constant(self.value)


def test_twin_critic_target_uses_the_smaller_q_and_stops_at_termination() -> None:
    agent, _ = make("td3", gamma=0.98)
    values = np.asarray([[10.0, 5.0, -3.0], [8.0, 7.0, -1.0]], np.float32)  # (critic, batch)
    agent.q = lambda model, obs, actions, members=None: values[: len(values) if members is None else members]
    target = agent.td_target(
        np.array([1.0, 2.0, 0.5], np.float32), np.array([0.0, 1.0, 0.0], np.float32), None, None
    ).numpy()
    # r + 0.98 * (1 - terminated) * min(Q1', Q2'), worked by hand:
    np.testing.assert_allclose(target, [1 + 0.98 * 8.0, 2.0, 0.5 + 0.98 * -3.0], rtol=1e-6)
    ddpg, _ = make("ddpg", gamma=0.98)
    ddpg.q = lambda model, obs, actions, members=None: values[:1]
    np.testing.assert_allclose(
        ddpg.td_target(np.float32([1.0]), np.float32([0.0]), None, None).numpy()[:1], [1 + 0.98 * 10.0], rtol=1e-6
    )


def test_target_policy_smoothing_clips_the_noise_then_the_action() -> None:
    agent, _ = make("td3", target_policy_noise=0.2, target_noise_clip=0.5)
    agent.actor_target = _Constant([[0.9, 0.0], [-0.2, -0.95]])

    class FixedNormal:
        def normal(self, shape):
            import tensorflow as tf

            return tf.constant([[3.0, -0.5], [-0.1, -4.0]])

    agent.tf_rng = FixedNormal()
    smoothed = agent.target_actions(None).numpy()
    # noise = clip(0.2 * n, -0.5, 0.5) = [[0.5, -0.1], [-0.02, -0.5]]; then clip(mu + noise, -1, 1):
    np.testing.assert_allclose(smoothed, [[1.0, -0.1], [-0.22, -1.0]], atol=1e-6)
    ddpg, _ = make("ddpg")
    ddpg.actor_target = agent.actor_target
    np.testing.assert_allclose(ddpg.target_actions(None).numpy(), [[0.9, 0.0], [-0.2, -0.95]])  # no smoothing


# ----------------------------------------------------------------------------- the shared replay buffer
def test_truncated_episode_bootstraps_from_its_true_last_observation() -> None:
    """Pendulum never terminates; with a 3-step limit every 3rd transition is a truncation. The
    buffer must hold it with terminated=0 and the episode's own last observation, and must drop
    the reset call that follows, whose 'transition' would join two episodes."""
    import gymnasium as gym

    env = envs.make_vec("Pendulum-v1", 1, seed=4, env_kwargs={"max_episode_steps": 3})
    buffer = ReplayBuffer(100, env.obs_spec, (1,), np.float32)
    actions = np.linspace(-2, 2, 8, dtype=np.float32).reshape(8, 1, 1)
    env.reset(seed=4)
    collect(env, env.obs, buffer, 8, lambda obs, i: (actions[i], actions[i]))
    assert len(buffer) == 6  # 8 calls, 2 of them resets (after steps 3 and 6 of the episode clock)
    assert not buffer.terminated[:6].any()
    # Replay the first episode on a plain Gymnasium env: the 3rd stored o' is its true last observation.
    single = gym.make("Pendulum-v1", max_episode_steps=3)
    obs, _ = single.reset(seed=4)
    np.testing.assert_allclose(buffer.obs[0], obs, rtol=1e-6)
    for t in range(3):
        obs, _, terminated, truncated, _ = single.step(actions[t, 0])
        np.testing.assert_allclose(buffer.next_obs[t], obs, rtol=1e-6)
    assert truncated and not terminated
    assert not np.allclose(buffer.obs[3], buffer.next_obs[2])  # the next stored o is a new episode's first
    np.testing.assert_allclose(buffer.actions[3], actions[4, 0])  # the reset call's action was dropped


# ----------------------------------------------------------------------------- speed habits
@pytest.mark.parametrize("agent", ["sac", "td3"])
def test_update_is_traced_once(agent) -> None:
    model, env = make(agent, learning_starts=8, gradient_steps=2)
    env.reset(seed=0)
    model.begin(env)
    step = 0
    for _ in range(12):
        taken, metrics = model.learn(env, step, 1000)
        step += taken
    assert model._train.experimental_get_tracing_count() == 1
    assert {"train/critic_loss", "train/actor_loss"} <= set(metrics)
    assert model.n_updates == 2 * sum(1 for s in range(0, step, 2) if s + 2 > 8)


# ----------------------------------------------------------------------------- resume and export
@pytest.mark.parametrize(
    "agent,env_id,extra",
    [
        pytest.param("sac", "Pendulum-v1", {}, marks=pytest.mark.slow),
        pytest.param(
            "td3",
            "MountainCarContinuous-v0",
            {"noise_type": "ornstein-uhlenbeck", "noise_std": 0.5},
            marks=pytest.mark.slow,
        ),
        ("a2c", "CartPole-v1", {"n_steps": 8}),
    ],
)
def test_checkpoint_resumes_everything(runs_dir, agent, env_id, extra) -> None:
    overrides = {**SMALL, **extra} if agent != "a2c" else extra
    spec = TrainSpec(
        env_id, agent, seed=2, total_steps=256, eval_every=0, eval_episodes=1, save_every=256, overrides=overrides
    )
    first = start(spec, runs_dir)
    first.train()
    saved, meta = load_arrays(first.run.checkpoints()[-1][1])
    resumed = resume(first.run.path, total_steps=384)
    a, b = first.agent, resumed.agent
    for name, opt in a.optimizers().items():
        assert int(b.optimizers()[name].iterations.numpy()) == int(opt.iterations.numpy()) > 0, name
    assert b.rng.bit_generator.state == a.rng.bit_generator.state
    np.testing.assert_array_equal(b.tf_rng.state.numpy(), a.tf_rng.state.numpy())
    if agent == "sac":
        assert float(b.log_ent_coef.numpy()) == float(a.log_ent_coef.numpy()) != 0.0  # tuned, then restored
    if agent in ("sac", "td3"):
        assert len(b.buffer) == len(a.buffer) >= 250  # 256 steps less the reset calls
        np.testing.assert_array_equal(b.buffer.actions[: len(a.buffer)], a.buffer.actions[: len(a.buffer)])
    if agent == "td3":
        assert a.ou_state is not None and np.any(a.ou_state != 0)
        np.testing.assert_array_equal(b.ou_state, a.ou_state)
    assert resumed.train().steps == 384


@pytest.mark.parametrize("agent", ["sac", "td3"])
def test_policy_keras_maps_observations_to_bounded_actions(tmp_path, agent) -> None:
    import keras

    from kerasdojo.envs.wrappers import Normalizer
    from kerasdojo.training.export import export_policy

    model, env = make(agent)
    path = export_policy(model, Normalizer(env.obs_shape, False, False, 0.99), tmp_path / "policy.keras")
    policy = keras.models.load_model(path)
    obs = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32) * 3
    actions = policy(obs).numpy()
    np.testing.assert_allclose(actions, model.act(obs, deterministic=True), atol=1e-5)
    assert actions.shape == (64, 1) and np.all(np.abs(actions) <= 2.0)  # Pendulum's torque bounds


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("agent", ["sac", "td3", "ddpg"])
def test_continuous_agents_on_a_discrete_env_is_one_line(runs_dir, agent) -> None:
    result = runner.invoke(app, ["train", "CartPole-v1", "--agent", agent, "--runs-dir", str(runs_dir)])
    assert result.exit_code == 2, result.output
    assert f"{agent} cannot act in CartPole-v1" in result.output
    assert "agents for this env: ppo, ppo_lstm, dqn, a2c, random" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_entropy_coefficient(runs_dir) -> None:
    for value in ("lots", "auto_x", "-1"):
        result = runner.invoke(
            app, ["train", "Pendulum-v1", "--agent", "sac", "--set", f"ent_coef={value}", "--runs-dir", str(runs_dir)]
        )
        assert result.exit_code == 2 and "ent_coef" in result.output and "Traceback" not in result.output, value
