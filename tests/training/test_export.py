"""kerasdojo export: every kind of policy (and supervised model) in every format, each file run
in its own runtime (tf.saved_model, ONNX Runtime, LiteRT) and compared with the Keras model on
observations the export never saw; eval --policy; the README's ONNX script without TensorFlow;
the bad inputs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kerasdojo import portable
from kerasdojo.cli import app
from kerasdojo.envs import make_env
from kerasdojo.training.exported import compare, export_run
from kerasdojo.training.policy_actor import keras_forward
from kerasdojo.training.session import TrainSpec, open_run, start
from tests.conftest import REPO

runner = CliRunner()
SLOW = pytest.mark.slow
FAST_PPO = {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 1}

# kind -> (env id, agent, steps, overrides): each kind of policy.keras kerasdojo writes
RL_KINDS = {
    "cartpole-ppo": ("CartPole-v1", "ppo", 256, FAST_PPO),  # vector in, logits out
    "pendulum-ppo-norm": ("Pendulum-v1", "ppo", 256, {**FAST_PPO, "normalize_obs": True}),  # norm built in, mean
    "pendulum-sac": ("Pendulum-v1", "sac", 300, {"learning_starts": 100, "batch_size": 32}),  # bounded actions out
    "frozenlake-dqn": ("FrozenLake-v1", "dqn", 300, {"learning_starts": 100, "train_freq": 16}),  # one-hot in, Q out
    "pong-ppo": ("ALE/Pong-v5", "ppo", 256, FAST_PPO),  # 4 stacked uint8 84x84 frames, Nature CNN
    "dict-ppo": ("tests.envs.spaces:DictImageEnv", "ppo", 256, FAST_PPO),  # named leaves: an image and a vector
}
SUPERVISED_KINDS = ("mnist-cnn", "digits-mlp", "xor-keras")
FAST_CASES = (("cartpole-ppo", "onnx"),)


def _train_rl(root: Path, kind: str) -> Path:
    env_id, agent, steps, overrides = RL_KINDS[kind]
    short = {"max_num_frames_per_episode": 800} if env_id.startswith("ALE/") else {}  # a short final evaluation
    spec = TrainSpec(
        env_id,
        agent,
        seed=0,
        total_steps=steps,
        eval_every=0,
        eval_episodes=1,
        save_every=0,
        overrides=overrides,
        env_kwargs=short,
    )
    session = start(spec, root / kind)
    session.train()
    return session.run.path


def _train_supervised(root: Path, kind: str) -> Path:
    from kerasdojo.supervised import digits, mnist, xor
    from tests.conftest import write_digits_folder, write_idx_folder

    if kind == "mnist-cnn":
        folder = write_idx_folder(root / "idx", 200, 100)
        cfg = mnist.MnistConfig(model="cnn", data=str(folder), epochs=1, batch_size=64)
        return mnist.run(cfg, root / kind, quiet=True)[0].path
    if kind == "digits-mlp":
        data = write_digits_folder(root / "digits", 120, 20, seed=1)
        return digits.run(digits.DigitsConfig(data=str(data), epochs=1, batch_size=32), root / kind, quiet=True)[0].path
    return xor.run(xor.XorConfig(impl="keras", epochs=20), root / kind)[0].path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Runs made on demand, once per module: kind -> run directory."""
    root = tmp_path_factory.mktemp("export-runs")

    class Runs(dict):
        def __missing__(self, kind: str) -> Path:
            self[kind] = _train_supervised(root, kind) if kind in SUPERVISED_KINDS else _train_rl(root, kind)
            return self[kind]

    return Runs()


def _cases() -> list:
    """Every kind in every format; the ONNX export of the CartPole policy outside the slow set."""
    return [
        pytest.param(kind, fmt, marks=() if (kind, fmt) in FAST_CASES else pytest.mark.slow)
        for kind in (*RL_KINDS, *SUPERVISED_KINDS)
        for fmt in portable.FORMATS
    ]


