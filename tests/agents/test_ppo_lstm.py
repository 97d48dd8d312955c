"""Recurrent PPO: the LSTM's three implementations agree, memory resets exactly at episode starts,
the update replays the rollout's log-probabilities, policy.keras runs in plain Keras, and every
kind of space and the run's whole life (evaluation, video, resume) work."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kerasdojo import envs
from kerasdojo.agents import recurrent
from kerasdojo.cli import app
from kerasdojo.files import load_arrays
from kerasdojo.training.checkpoint import load_agent_state
from kerasdojo.training.session import evaluate_run, open_run
from kerasdojo.training.spec import build_agent

runner = CliRunner()
README = Path(__file__).resolve().parents[2] / "README.md"
SMALL = ["--set", "lstm_hidden_size=16", "--set", "n_steps=32", "--set", "batch_size=64", "--set", "n_epochs=2"]


def small_agent(env_id: str = "CartPoleNoVel-v1", n_envs: int = 3, **overrides):
    from kerasdojo.agents.ppo_lstm import PPOLSTM, PPOLSTMConfig

    cfg = PPOLSTMConfig(**{"n_envs": n_envs, "n_steps": 32, "lstm_hidden_size": 16, "n_epochs": 2, **overrides})
    env = envs.make_vec(env_id, n_envs, seed=1)
    return PPOLSTM(cfg, env.obs_spec, env.single_action_space, seed=0), env


def test_the_lstm_in_numpy_in_compiled_code_and_keras_cells_agree() -> None:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    cells = recurrent.lstm_cells(2, 16, 5, "t_")
    x = rng.normal(size=(7, 3, 5)).astype(np.float32)
    starts = np.zeros((7, 3), np.float32)
    starts[[2, 5], [0, 1]] = 1.0
    state = rng.normal(size=(3, 4, 16)).astype(np.float32)
    (out,), (final,) = recurrent.tf_sequence([cells], tf.constant(x), tf.constant(starts), [tf.constant(state)])

    numpy_lstm, s_np, s_keras = recurrent.NumpyLSTM(cells), state.copy(), state.copy()
    for t in range(7):
        keep = (1.0 - starts[t])[:, None, None]
        h_np, s_np = numpy_lstm(x[t], s_np * keep)
        s_keras = s_keras * keep
        h, rows = x[t], []
        for i, cell in enumerate(cells):  # Keras's own LSTMCell, layer by layer
            h, (hh, cc) = cell(h, [s_keras[:, 2 * i], s_keras[:, 2 * i + 1]])
            rows += [np.asarray(hh), np.asarray(cc)]
        s_keras = np.stack(rows, axis=1)
        np.testing.assert_allclose(h_np, out[t].numpy(), atol=1e-5)
        np.testing.assert_allclose(np.asarray(h), h_np, atol=1e-5)
    np.testing.assert_allclose(final.numpy(), s_np, atol=1e-5)
    np.testing.assert_allclose(s_keras, s_np, atol=1e-5)


def test_the_written_out_gradient_equals_automatic_differentiation_of_keras_cells() -> None:
    import tensorflow as tf

    rng = np.random.default_rng(1)
    cells = recurrent.lstm_cells(2, 16, 5, "g_")
    x = tf.constant(rng.normal(size=(7, 3, 5)).astype(np.float32))
    starts = np.zeros((7, 3), np.float32)
    starts[[2, 5], [0, 1]] = 1.0
    starts = tf.constant(starts)
    state = tf.constant(rng.normal(size=(3, 4, 16)).astype(np.float32))
    w_out = tf.constant(rng.normal(size=(7, 3, 16)).astype(np.float32))
    w_final = tf.constant(rng.normal(size=(3, 4, 16)).astype(np.float32))

    def written() -> tf.Tensor:
        (out,), (final,) = recurrent.tf_sequence([cells], x, starts, [state])
        return tf.reduce_sum(out * w_out) + tf.reduce_sum(final * w_final)

    def automatic() -> tf.Tensor:
        keep, xs, finals = 1.0 - starts[:, :, None], x, []
        for i, cell in enumerate(cells):
            h, c, outs = state[:, 2 * i], state[:, 2 * i + 1], []
            for t in range(7):
                h, (h, c) = cell(xs[t], [h * keep[t], c * keep[t]])
                outs.append(h)
            xs, finals = tf.stack(outs), finals + [h, c]
        return tf.reduce_sum(xs * w_out) + tf.reduce_sum(tf.stack(finals, 1) * w_final)

    weights = [w.value for cell in cells for w in (cell.kernel, cell.recurrent_kernel, cell.bias)]
    grads = []
    for loss in (written, automatic):
        with tf.GradientTape() as tape:
            tape.watch([x, state])
            value = loss()
        grads.append([value, *tape.gradient(value, [x, state, *weights])])
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)


def test_memory_resets_exactly_at_episode_starts_and_carries_over_rollouts() -> None:
    agent, env = small_agent()
    agent.begin(env)
    buf = dict(agent.collect(env)[0])
    first = {k: np.copy(v) for k, v in buf.items() if k in ("starts", "states", "valid")}
    second = agent.collect(env)[0]
    starts = np.concatenate([first["starts"], second["starts"]])
    states = np.concatenate([first["states"], second["states"]])
    valid = np.concatenate([first["valid"], second["valid"]])
    assert starts[0].all()  # the first observation of every env
    # With next-step autoreset, the call after an episode's end is a reset (invalid) and the
    # observation it returns is the next episode's first: memory is zeroed exactly there.
    np.testing.assert_array_equal(starts[1:], ~valid[:-1])
    assert starts[1:].sum() >= 3  # random CartPole episodes end within 64 steps
    zero = ~states.reshape(len(states), 3, -1).any(axis=2)
    np.testing.assert_array_equal(zero, starts)


def test_sequences_replay_the_rollout_log_probabilities_before_any_gradient_step() -> None:
    import tensorflow as tf

    agent, env = small_agent(seq_len=8)  # sequences that start mid-episode, from stored states
    agent.begin(env)
    agent.collect(env)  # a second rollout starts from carried memory
    buf = agent.collect(env)[0]
    assert not buf["starts"][::8].all() and buf["starts"][1:].any()
    seq = lambda x: recurrent.to_sequences(tf.constant(x), 8)  # noqa: E731
    first = tf.reshape(buf["states"][::8], [-1, *buf["states"].shape[2:]])  # as learn and the update take them
    out, value, _ = agent.sequence(seq(buf["obs"]), seq(buf["starts"].astype(np.float32)), first, training=False)
    actions = tf.reshape(seq(buf["actions"]), [-1])
    logp, _ = agent.log_prob_entropy(out, actions)
    np.testing.assert_allclose(logp.numpy(), tf.reshape(seq(buf["log_probs"]), [-1]).numpy(), atol=1e-5)
    np.testing.assert_allclose(value.numpy(), tf.reshape(seq(buf["values"]), [-1]).numpy(), atol=1e-5)


def train(runs_dir, env: str, steps: int, *extra: str):
    args = ["train", env, "--agent", "ppo_lstm", "--steps", str(steps), "--runs-dir", str(runs_dir)]
    args += ["--eval-every", str(steps // 2), "--eval-episodes", "2", "--save-every", str(steps // 2), "-q"]
    result = runner.invoke(app, [*args, *SMALL, "--n-envs", "2", *extra])
    assert result.exit_code == 0, result.output
    return max(runs_dir.iterdir(), key=lambda p: p.stat().st_mtime)


@pytest.mark.slow  # 22 s: a run, its video, a resume and a Keras reload
def test_a_run_evaluates_records_resumes_and_its_policy_runs_in_plain_keras(runs_dir, tmp_path) -> None:
    import keras

    run = train(runs_dir, "CartPoleNoVel-v1", 256, "--video", "--set", "normalize_obs=false")  # raw obs compared
    assert {"policy.keras", "agent.npz", "eval.json", "checkpoints"} <= {p.name for p in run.iterdir()}
    assert list(run.glob("videos/*.gif"))
    assert json.loads((run / "eval.json").read_text())["episodes"] == 2
    assert evaluate_run(run, episodes=3).result.episodes == 3

    # The README's loop: policy.keras alone, the state carried by hand, zeros at the start.
    policy = keras.models.load_model(run / "policy.keras")
    assert [t.name for t in policy.inputs] == ["obs", "lstm_state"]
    agent = build_agent("ppo_lstm", open_run(run)[2], envs.make_vec("CartPoleNoVel-v1", 1, seed=0), 0)
    load_agent_state(agent, *load_arrays(run / "agent.npz"))
    env = envs.make_env("CartPoleNoVel-v1")
    obs, _ = env.reset(seed=4)
    state = np.zeros((1, *policy.inputs[1].shape[1:]), "float32")
    memory, start = agent.initial_state(1), np.ones(1, bool)
    for _ in range(60):
        logits, state = policy.predict_on_batch([obs[None], state])
        action, memory = agent.act_recurrent(obs[None], memory, start, deterministic=True)
        assert int(np.argmax(logits[0])) == int(action[0])
        np.testing.assert_allclose(np.asarray(state), memory[:, : state.shape[1]], atol=1e-5)
        obs, _, terminated, truncated, _ = env.step(int(action[0]))
        start[:] = False
        if terminated or truncated:
            break

    # The README's script, as written there, on this run's policy.
    script = re.search(r"<!-- lstm-script -->\s*```python\n(.*?)```", README.read_text(), re.S).group(1)
    script = re.sub(r'"runs/[^"]*/policy.keras"', repr(str(run / "policy.keras")), script)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split()[-1]) >= 1.0

    result = runner.invoke(app, ["export", str(run), "-f", "onnx"])
    assert result.exit_code == 2 and "recurrent policy" in result.output

    result = runner.invoke(app, ["resume", str(run), "--steps", "384", "-q"])
    assert result.exit_code == 0, result.output
    assert load_arrays(sorted((run / "checkpoints").iterdir())[-1])[1]["step"] >= 384


@pytest.mark.parametrize(
    "env,extra",
    [
        ("PendulumNoVel-v1", ["--set", "normalize_obs=true", "--set", "n_lstm_layers=2"]),  # Box actions
        ("tests.envs.spaces:DictImageEnv", ["--set", "shared_lstm=true"]),  # Dict obs with an image leaf
        ("tests.envs.spaces:MaskedEnv", ["--set", "enable_critic_lstm=false", "--set", "seq_len=8"]),
        ("tests.envs.spaces:MultiDiscreteEnv", []),
    ],
)
def test_spaces_and_lstm_layouts(runs_dir, env: str, extra: list[str]) -> None:
    import keras

    run = train(runs_dir, env, 128, *extra)
    policy = keras.models.load_model(run / "policy.keras")
    assert "lstm_state" in [t.name for t in policy.inputs]
    assert np.isfinite(json.loads((run / "eval.json").read_text())["mean_reward"])


def test_bad_sequence_length_is_one_line() -> None:
    result = runner.invoke(app, ["train", "CartPoleNoVel-v1", "--agent", "ppo_lstm", "--set", "seq_len=5", "-q"])
    assert result.exit_code == 2
    assert "seq_len=5 does not divide n_steps=32" in result.output


@pytest.mark.slow
def test_memory_solves_cartpole_without_velocities_where_ppo_cannot(runs_dir) -> None:
    """RL Zoo's preset (100,000 steps); plain PPO with its own preset and the same budget."""
    results = {}
    for agent in ("ppo_lstm", "ppo"):
        args = ["train", "CartPoleNoVel-v1", "--agent", agent, "--runs-dir", str(runs_dir / agent), "-q"]
        args += ["--steps", "100000", "--eval-episodes", "10", "--seed", "0"]
        if agent == "ppo":  # the full task's preset
            args += ["--config", str(_ppo_cartpole_preset(runs_dir))]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        run = next((runs_dir / agent).iterdir())
        results[agent] = json.loads((run / "eval.json").read_text())["mean_reward"]
    assert results["ppo_lstm"] >= 450, results
    assert results["ppo"] <= 200, results


def _ppo_cartpole_preset(runs_dir):
    from kerasdojo.agents.presets import preset

    path = runs_dir / "ppo_cartpole.toml"
    runs_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"{k} = {json.dumps(v)}" for k, v in preset("ppo", "CartPole-v1").items()]
    path.write_text("\n".join(lines) + "\n")
    return path
