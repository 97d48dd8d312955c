"""PPO and DQN on a real ALE game (Pong): a few thousand steps that resume, the saved policy,
colour videos, the replay memory check; and the CNN path on a small pixel env."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from kerasdojo.cli import app
from kerasdojo.runs import read_progress

runner = CliRunner()
try:
    import ale_py  # noqa: F401
    import cv2  # noqa: F401

    HAVE_ALE = True
except ImportError:
    HAVE_ALE = False
ale = pytest.mark.skipif(not HAVE_ALE, reason="the atari extra (ale-py, opencv) is not installed")

SMALL = {
    "ppo": ["--set", "n_steps=64", "--set", "batch_size=128", "--set", "n_epochs=1", "--set", "net_arch=[64]"],
    "dqn": [
        "--set",
        "learning_starts=300",
        "--set",
        "buffer_size=2000",
        "--set",
        "net_arch=[64]",
        "--set",
        "train_freq=8",
        "--set",
        "target_update_interval=200",
    ],
}


def only_run(runs_dir):
    (run,) = list(runs_dir.iterdir())
    return run


@ale
@pytest.mark.parametrize("agent", ["ppo", "dqn"])
def test_pong_trains_resumes_and_saves_a_uint8_frame_policy(runs_dir, agent: str) -> None:
    import keras

    common = ["--eval-every", "0", "--eval-episodes", "1", "--save-every", "512", "--runs-dir", str(runs_dir)]
    first = runner.invoke(app, ["train", "ALE/Pong-v5", "--agent", agent, "--steps", "1024", *common, *SMALL[agent]])
    assert first.exit_code == 0, first.output
    if agent == "dqn":  # the replay buffer's memory is printed at start
        assert "replay buffer: 2,000 observations of (4, 84, 84) uint8, each stored once" in first.output
    run = only_run(runs_dir)
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["n_envs"] == (8 if agent == "ppo" else 1)  # the generic Atari preset
    resumed = runner.invoke(app, ["resume", str(run), "--steps", "2048"])
    assert resumed.exit_code == 0, resumed.output
    steps = [int(r["time/total_timesteps"]) for r in read_progress(run / "progress.csv")]
    assert steps[-1] >= 2048 and steps == sorted(steps) and steps[0] <= 1024
    eval_json = json.loads((run / "eval.json").read_text())
    assert eval_json["mean_reward"] <= -10  # a whole game of Pong, raw score (an untrained agent loses)
    assert eval_json["deterministic"] is False  # Atari games are evaluated with sampled actions (RL Zoo)
    assert "Final evaluation over 1 episodes (sampled actions)" in resumed.output
    policy = keras.models.load_model(run / "policy.keras")
    assert policy.inputs[0].dtype == "uint8" and tuple(policy.input_shape) == (None, 4, 84, 84)
    frames = np.random.default_rng(0).integers(0, 256, (3, 4, 84, 84), dtype=np.uint8)
    assert policy.predict(frames, verbose=0).shape == (3, 6)


@ale
def test_eval_video_shows_the_game_in_colour(runs_dir, tmp_path) -> None:
    import imageio.v3 as iio

    done = runner.invoke(
        app,
        [
            "train",
            "ALE/Pong-v5",
            "--steps",
            "512",
            "--eval-every",
            "0",
            "--eval-episodes",
            "1",
            "--runs-dir",
            str(runs_dir),
            *SMALL["ppo"],
        ],
    )
    assert done.exit_code == 0, done.output
    video = tmp_path / "pong.gif"
    out = runner.invoke(app, ["eval", str(only_run(runs_dir)), "--episodes", "1", "--video", str(video)])
    assert out.exit_code == 0, out.output
    assert "(final agent, sampled actions): mean return" in out.output
    frames = iio.imread(video, index=None)
    assert frames.shape[1:3] == (210, 160) and len(frames) > 100  # the real screen, a whole game
    frame = frames[len(frames) // 2].astype(int)
    assert np.abs(frame[..., 0] - frame[..., 1]).mean() > 5  # colour, not gray
    greedy = runner.invoke(app, ["eval", str(only_run(runs_dir)), "--episodes", "1", "--deterministic"])
    assert greedy.exit_code == 0 and "(final agent): mean return" in greedy.output, greedy.output


@ale
def test_a_replay_buffer_that_does_not_fit_is_refused_in_one_line(runs_dir) -> None:
    out = runner.invoke(
        app, ["train", "ALE/Pong-v5", "--agent", "dqn", "--set", "buffer_size=100000000", "--runs-dir", str(runs_dir)]
    )
    assert out.exit_code == 2
    assert "The replay buffer (100,000,000 observations of (4, 84, 84) uint8" in out.output
    assert "Traceback" not in out.output and not (runs_dir.exists() and any(runs_dir.iterdir()))


def test_pixel_env_uses_a_shared_cnn_and_a_uint8_policy(runs_dir) -> None:
    from kerasdojo.agents import session as trainer

    spec = trainer.TrainSpec(
        "tests.envs.pixels:ReachSquare",
        "ppo",
        total_steps=256,
        eval_every=0,
        eval_episodes=2,
        save_every=0,
        overrides={"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 1},
    )
    session = trainer.start(spec, runs_dir)
    agent = session.agent
    names = [layer.name for layer in agent.joint.layers]
    assert names[:3] == ["obs", "channels_last", "scale"] and "conv_0" in names
    # one torso: the policy's and the value's conv kernels are the same variables
    assert agent.pi.get_layer("conv_0") is agent.vf.get_layer("conv_0")
    assert len(agent.train_vars) == len({id(v) for v in agent.train_vars})
    session.train()
    import keras

    policy = keras.models.load_model(session.run.path / "policy.keras")
    obs = session.eval_env.reset(seed=0)
    np.testing.assert_array_equal(policy.predict(obs, verbose=0).argmax(axis=1), agent.act(obs))