@pytest.mark.parametrize(("kind", "fmt"), _cases())
def test_export_runs_in_its_own_runtime_and_matches_the_keras_model(trained, tmp_path, kind: str, fmt: str) -> None:
    run = trained[kind]
    out = tmp_path / ("policy" + portable.SUFFIX[fmt])
    done = export_run(run, fmt, out=out)
    assert done.path == out and out.exists() and done.bytes > 0
    assert done.max_error <= 1e-4 and done.agreed == done.checked, done
    assert done.checked == (1000 if kind in RL_KINDS else done.checked) and done.checked >= 4
    assert not list(tmp_path.glob(".kerasdojo-export-*"))  # no temporary left behind
    # Independently of the export's own check: inputs it never saw, the file in its runtime.
    import keras

    source = run / ("policy.keras" if kind in RL_KINDS else "model.keras")
    model = keras.models.load_model(source)
    runtime = portable.load(out)
    specs = portable.input_specs(model)
    takes = {k: (shape[1:], np.dtype(dtype).name) for k, (shape, dtype) in runtime.inputs.items()}
    assert takes == {k: (shape[1:], dtype) for k, (shape, dtype) in specs.items()}  # names, shapes, dtypes (uint8 kept)
    rng = np.random.default_rng(7)
    inputs = {
        k: (
            rng.integers(0, 256, (200, *shape[1:])) if dtype == "uint8" else rng.uniform(-2, 2, (200, *shape[1:]))
        ).astype(dtype)
        for k, (shape, dtype) in specs.items()
    }
    want = keras_forward(model)(inputs).reshape(200, -1)
    got = portable.batched(runtime, inputs).reshape(want.shape)
    if kind in RL_KINDS:
        _, spec, _ = open_run(run)
        space = make_env(spec.env_id, env_kwargs=spec.env_kwargs).action_space
    else:
        space = "labels"
    error, agreed, _ = compare(want, got, space, 1e-4)
    assert error <= 1e-4 and agreed == 200, (error, agreed)


@pytest.mark.parametrize("fmt", [f if f == "onnx" else pytest.param(f, marks=SLOW) for f in portable.FORMATS])
def test_eval_policy_earns_the_runs_own_returns(trained, fmt: str) -> None:
    run = trained["cartpole-ppo"]
    own = runner.invoke(app, ["eval", str(run), "--episodes", "4", "--seed", "3"])
    assert own.exit_code == 0, own.output
    mean = re.search(r"mean return (\S+) ± (\S+)", own.output).groups()
    out = run / ("policy" + portable.SUFFIX[fmt])
    done = runner.invoke(app, ["export", str(run), "--format", fmt, "--force"])
    assert done.exit_code == 0, done.output
    assert "same greedy choice on 1,000 of 1,000" in done.output and str(out) in done.output
    played = runner.invoke(app, ["eval", str(run), "--policy", str(out), "--episodes", "4", "--seed", "3"])
    assert played.exit_code == 0, played.output
    assert f"({out.name} in {portable.RUNTIME[fmt]})" in played.output
    assert re.search(r"mean return (\S+) ± (\S+)", played.output).groups() == mean, (played.output, own.output)
    # sampled: the same draws from the same generator as the agent's own sampling
    sampled = ["--episodes", "4", "--seed", "5", "--stochastic"]
    own = runner.invoke(app, ["eval", str(run), *sampled])
    played = runner.invoke(app, ["eval", str(run), "--policy", str(out), *sampled])
    assert played.exit_code == 0 and "sampled actions" in played.output, played.output
    mean = re.search(r"mean return (\S+) ± (\S+)", own.output).groups()
    assert re.search(r"mean return (\S+) ± (\S+)", played.output).groups() == mean, (played.output, own.output)


