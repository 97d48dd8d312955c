"""Faults a user meets: a training process killed outright, checkpoints cut short on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kerasdojo.cli import app
from kerasdojo.runs import CHECKPOINT_RE, STEP_KEY, read_progress

runner = CliRunner()
TOTAL = 16_384
FAST = ["--set", "n_steps=64", "--set", "n_epochs=2", "--n-envs", "4", "--eval-episodes", "2", "-q"]


def _checkpoint_steps(runs_dir: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in runs_dir.glob("*/checkpoints/*") if (m := CHECKPOINT_RE.match(p.name)))


def _kill_when(proc: subprocess.Popen, runs_dir: Path, reached: int, extra_delay: float) -> None:
    """SIGKILL ``proc`` once a checkpoint at ``reached`` steps or more exists (plus a delay, so
    the kill lands at another point of an iteration), or fail if it ends first."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended before the kill: rc={proc.returncode}"
        steps = _checkpoint_steps(runs_dir)
        if steps and steps[-1] >= reached:
            time.sleep(extra_delay)
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_sigkill_at_three_points_then_resume_finishes_the_run(tmp_path) -> None:
    runs_dir = tmp_path / "runs"
    cli = [sys.executable, "-m", "kerasdojo"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    common = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    train = [*cli, "train", "CartPole-v1", "--steps", str(TOTAL), "--runs-dir", str(runs_dir)]
    train += ["--save-every", "1024", "--eval-every", "2048", *FAST]
    _kill_when(subprocess.Popen(train, **common), runs_dir, 2048, 0.0)  # just after a checkpoint
    (run,) = runs_dir.iterdir()
    for reached, delay in ((6144, 0.03), (11264, 0.11)):  # later, and within an iteration
        _kill_when(subprocess.Popen([*cli, "resume", str(run), "-q"], **common), runs_dir, reached, delay)
    done = subprocess.run([*cli, "resume", str(run), "-q"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    assert json.loads((run / "eval.json").read_text())["step"] == TOTAL
    steps = [int(r[STEP_KEY]) for r in read_progress(run / "progress.csv")]
    assert steps[-1] == TOTAL and all(b > a for a, b in zip(steps, steps[1:], strict=False)), steps
    leftovers = [p for p in run.rglob("*") if ".tmp-" in p.name]
    assert not leftovers, leftovers
    assert {"agent.npz", "policy.keras", "best_agent.npz"} <= {p.name for p in run.iterdir()}


def _finished_run(runs_dir: Path) -> Path:
    args = ["train", "CartPole-v1", "--steps", "1024", "--save-every", "256", "--eval-every", "512"]
    result = runner.invoke(app, [*args, "--runs-dir", str(runs_dir), *FAST])
    assert result.exit_code == 0, result.output
    return next(runs_dir.iterdir())


def test_resume_falls_back_past_a_checkpoint_cut_short(runs_dir) -> None:
    run = _finished_run(runs_dir)
    ckpts = sorted((run / "checkpoints").iterdir())
    assert [p.name for p in ckpts] == ["step_000000000768.npz", "step_000000001024.npz"]
    ckpts[-1].write_bytes(ckpts[-1].read_bytes()[: ckpts[-1].stat().st_size // 2])  # truncated
    result = runner.invoke(app, ["resume", str(run), "--steps", "2048", "-q"])
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if line.startswith("Warning:")]
    assert len(warning) == 1 and "step_000000001024.npz" in warning[0] and "step_000000000768.npz" in warning[0]
    assert "resuming ppo on CartPole-v1 (seed 0) at step 768" in result.output
    assert json.loads((run / "eval.json").read_text())["step"] == 2048
    assert (run / "checkpoints" / "step_000000001024.npz.damaged").exists()  # set aside, not deleted


def test_resume_with_no_good_checkpoint_is_one_line(runs_dir) -> None:
    run = _finished_run(runs_dir)
    for ckpt in (run / "checkpoints").iterdir():
        ckpt.write_bytes(b"")  # zero bytes
    result = runner.invoke(app, ["resume", str(run), "--steps", "2048"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Checkpoint") and "corrupt" in lines[0]
