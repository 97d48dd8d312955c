from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from kerasdojo import __version__
from kerasdojo.cli import app

runner = CliRunner()


def test_help_does_not_import_heavy_packages() -> None:
    code = (
        "import sys\n"
        "from kerasdojo.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED', [m for m in ('tensorflow', 'keras', 'gymnasium') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "LOADED []" in out
    assert "train" in out and "supervised" in out


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_commands(flag) -> None:
    result = runner.invoke(app, [flag])
    assert result.exit_code == 0
    for command in ("info", "tensorboard", "envs", "agents", "train", "eval", "resume", "supervised"):
        assert command in result.output


def test_no_args_shows_help_and_subcommand_help() -> None:
    assert "Usage" in runner.invoke(app, []).output
    result = runner.invoke(app, ["supervised", "-h"])
    assert result.exit_code == 0
    for command in ("xor", "mnist", "digits", "show", "predict"):
        assert command in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"kerasdojo {__version__}"


def test_info_lists_versions_and_devices() -> None:
    import tensorflow as tf

    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert tf.__version__ in result.output
    for word in ("Keras", "Gymnasium", "NumPy", "CPU"):
        assert word in result.output
    from kerasdojo.backend import native_bfloat16

    native, why = native_bfloat16()
    assert f"bfloat16: {why}, so Nature-CNN updates run in {'mixed_bfloat16' if native else 'float32'}" in result.output


def test_agents_lists_action_spaces() -> None:
    result = runner.invoke(app, ["agents"])
    assert result.exit_code == 0
    assert "ppo" in result.output and "dqn" in result.output and "random" in result.output
    assert "Discrete, Box" in result.output


def test_agents_name_lists_every_hyperparameter_with_preset() -> None:
    from kerasdojo.agents.ppo import PPOConfig

    result = runner.invoke(app, ["agents", "ppo", "--env", "CartPole-v1"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    keys = {line.split("│")[1].strip() for line in lines if line.count("│") > 2}
    assert {field.name for field in dataclasses.fields(PPOConfig)} <= keys
    row = next(line for line in lines if "│ n_steps " in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[:4] == ["n_steps", "int", "512", "32"]  # key, type, default, the CartPole-v1 preset
    assert cells[4].startswith("Steps per env in each rollout") and "Range: >= 1." in cells[4]
    net = [c.strip() for c in next(line for line in lines if "│ net_arch " in line).split("│")[1:-1]]
    assert net[:3] == ["net_arch", "int list", "64,64"]
    activation = next(line for line in lines if "│ activation " in line)
    assert "One of: relu, tanh" in activation
    no_preset = runner.invoke(app, ["agents", "dqn", "--env", "Pendulum-v1"], env={"COLUMNS": "250"})
    assert no_preset.exit_code == 0 and "No dqn preset for Pendulum-v1" in no_preset.output
    assert runner.invoke(app, ["agents", "nope"]).exit_code == 2


def test_envs_list_describe_and_unknown() -> None:
    listing = runner.invoke(app, ["envs", "Cart"])
    assert listing.exit_code == 0 and "CartPole-v1" in listing.output and "classic_control" in listing.output
    described = runner.invoke(app, ["envs", "CartPole-v1"])
    assert described.exit_code == 0
    assert "Discrete(2)" in described.output and "Box(4,)" in described.output and "475" in described.output
    assert "kerasdojo agents" in described.output and "ppo, ppo_lstm, dqn, a2c, random" in described.output
    assert runner.invoke(app, ["envs", "zzzz"]).exit_code == 2


def test_tensorboard_starts_server_and_prints_url(monkeypatch, tmp_path) -> None:
    from kerasdojo import tensorboard

    launched = {}

    class FakeProcess:
        def __init__(self, args):
            launched["args"] = args

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(tensorboard.subprocess, "Popen", FakeProcess)
    result = runner.invoke(app, ["tensorboard", "--logdir", str(tmp_path), "--port", "16006"])
    assert result.exit_code == 0, result.output
    assert "http://localhost:16006/" in result.output
    assert launched["args"][1:4] == ["-m", "tensorboard.main", "--logdir"] and str(tmp_path) in launched["args"]


def test_tensorboard_busy_port_is_one_line(tmp_path) -> None:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = runner.invoke(app, ["tensorboard", "--logdir", str(tmp_path), "--port", str(port)])
    assert result.exit_code == 2 and f"Port {port}" in result.output and f"--port {port + 1}" in result.output


def test_debug_env_shows_traceback(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("KERASDOJO_DEBUG", "1")
    result = runner.invoke(app, ["eval", str(tmp_path)])
    assert result.exit_code == 2 and "Error:" in result.output
    assert "Traceback" in result.output


def test_installed_command_end_to_end(tmp_path) -> None:
    """The one subprocess test of the installed console script."""
    exe = shutil.which("kerasdojo") or pytest.skip("the kerasdojo command is not installed")
    done = subprocess.run(
        [exe, "supervised", "xor", "--impl", "numpy", "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "4/4 correct" in done.stdout
    bad = subprocess.run(
        [exe, "train", "NoSuchEnv-v0", "--runs-dir", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("Error: Unknown environment id 'NoSuchEnv-v0'")
    assert len(bad.stderr.strip().splitlines()) == 1