def test_actions_from_outputs_follow_the_agents_rules() -> None:
    """Greedy and sampled actions from exported outputs, for every action space (pure NumPy)."""
    from gymnasium import spaces

    from kerasdojo.training.policy_actor import actions_from

    rng = np.random.default_rng(0)
    logits = np.array([[1.0, 3.0, 2.0], [5.0, 0.0, 4.0]], np.float32)
    assert actions_from(logits, spaces.Discrete(3)).tolist() == [1, 0]
    mask = np.array([[True, False, True], [False, True, True]])
    assert actions_from(logits, spaces.Discrete(3), mask).tolist() == [2, 2]
    for _ in range(50):  # sampled actions stay legal
        assert mask[[0, 1], actions_from(logits, spaces.Discrete(3), mask, rng)].all()
    parts = np.array([[0.0, 2.0, 1.0, 9.0, -1.0]], np.float32)  # MultiDiscrete([3, 2]): part argmaxes 1 and 0
    assert actions_from(parts, spaces.MultiDiscrete([3, 2])).tolist() == [[1, 0]]
    assert actions_from(np.array([[0.5, -0.5, 2.0]]), spaces.MultiBinary(3)).tolist() == [[1, 0, 1]]
    box = spaces.Box(-2.0, 2.0, (2,), np.float32)
    assert actions_from(np.array([[3.0, -0.5]], np.float32), box).tolist() == [[2.0, -0.5]]
    # a tie within the tolerance is not a difference; a clear one is
    ref = np.array([[1.0, 1.0 + 1e-6], [0.0, 1.0]], np.float32)
    got = np.array([[1.0 + 1e-6, 1.0], [1.0, 0.0]], np.float32)
    assert compare(ref, got, spaces.Discrete(2), 1e-4)[1:] == (1, 1)


def _one_line_error(result, *phrases: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for phrase in phrases:
        assert phrase in result.output, result.output


def test_bad_inputs_are_one_line_errors(trained, tmp_path) -> None:
    run = trained["cartpole-ppo"]
    (run / "policy.onnx").unlink(missing_ok=True)
    assert runner.invoke(app, ["export", str(run), "-f", "onnx"]).exit_code == 0
    _one_line_error(runner.invoke(app, ["export", str(run), "-f", "onnx"]), "policy.onnx exists", "--force")
    _one_line_error(runner.invoke(app, ["export", str(run), "-f", "tflite"]), "tflite")
    _one_line_error(runner.invoke(app, ["export", str(run), "-f", "onnx", "--out", str(tmp_path / "p.bin")]), ".onnx")
    _one_line_error(runner.invoke(app, ["export", str(tmp_path), "-f", "onnx"]), "config.json")
    _one_line_error(runner.invoke(app, ["eval", str(run), "--policy", str(tmp_path / "none.onnx")]), "none.onnx")
    _one_line_error(runner.invoke(app, ["eval", str(run), "--policy", __file__]), "not an exported policy")
    _one_line_error(runner.invoke(app, ["eval", str(run), "--best", "--policy", str(run / "policy.onnx")]), "--best")


@pytest.mark.slow
def test_runs_without_a_policy_and_policies_of_other_envs_are_refused(trained, tmp_path, runs_dir) -> None:
    run = trained["cartpole-ppo"]
    start(TrainSpec("CartPole-v1", "random", total_steps=50, eval_every=0, save_every=0), runs_dir).train()
    random_run = next(runs_dir.iterdir())
    _one_line_error(runner.invoke(app, ["export", str(random_run), "-f", "onnx"]), "random agent", "no policy")
    # a policy exported from another env's run
    other_runs = tmp_path / "other"
    spec = TrainSpec("Pendulum-v1", "ppo", total_steps=128, eval_every=0, save_every=0, overrides=FAST_PPO)
    start(spec, other_runs).train()
    other_onnx = tmp_path / "other.onnx"
    export_run(next(other_runs.iterdir()), "onnx", out=other_onnx)
    _one_line_error(runner.invoke(app, ["eval", str(run), "--policy", str(other_onnx)]), "not exported from this run")


def test_a_mismatch_leaves_no_file(trained, tmp_path, monkeypatch) -> None:
    """An export that does not compute what policy.keras computes is refused and deleted."""
    run = trained["cartpole-ppo"]
    real = portable.OnnxRuntime._run
    monkeypatch.setattr(portable.OnnxRuntime, "_run", lambda self, feed: real(self, feed) + 1e-3)
    out = tmp_path / "bad.onnx"
    result = runner.invoke(app, ["export", str(run), "-f", "onnx", "--out", str(out)])
    _one_line_error(result, "does not compute what it computes", "nothing was written")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_nan_export_is_refused_too(trained, tmp_path, monkeypatch) -> None:
    run = trained["cartpole-ppo"]
    real = portable.OnnxRuntime._run
    monkeypatch.setattr(portable.OnnxRuntime, "_run", lambda self, feed: real(self, feed) * np.nan)
    result = runner.invoke(app, ["export", str(run), "-f", "onnx", "--out", str(tmp_path / "nan.onnx")])
    _one_line_error(result, "does not compute what it computes")
    assert not list(tmp_path.iterdir())


def test_force_never_replaces_the_run_or_a_folder_that_is_not_a_savedmodel(trained, tmp_path) -> None:
    run = trained["cartpole-ppo"]
    for out in (run, run.parent, run / "policy.keras"):
        result = runner.invoke(app, ["export", str(run), "-f", "saved_model", "--out", str(out), "--force"])
        _one_line_error(result, "not replacing it")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["export", str(run), "-f", "saved_model", "--out", str(folder), "--force"])
    _one_line_error(result, "not a SavedModel")
    assert (folder / "notes.txt").read_text() == "keep me" and (run / "policy.keras").is_file()
    # a SavedModel is replaced by the new one, whole
    model = tmp_path / "sm"
    assert runner.invoke(app, ["export", str(run), "-f", "saved_model", "--out", str(model)]).exit_code == 0
    (model / "stale.txt").write_text("old")
    assert runner.invoke(app, ["export", str(run), "-f", "saved_model", "--out", str(model), "--force"]).exit_code == 0
    assert (model / "saved_model.pb").is_file() and not (model / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "sm"]


