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
@pytest.mark.slow
@pytest.mark.parametrize("agent", ["ppo", "dqn"])
def test_pong_trains_resumes_and_saves_a_uint8_frame_policy(runs_dir, agent: str, monkeypatch) -> None:
    import keras

    common = ["--eval-every", "0", "--eval-episodes", "1", "--save-every", "512", "--runs-dir", str(runs_dir)]
    first = runner.invoke(app, ["train", "ALE/Pong-v5", "--agent", agent, "--steps", "1024", *common, *SMALL[agent]])
    assert first.exit_code == 0, first.output
    from kerasdojo.backend import native_bfloat16

    # precision=auto: bfloat16 math for the Nature CNN where the machine does it natively, said at start
    assert ("CNN updates in mixed_bfloat16" in first.output) == native_bfloat16()[0]
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
    assert config["precision"] == "auto"  # as asked; what auto picked on this machine is in eval.json
    assert eval_json["precision"] == ("mixed_bfloat16" if native_bfloat16()[0] else "float32")
    assert "Final evaluation over 1 episodes (sampled actions)" in resumed.output
    policy = keras.models.load_model(run / "policy.keras")
    assert policy.inputs[0].dtype == "uint8" and tuple(policy.input_shape) == (None, 4, 84, 84)
    frames = np.random.default_rng(0).integers(0, 256, (3, 4, 84, 84), dtype=np.uint8)
    assert policy.predict(frames, verbose=0).shape == (3, 6)
    if agent == "dqn":
        # Evaluating builds no replay buffer, even from a checkpoint that holds one (2,000
        # stacks, 54 MiB): the memory check would refuse it with 16 MiB available.
        from kerasdojo.agents import buffers

        monkeypatch.setattr(buffers, "available_memory", lambda: 16 * 2**20)
        (run / "agent.npz").unlink()
        out = runner.invoke(app, ["eval", str(run), "--episodes", "1"])
        assert out.exit_code == 0 and "(checkpoint at step" in out.output, out.output


