"""--native: PPO and DQN compiled end to end on the TensorFlow-native envs (short runs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from kerasdojo import backend
from kerasdojo.cli import app
from kerasdojo.errors import Interrupted
from kerasdojo.files import load_arrays
from kerasdojo.runs import read_progress
from kerasdojo.training.session import TrainSpec, evaluate_run, resume, start
from tests.agents.test_agents import press_ctrl_c_at
from tests.test_runs import read_events

runner = CliRunner()

SMALL = {
    "ppo": {"n_envs": 4, "n_steps": 64, "batch_size": 64, "n_epochs": 2},
    "dqn": {"learning_starts": 64, "train_freq": 16, "gradient_steps": 4, "target_update_interval": 50},
}


def spec(env_id: str, agent: str, steps: int, seed: int = 0, **overrides) -> TrainSpec:
    return TrainSpec(
        env_id,
        agent,
        seed=seed,
        total_steps=steps,
        eval_every=steps // 2,
        eval_episodes=2,
        save_every=steps // 2,
        native=True,
        overrides={**SMALL[agent], **overrides},
    )


def curve(run) -> list[dict]:
    """progress.csv without the wall-clock columns."""
    return [
        {k: v for k, v in row.items() if not k.startswith("time/") or k == "time/total_timesteps"}
        for row in read_progress(run / "progress.csv")
    ]


@pytest.mark.parametrize("agent", ["ppo", "dqn"])
def test_native_run_is_a_whole_run_traced_once(runs_dir, agent: str) -> None:
    session = start(spec("CartPole-v1", agent, 1024), runs_dir)
    summary = session.train()
    run = summary.run_dir
    assert session.agent.traces == 1  # one XLA program for the whole run
    assert json.loads((run / "config.json").read_text())["native"] is True
    rows = read_progress(run / "progress.csv")
    assert int(rows[-1]["time/total_timesteps"]) == summary.steps >= 1024
    returns = [float(r["rollout/ep_rew_mean"]) for r in rows if r.get("rollout/ep_rew_mean")]
    assert returns and all(8 <= x <= 500 for x in returns)  # CartPole episodes were counted
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert losses and np.all(np.isfinite(losses))
    assert [r for r in rows if r.get("eval/mean_reward")]  # evaluated on Gymnasium's env
    assert session.env.episodes > 0 and 8 <= np.mean(session.env.episode_lengths) <= 500
    scalars = set(read_events(run).Tags()["scalars"])  # the same TensorBoard tags as any run
    assert {"rollout/ep_rew_mean", "eval/mean_reward", "time/fps", "train/loss", "train/learning_rate"} <= scalars
    keras = backend.keras()
    policy = keras.models.load_model(run / "policy.keras")
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32) * 0.1
    np.testing.assert_allclose(policy(obs).numpy().argmax(axis=1), session.agent.act(obs))
    # The agent evaluates from its run directory alone, as any PPO/DQN agent.
    assert evaluate_run(run, episodes=2).result.episodes == 2


@pytest.mark.slow  # long end to end (pytest -m "not slow" stays under 5 minutes)
def test_same_seed_same_curve(runs_dir) -> None:
    runs = [start(spec("CartPole-v1", "ppo", 1024, seed=5), runs_dir / str(i)).train().run_dir for i in "ab"]
    assert curve(runs[0]) == curve(runs[1])
    other = start(spec("CartPole-v1", "ppo", 1024, seed=6), runs_dir / "c").train().run_dir
    assert curve(other) != curve(runs[0])


@pytest.mark.parametrize("agent", ["ppo", pytest.param("dqn", marks=pytest.mark.slow)])
def test_native_resume_continues_the_curve(runs_dir, agent: str) -> None:
    session = start(spec("CartPole-v1", agent, 2048, seed=3), runs_dir)
    press_ctrl_c_at(session, 900)
    with pytest.raises(Interrupted):
        session.train()
    run = session.run.path
    ((step, ckpt),) = session.run.checkpoints()
    arrays, meta = load_arrays(ckpt)
    resumed = resume(run)
    summary = resumed.train()
    assert summary.steps >= 2048
    rows = read_progress(run / "progress.csv")
    steps = [int(r["time/total_timesteps"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] == summary.steps and len(set(steps)) == len(steps)
    assert float(rows[-1]["train/n_updates"]) > int(meta["n_updates"]) > 0  # counts on from the checkpoint
    assert int(resumed.agent.opt.iterations.numpy()) > int(arrays["opt/adam/0"]) > 0
    assert resumed.env.episodes > int(meta["episodes"])
    if agent == "dqn":  # the replay buffer went into the checkpoint and back into the TF variables
        saved = int(meta["replay/size"])
        assert saved == step
        assert int(resumed.agent.replay.size.numpy()) == summary.steps
        kept = resumed.agent.replay.vars["obs"].numpy()[:saved]
        np.testing.assert_array_equal(kept, arrays["replay/obs"][:saved])


def test_native_continuous_with_normalisation(runs_dir) -> None:
    session = start(spec("Pendulum-v1", "ppo", 2048, normalize_obs=True, normalize_reward=True), runs_dir)
    summary = session.train()
    arrays, _ = load_arrays(summary.run_dir / "agent.npz")
    assert float(arrays["norm/obs_count"]) > 2000 and float(arrays["norm/ret_count"]) > 2000
    assert np.all(arrays["norm/obs_var"] != 1.0)
    keras = backend.keras()
    policy = keras.models.load_model(summary.run_dir / "policy.keras")
    assert "obs_norm" in [layer.name for layer in policy.layers]
    obs = np.array([[1.0, 0.0, 0.5]], np.float32)
    norm = session.env.normalizer
    norm.training = False
    np.testing.assert_allclose(policy(obs).numpy(), session.agent.act(norm.observation(obs)), atol=1e-5)


def test_native_bad_input_is_one_line(runs_dir) -> None:
    base = ["train", "--native", "--runs-dir", str(runs_dir), "-q"]
    result = runner.invoke(app, [*base[:1], "LunarLander-v3", *base[1:]])
    assert result.exit_code == 2
    assert "no TensorFlow-native twin" in result.output and "CartPole-v1" in result.output
    result = runner.invoke(app, [*base[:1], "Pendulum-v1", "--agent", "a2c", *base[1:]])
    assert result.exit_code == 2 and "ppo, dqn, sac, td3, ddpg" in result.output
    result = runner.invoke(app, [*base[:1], "CartPole-v1", "--env-kwargs", "sutton_barto_reward=true", *base[1:]])
    assert result.exit_code == 2 and "--env-kwargs" in result.output
    assert not runs_dir.exists() or not list(runs_dir.iterdir())  # nothing half-made


def test_xla_cache_setting(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("TF_XLA_FLAGS", raising=False)
    monkeypatch.setenv("KERASDOJO_XLA_CACHE", str(tmp_path / "xla"))
    backend._persistent_xla_cache()
    import os

    assert f"--tf_xla_persistent_cache_directory={tmp_path / 'xla'}" in os.environ["TF_XLA_FLAGS"]
    assert (tmp_path / "xla").is_dir()
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_persistent_cache_directory=/elsewhere")
    backend._persistent_xla_cache()
    assert os.environ["TF_XLA_FLAGS"] == "--tf_xla_persistent_cache_directory=/elsewhere"
    monkeypatch.delenv("TF_XLA_FLAGS")
    monkeypatch.setenv("KERASDOJO_XLA_CACHE", "0")
    backend._persistent_xla_cache()
    assert "TF_XLA_FLAGS" not in os.environ


def test_native_dqn_ring_buffer_wraps_and_keeps_the_newest(runs_dir) -> None:
    """A buffer smaller than one call's collection (64 transitions into 40 rows) keeps the last 40."""
    session = start(spec("CartPole-v1", "dqn", 128, n_envs=4, buffer_size=40, learning_starts=0), runs_dir)
    agent, env = session.agent, session.env
    agent.begin(env)
    agent.learn(env, 0, 128)
    assert int(agent.replay.size.numpy()) == 40 and int(agent.replay.pos.numpy()) == 64 % 40
    obs, next_obs = agent.replay.vars["obs"].numpy(), agent.replay.vars["next_obs"].numpy()
    # The 40 stored transitions are consecutive vector steps (4 envs): where no episode ended,
    # a row's next observation is the observation 4 rows later (in ring order).
    order = (int(agent.replay.pos.numpy()) + np.arange(40)) % 40
    obs, next_obs, terminated = obs[order], next_obs[order], agent.replay.vars["terminated"].numpy()[order]
    follows = [np.allclose(next_obs[i], obs[i + 4]) for i in range(36) if not terminated[i]]
    assert np.mean(follows) > 0.8 and np.all(np.abs(obs).sum(axis=1) > 0)
    agent.learn(env, 64, 128)  # and it goes on wrapping
    assert int(agent.replay.size.numpy()) == 40 and int(agent.replay.pos.numpy()) == 128 % 40
    session.run.close()


def test_native_ppo_target_kl_stops_the_epochs_early(runs_dir) -> None:
    session = start(spec("CartPole-v1", "ppo", 256, n_epochs=10, target_kl=1e-6), runs_dir)
    agent, env = session.agent, session.env
    agent.begin(env)
    for step in (0, 256):  # the first update starts at the old policy (KL 0); the second stops early
        agent.learn(env, step, 10_000)
    total = 10 * (4 * 64 // 64)  # epochs x minibatches per update
    assert 2 <= agent.n_updates < total  # at least one update stopped before its second minibatch
    session.run.close()