def test_eval_policy_refuses_a_policy_of_other_actions(trained, tmp_path) -> None:
    """Same observations, a different number of actions: one line, not a crash or wrong actions."""
    import keras

    run = trained["cartpole-ppo"]
    inputs = keras.Input((4,))
    other = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    portable.write(other, "onnx", tmp_path / "three.onnx")
    result = runner.invoke(app, ["eval", str(run), "--policy", str(tmp_path / "three.onnx")])
    _one_line_error(result, "3 outputs per observation", "needs 2")


def test_missing_runtime_names_the_extra(trained, monkeypatch) -> None:
    import importlib.util

    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else find(name, *a))
    result = runner.invoke(app, ["export", str(trained["cartpole-ppo"]), "-f", "onnx", "--force"])
    _one_line_error(result, "onnxruntime", "kerasdojo[export]")


@pytest.mark.slow
def test_supervised_bad_inputs(trained, tmp_path) -> None:
    from kerasdojo.supervised import xor

    numpy_run = xor.run(xor.XorConfig(impl="numpy", epochs=5), tmp_path)[0].path
    _one_line_error(runner.invoke(app, ["export", str(numpy_run), "-f", "onnx"]), "NumPy XOR run", "--impl keras")
    _one_line_error(runner.invoke(app, ["export", str(trained["xor-keras"]), "-f", "onnx", "--best"]), "--best")


def _readme_script() -> str:
    text = (REPO / "README.md").read_text()
    return re.search(r"<!-- onnx-script -->\s*```python\n(.*?)```", text, re.S).group(1)


@pytest.mark.slow
def test_readme_onnx_script_plays_cartpole_to_500_without_tensorflow(tmp_path) -> None:
    """The README's ten lines: onnxruntime, numpy and gymnasium alone play the exported policy
    of a native PPO CartPole run (its best agent) to 500; tensorflow is never imported."""
    session = start(TrainSpec("CartPole-v1", "ppo", seed=0, eval_every=5000, eval_episodes=20, native=True), tmp_path)
    session.train()
    run = session.run.path
    exported = runner.invoke(app, ["export", str(run), "-f", "onnx", "--best", "--out", str(tmp_path / "policy.onnx")])
    assert exported.exit_code == 0, exported.output
    guard = (
        "import sys, runpy\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'keras', 'kerasdojo'):\n"
        "            raise ImportError(f'{name} imported')\n"
        "sys.meta_path.insert(0, Block())\n"
        "runpy.run_path('play.py', run_name='__main__')\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
        "print('no tensorflow')\n"
    )
    (tmp_path / "play.py").write_text(_readme_script())
    done = subprocess.run([sys.executable, "-c", guard], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert float(lines[-3]) == 500.0 and lines[-2:] == ["no", "tensorflow"], done.stdout