@ale
@pytest.mark.slow
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


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_pixel_env_uses_a_shared_cnn_and_a_uint8_policy(runs_dir, precision: str) -> None:
    from kerasdojo.training.session import TrainSpec, open_run, start

    spec = TrainSpec(
        "tests.envs.pixels:ReachSquare",
        "ppo",
        total_steps=256,
        eval_every=0,
        eval_episodes=2,
        save_every=0,
        overrides={"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 1, "precision": precision},
    )
    session = start(spec, runs_dir)
    agent = session.agent
    names = [layer.name for layer in agent.joint.layers]
    assert names[:3] == ["obs", "channels_last", "scale"] and "conv_0" in names
    # one torso: the policy's and the value's conv kernels are the same variables
    assert agent.pi.get_layer("conv_0") is agent.vf.get_layer("conv_0")
    assert len(agent.train_vars) == len({id(v) for v in agent.train_vars})
    conv = agent.joint.get_layer("conv_0")
    assert conv.dtype_policy.name == precision and conv.kernel.dtype == "float32"  # float32 weights either way
    assert agent.joint.get_layer("logits").compute_dtype == "float32"  # the heads stay float32
    assert any("mixed_bfloat16" in note for note in agent.notes) == (precision == "mixed_bfloat16")
    session.train()
    import keras

    policy = keras.models.load_model(session.run.path / "policy.keras")
    assert {layer.compute_dtype for layer in policy.layers[1:]} == {"float32"}  # saved in float32 math
    assert open_run(session.run.path)[2].precision == precision  # resume and eval keep the math
    config_file = session.run.path / "config.json"
    stored = json.loads(config_file.read_text())
    del stored["config"]["precision"]
    config_file.write_text(json.dumps(stored))
    assert open_run(session.run.path)[2].precision == "float32"  # a run from before the setting
    obs = session.eval_env.reset(seed=0)
    logits = policy.predict(obs, verbose=0)
    if precision == "float32":
        np.testing.assert_array_equal(logits.argmax(axis=1), agent.act(obs))
    else:  # the same weights; bfloat16 math is off by ~2^-8 of a value
        np.testing.assert_allclose(logits, agent.forward(obs)[0], atol=0.02 * np.abs(logits).max() + 1e-4)


def test_dqn_on_frames_acts_with_a_float32_twin_of_its_bfloat16_network(runs_dir) -> None:
    from kerasdojo.training.session import TrainSpec, start

    spec = TrainSpec(
        "tests.envs.pixels:ReachSquare",
        "dqn",
        total_steps=300,
        eval_every=0,
        eval_episodes=1,
        save_every=0,
        overrides={"learning_starts": 100, "buffer_size": 500, "precision": "mixed_bfloat16", "train_freq": 4},
    )
    session = start(spec, runs_dir)
    agent = session.agent
    assert agent.q.get_layer("conv_0").dtype_policy.name == "mixed_bfloat16"
    assert agent.q_target.get_layer("conv_0").dtype_policy.name == "mixed_bfloat16"
    before = agent.q.get_layer("q_values").kernel.numpy().copy()
    session.train()
    after = agent.q.get_layer("q_values").kernel.numpy()
    assert not np.allclose(before, after)  # it learned something
    (twin,) = agent.forward.models  # acting follows the trained weights
    assert {layer.compute_dtype for layer in twin.layers} == {"float32"}
    np.testing.assert_array_equal(twin.get_layer("q_values").kernel.numpy(), after)
    obs = session.eval_env.reset(seed=0)
    q = agent.q.predict(obs, verbose=0)
    np.testing.assert_allclose(agent.forward(obs)[0], q, atol=0.02 * np.abs(q).max() + 1e-4)


def test_sampled_evaluation_uses_its_own_seeded_generator() -> None:
    """Sampled (Atari) evaluations draw from a generator seeded by the evaluation seed, so they
    neither move the agent's own generator (the training run) nor depend on it."""
    from kerasdojo.envs import make_vec
    from kerasdojo.training.evaluation import evaluate
    from tests.envs.pixels import ReachSquare  # noqa: F401

    class Sampler:
        def __init__(self) -> None:
            self.rng = np.random.default_rng(0)

        def act(self, obs, deterministic):
            return self.rng.integers(0, 4, len(obs))

    env = make_vec("tests.envs.pixels:ReachSquare", 2, seed=0)
    agent = Sampler()
    before = agent.rng.bit_generator.state
    first = evaluate(agent, env, 6, seed=7, deterministic=False)
    assert agent.rng.bit_generator.state == before  # the training generator did not move
    agent.rng.random(1000)  # wherever training stands, the same evaluation
    assert evaluate(agent, env, 6, seed=7, deterministic=False) == first
    env.close()


def test_dqn_overlapped_updates_run_in_a_thread_and_stay_reproducible(tmp_path) -> None:
    """``overlap_update``: the gradient steps run in their own thread while the env steps, acting
    with a float32 twin whose weights the running update leaves alone; two runs with one seed
    end with the same weights, and the twin has the final ones."""
    import threading

    from kerasdojo.training.session import TrainSpec, start

    def run(where: str) -> tuple[np.ndarray, list[str], object]:
        spec = TrainSpec(
            "tests.envs.pixels:ReachSquare",
            "dqn",
            total_steps=400,
            eval_every=0,
            eval_episodes=1,
            save_every=0,
            overrides={"learning_starts": 100, "buffer_size": 500, "precision": "float32", "overlap_update": True},
        )
        session = start(spec, tmp_path / where)
        agent = session.agent
        threads: list[str] = []
        train = agent._train

        def recorded(*batch):
            threads.append(threading.current_thread().name)
            return train(*batch)

        agent._train = recorded
        session.train()
        (twin,) = agent.forward.models
        assert twin is not agent.q
        np.testing.assert_array_equal(twin.get_layer("q_values").kernel.numpy(), agent.q.get_layer("q_values").kernel)
        return agent.q.get_layer("q_values").kernel.numpy(), threads, agent

    first, threads, agent = run("a")
    assert len(threads) == 75 and all(name.startswith("dqn-update") for name in threads)  # (400 - 100) / 4
    assert agent.n_updates == 75
    second, _, _ = run("b")
    np.testing.assert_array_equal(first, second)
