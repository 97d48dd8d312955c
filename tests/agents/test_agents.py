"""Smoke, persistence, resume, determinism and bad-input tests for the agents (short runs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from kerasdojo.cli import app
from kerasdojo.errors import DojoError, Interrupted
from kerasdojo.files import load_arrays
from kerasdojo.runs import read_progress
from kerasdojo.training.checkpoint import agent_state, load_agent_state
from kerasdojo.training.session import Session, TrainSpec, evaluate_run, open_run, resume, start
from kerasdojo.training.spec import build_agent
from tests.test_runs import read_events

runner = CliRunner()

FAST = {
    "ppo": ["--set", "n_steps=64", "--set", "batch_size=64", "--set", "n_epochs=2", "--n-envs", "4"],
    "dqn": [
        "--set",
        "learning_starts=64",
        "--set",
        "train_freq=16",
        "--set",
        "gradient_steps=4",
        "--set",
        "target_update_interval=50",
    ],
    "a2c": ["--set", "n_steps=8", "--n-envs", "4", "--set", "normalize_obs=false"],  # (policy compared raw)
    **{
        name: ["--set", "learning_starts=64", "--set", "batch_size=32", "--set", "net_arch=32,32"]
        for name in ("sac", "td3", "ddpg")
    },
    "random": [],
}


def train(runs_dir, env: str, agent: str, steps: int, *extra: str):
    args = [
        "train",
        env,
        "--agent",
        agent,
        "--steps",
        str(steps),
        "--runs-dir",
        str(runs_dir),
        "--eval-every",
        str(steps // 2),
        "--eval-episodes",
        "2",
        "--save-every",
        str(steps // 2),
        "-q",
        *FAST[agent],
        *extra,
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return next(p for p in sorted(runs_dir.iterdir()))


@pytest.mark.parametrize(
    "env,agent",
    [
        ("CartPole-v1", "ppo"),
        ("Pendulum-v1", "ppo"),
        ("CartPole-v1", "dqn"),
        ("CartPole-v1", "a2c"),
        ("Pendulum-v1", "a2c"),
        ("Pendulum-v1", "sac"),
        ("Pendulum-v1", "td3"),
        ("Pendulum-v1", "ddpg"),
        ("CartPole-v1", "random"),
        ("Pendulum-v1", "random"),
        ("tests.envs.toy:Corridor", "ppo"),
    ],
)
def test_smoke_each_agent_and_action_space(runs_dir, env, agent) -> None:
    import keras

    run = train(runs_dir, env, agent, 512)
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "progress.csv", "checkpoints", "agent.npz", "eval.json"} <= names
    tags = read_events(run).Tags()
    assert {"rollout/ep_rew_mean", "eval/mean_reward", "time/fps"} <= set(tags["scalars"])
    assert "hyperparameters" in tags["tensors"]
    if agent != "random":
        assert "train/learning_rate" in tags["scalars"]
    eval_rows = [r for r in read_progress(run / "progress.csv") if r.get("eval/mean_reward")]
    assert len(eval_rows) == 2 and all(r["time/train_seconds"] for r in eval_rows)  # mid-run and final
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["episodes"] == 2 and np.isfinite(evaluation["mean_reward"])
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    arrays, meta = load_arrays(ckpt)
    assert meta["step"] >= 512 and meta["agent"] == agent
    result = evaluate_run(run, episodes=2)  # loads from the run directory alone
    assert result.result.episodes == 2
    if agent == "random":
        assert "policy.keras" not in names
        return
    policy = keras.models.load_model(run / "policy.keras")  # plain Keras, no kerasdojo objects
    session_agent = build_agent(agent, open_run(run)[2], _env(env), 0)
    load_agent_state(session_agent, *load_arrays(run / "agent.npz"))
    obs = _env(env).obs
    np.testing.assert_allclose(policy(obs).numpy(), session_agent.policy_model()(obs).numpy(), atol=1e-5)


def _env(env_id):
    from kerasdojo import envs

    return envs.make_vec(env_id, 3, seed=5)


def test_exported_policy_includes_observation_normalisation(runs_dir) -> None:
    import keras

    run = train(runs_dir, "Pendulum-v1", "ppo", 512, "--set", "normalize_obs=true", "--set", "normalize_reward=true")
    policy = keras.models.load_model(run / "policy.keras")
    assert [layer.name for layer in policy.layers[:4]] == ["obs_norm", "clip_shift", "clip", "clip_unshift"]
    arrays, meta = load_arrays(run / "agent.npz")
    raw = np.array([[0.5, -0.8, 3.0], [1.0, 0.0, -40.0]], np.float32)
    norm = (raw - arrays["norm/obs_mean"]) / np.sqrt(arrays["norm/obs_var"] + 1e-8)
    norm = np.clip(norm, -10, 10).astype(np.float32)
    inner = keras.Sequential(policy.layers[4:])
    np.testing.assert_allclose(policy(raw).numpy(), inner(norm).numpy(), atol=1e-4)


def press_ctrl_c_at(session: Session, at_step: int) -> None:
    """Deliver a real SIGINT to this process once ``at_step`` env steps are done."""
    import os
    import signal

    learn = session.agent.learn

    def learn_then_interrupt(env, step, total):
        out = learn(env, step, total)
        if step + out[0] >= at_step and not session.state.stop:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    session.agent.learn = learn_then_interrupt


def test_interrupt_checkpoints_and_resume_continues_the_curve(runs_dir) -> None:
    spec = TrainSpec(
        "CartPole-v1",
        "dqn",
        seed=3,
        total_steps=2048,
        eval_every=512,
        eval_episodes=2,
        save_every=100_000,
        overrides={"learning_starts": 64, "train_freq": 16, "gradient_steps": 4},
    )
    session = start(spec, runs_dir)
    press_ctrl_c_at(session, 900)
    with pytest.raises(Interrupted) as err:
        session.train()
    assert err.value.exit_code == 130 and "kerasdojo resume" in err.value.one_line()
    run = session.run.path
    ((step, ckpt),) = [(s, p) for s, p in session.run.checkpoints()]
    assert 900 <= step <= 900 + 16
    arrays, meta = load_arrays(ckpt)
    saved_replay = int(meta["replay/size"])
    saved_iterations = int(arrays["opt/adam/0"])

    resumed = resume(run)
    assert resumed.agent.buffer.size == saved_replay
    assert int(resumed.agent.opt.iterations.numpy()) == saved_iterations
    assert resumed.agent.rng.bit_generator.state == meta["rng/numpy"]
    assert resumed.state.best_eval == meta["best_eval"] is not None  # the best agent is not forgotten
    summary = resumed.train()
    assert summary.steps == 2048
    steps = [int(r["time/total_timesteps"]) for r in read_progress(run / "progress.csv")]
    assert steps == sorted(steps) and steps[-1] == 2048 and steps[0] <= 1024
    assert max(b - a for a, b in zip(steps, steps[1:], strict=False)) <= 1024  # no gap at the resume point
    tb_steps = [e.step for e in read_events(run).Scalars("rollout/ep_rew_mean")]
    assert tb_steps == sorted(tb_steps) and tb_steps[-1] == 2048
    assert json.loads((run / "config.json").read_text())["config"]["total_steps"] == 2048


def test_resume_with_more_steps_and_when_done(runs_dir) -> None:
    run = train(runs_dir, "CartPole-v1", "ppo", 512)
    result = runner.invoke(app, ["resume", str(run)])
    assert result.exit_code == 2 and "already reached" in result.output and "--steps" in result.output
    result = runner.invoke(app, ["resume", str(run), "--steps", "1024", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "eval.json").read_text())["step"] == 1024


def test_eval_prefers_a_newer_checkpoint_to_a_stale_final_agent(runs_dir) -> None:
    run = train(runs_dir, "CartPole-v1", "ppo", 512)
    assert evaluate_run(run, episodes=1).source == "final agent"
    session = resume(run, total_steps=4096)  # trained further, then interrupted
    press_ctrl_c_at(session, 1024)
    with pytest.raises(Interrupted):
        session.train()
    step = session.run.checkpoints()[-1][0]
    assert step >= 1024
    assert evaluate_run(run, episodes=1).source == f"checkpoint at step {step:,}"


def test_same_seed_same_evaluation(runs_dir) -> None:
    evals = []
    for _ in range(2):
        run = train(runs_dir / str(len(evals)), "CartPole-v1", "ppo", 1024, "--seed", "7")
        evals.append((json.loads((run / "eval.json").read_text()), read_progress(run / "progress.csv")))
    (a, rows_a), (b, rows_b) = evals
    assert a["mean_reward"] == b["mean_reward"] and a["std_reward"] == b["std_reward"]
    key = "train/value_loss"
    losses = [r[key] for r in rows_a if r.get(key)]
    assert losses and losses == [r[key] for r in rows_b if r.get(key)]


def test_eval_cli_and_best_agent(runs_dir, tmp_path) -> None:
    run = train(runs_dir, "CartPole-v1", "ppo", 512)
    result = runner.invoke(app, ["eval", str(run), "--episodes", "3", "--video", str(tmp_path / "ep.gif")])
    assert result.exit_code == 0, result.output
    assert "mean return" in result.output and "over 3 episodes" in result.output
    import imageio.v3 as iio

    frames = iio.imread(tmp_path / "ep.gif", index=None)
    assert frames.ndim == 4 and frames.shape[-1] == 3 and len(frames) > 2
    assert runner.invoke(app, ["eval", str(run), "--best", "--episodes", "2"]).exit_code == 0
    bad = runner.invoke(app, ["eval", str(run), "--video", str(tmp_path / "ep.avi")])
    assert bad.exit_code == 2 and ".gif or .mp4" in bad.output


def test_train_video_flag_records_final_episode(runs_dir) -> None:
    run = train(runs_dir, "tests.envs.toy:Corridor", "ppo", 256, "--video")
    assert (run / "videos" / "final.gif").stat().st_size > 0


def test_corrupt_checkpoint_is_one_line(runs_dir) -> None:
    run = train(runs_dir, "CartPole-v1", "ppo", 512)
    (run / "agent.npz").unlink()
    for ckpt in (run / "checkpoints").iterdir():
        ckpt.write_bytes(b"PK\x03\x04 torn")
    for args in (["eval", str(run)], ["resume", str(run), "--steps", "2048"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "corrupt" in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["CartPol-v1"], ["Unknown environment id 'CartPol-v1'", "CartPole-v1"]),
        (
            ["Pendulum-v1", "--agent", "dqn"],
            ["dqn cannot act in Pendulum-v1", "agents for this env: ppo, ppo_lstm, a2c, sac, td3, ddpg, random"],
        ),
        (["CartPole-v1", "--set", "learnin_rate=1"], ["Unknown key 'learnin_rate'", "did you mean learning_rate"]),
        (["CartPole-v1", "--set", "gamma=high"], ["Invalid value for gamma", "expected a number"]),
        (["CartPole-v1", "--set", "n_steps=-3"], ["n_steps", "must be >= 1"]),
        (["CartPole-v1", "--config", "missing.toml"], ["Config file not found"]),
        (["CartPole-v1", "--steps", "0"], ["--steps must be >= 1"]),
        (["CartPole-v1", "--env-kwargs", "nope"], ["Expected key=value"]),
    ],
)
def test_train_bad_input(runs_dir, args, fragments) -> None:
    result = runner.invoke(app, ["train", *args, "--runs-dir", str(runs_dir)])
    assert result.exit_code == 2, result.output
    for fragment in fragments:
        assert fragment in result.output
    assert "Traceback" not in result.output
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_eval_and_resume_on_non_runs(tmp_path) -> None:
    for args in (["eval", str(tmp_path)], ["resume", str(tmp_path)], ["eval", str(tmp_path / "nope")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "Error:" in result.output


def test_load_state_rejects_other_shapes() -> None:
    from kerasdojo.agents.ppo import PPO, PPOConfig

    env = _env("CartPole-v1")
    small = PPO(PPOConfig(net_arch=(8,)), env.obs_spec, env.single_action_space, 0)
    big = PPO(PPOConfig(net_arch=(16,)), env.obs_spec, env.single_action_space, 0)
    with pytest.raises(DojoError, match="does not match this agent"):
        load_agent_state(big, *agent_state(small))


def test_async_envs_survive_ctrl_c(runs_dir) -> None:
    """Workers ignore SIGINT, so the main process can still checkpoint after Ctrl-C."""
    spec = TrainSpec(
        "CartPole-v1",
        "ppo",
        seed=0,
        total_steps=4096,
        n_envs=2,
        async_envs=True,
        eval_every=0,
        save_every=0,
        overrides={"n_steps": 64, "n_epochs": 1},
    )
    session = start(spec, runs_dir)
    press_ctrl_c_at(session, 256)
    with pytest.raises(Interrupted):
        session.train()
    assert [s for s, _ in session.run.checkpoints()] == [256]


def test_normalised_multidim_observations_export_and_resume(runs_dir) -> None:
    import keras

    run = train(runs_dir, "tests.envs.toy:Plane", "ppo", 512, "--set", "normalize_obs=true")
    policy = keras.models.load_model(run / "policy.keras")
    assert policy.input_shape == (None, 2, 3) and policy.output_shape == (None, 2)
    session = resume(run, 1024)
    norm = session.env.normalizer
    assert norm.obs_rms.count > 500  # saved statistics are back...
    assert abs(float(session.env.obs.mean())) < 5  # ...and the first observations use them (raw values ~100)
    session.train()


def test_dqn_refuses_normalisation(runs_dir) -> None:
    result = runner.invoke(
        app, ["train", "CartPole-v1", "--agent", "dqn", "--set", "normalize_obs=true", "--runs-dir", str(runs_dir)]
    )
    assert result.exit_code == 2 and "dqn does not support normalize_obs" in result.output


def test_video_needs_rgb_array_before_training(runs_dir) -> None:
    result = runner.invoke(app, ["train", "tests.envs.toy:Plane", "--video", "--runs-dir", str(runs_dir)])
    assert result.exit_code == 2 and "cannot render frames" in result.output
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_saved_agents_leave_out_the_replay_buffer(runs_dir) -> None:
    run = train(runs_dir, "CartPole-v1", "dqn", 512)
    agent_arrays, agent_meta = load_arrays(run / "agent.npz")
    ckpt_arrays, _ = load_arrays(sorted((run / "checkpoints").iterdir())[-1])
    assert "replay/obs" in ckpt_arrays and "replay/obs" not in agent_arrays
    assert 0 <= agent_meta["exploration_rate"] < 1  # eval --stochastic uses the trained epsilon


def test_dqn_dueling_double_and_polyak_target() -> None:
    from kerasdojo.agents.dqn import DQN, DQNConfig

    env = _env("CartPole-v1")
    agent = DQN(
        DQNConfig(
            dueling=True,
            tau=0.5,
            learning_starts=0,
            train_freq=8,
            gradient_steps=2,
            target_update_interval=1,
            batch_size=8,
        ),
        env.obs_spec,
        env.single_action_space,
        0,
    )
    assert agent.q.layers[-1].name == "dueling_combine"
    agent.begin(env)
    for w in agent.q_target.weights:  # make the target differ from the online net
        w.assign(w.numpy() + 1.0)
    target_before = [w.numpy().copy() for w in agent.q_target.weights]
    online_before = [w.numpy().copy() for w in agent.q.weights]
    steps, metrics = agent.learn(env, 0, 1000)
    assert steps == 8 * 3 and np.isfinite(metrics["train/loss"])
    # 8 collection calls with target_update_interval=1 -> 8 Polyak updates toward the unchanged
    # online net, applied as one: target = online + 0.5**8 * (target - online)
    for t, before, online in zip(agent.q_target.weights, target_before, online_before, strict=True):
        np.testing.assert_allclose(t.numpy(), online + 0.5**8 * (before - online), atol=1e-6)
    assert agent.n_updates == 2


def test_ctrl_c_during_the_last_iteration_finishes_the_run(runs_dir) -> None:
    spec = TrainSpec(
        "CartPole-v1",
        "ppo",
        total_steps=512,
        eval_every=0,
        eval_episodes=2,
        save_every=0,
        overrides={"n_steps": 64, "batch_size": 64, "n_epochs": 2, "n_envs": 4},
    )
    session = start(spec, runs_dir)
    press_ctrl_c_at(session, 512)  # arrives while the budget's last rollout is learned
    summary = session.train()  # no Interrupted: the run is complete
    assert summary.steps == 512 and json.loads((summary.run_dir / "eval.json").read_text())["step"] == 512
