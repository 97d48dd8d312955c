"""A success rate for every run whose env reports ``info["is_success"]`` at episode ends:
rollout/success_rate and eval/success_rate in TensorBoard and progress.csv, eval.json, resume,
kerasdojo eval, the bench summary and kerasdojo plot --metric; nothing for envs that never report."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
from typer.testing import CliRunner

from kerasdojo import envs
from kerasdojo.cli import app
from kerasdojo.runs import read_progress
from kerasdojo.training.evaluation import EvalResult, evaluate
from kerasdojo.training.session import TrainSpec, start

ENV = "tests.envs.goals:SuccessEnv"
runner = CliRunner()


class Fixed:
    """Always the same action; or the right one (``cheat``) from the cue's sign."""

    def __init__(self, action: int | None) -> None:
        self.action = action

    def act(self, obs, deterministic=True):
        if self.action is None:
            return (obs[:, 0] > 0).astype(np.int64)
        return np.full(len(obs), self.action, np.int64)


def test_success_is_read_where_episodes_end_and_evaluated() -> None:
    env = envs.make_vec(ENV, 3, seed=0)
    try:
        assert "rollout/success_rate" not in env.stats()  # no episode has ended yet
        returns, lengths, successes = evaluate(Fixed(None), env, 6, seed=1)
        assert returns == [5.0] * 6 and successes == [True] * 6  # the final step's value, not the first's False
        assert env.stats()["rollout/success_rate"] == 1.0
        returns, _, successes = evaluate(Fixed(0), env, 30, seed=1)
        # always 0: success exactly where at least 3 of 5 cues were negative
        assert [r >= 3 for r in returns] == successes and 0 < sum(successes) < 30
        result = EvalResult.of(returns, lengths, successes)
        assert result.scalars()["eval/success_rate"] == pytest.approx(np.mean(successes))
        assert result.stored()["success_rate"] == result.success_rate
    finally:
        env.close()
    cartpole = envs.make_vec("CartPole-v1", 2, seed=0)
    try:
        returns, lengths, successes = evaluate(Fixed(0), cartpole, 2, seed=0)
        assert successes == [] and "rollout/success_rate" not in cartpole.stats()
        plain = EvalResult.of(returns, lengths, successes)
        assert plain.success_rate is None and "eval/success_rate" not in plain.scalars()
        assert "success_rate" not in plain.stored()
    finally:
        cartpole.close()


def test_a_run_logs_its_success_rate_everywhere(runs_dir, tmp_path) -> None:
    spec = TrainSpec(
        ENV,
        "ppo",
        seed=0,
        total_steps=1024,
        eval_every=512,
        eval_episodes=6,
        save_every=512,
        overrides={"n_envs": 4, "n_steps": 64, "batch_size": 64},
    )
    session = start(spec, runs_dir)
    summary = session.train()
    run = session.run.path
    rows = read_progress(run / "progress.csv")
    rollout = [float(r["rollout/success_rate"]) for r in rows if r.get("rollout/success_rate") not in (None, "")]
    evals = [float(r["eval/success_rate"]) for r in rows if r.get("eval/success_rate") not in (None, "")]
    assert rollout and all(0.0 <= v <= 1.0 for v in rollout)
    assert len(evals) == 2 and summary.eval.success_rate == evals[-1]
    stored = json.loads((run / "eval.json").read_text())
    assert stored["success_rate"] == evals[-1]
    # TensorBoard has both tags
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run)).Reload()
    assert {"rollout/success_rate", "eval/success_rate"} <= set(events.Tags()["scalars"])
    # kerasdojo eval says it; a checkpoint keeps the rollout window
    out = runner.invoke(app, ["eval", str(run), "--episodes", "6"])
    assert out.exit_code == 0 and "success rate" in out.output, out.output
    arrays = np.load(sorted((run / "checkpoints").glob("*.npz"))[-1])
    assert "episodes/successes" in arrays.files and arrays["episodes/successes"].dtype == bool
    # plot --metric
    png = tmp_path / "success.png"
    done = runner.invoke(app, ["plot", str(runs_dir), "--metric", "eval/success_rate", "--out", str(png)])
    assert done.exit_code == 0, done.output
    assert iio.imread(png).ndim == 3


@pytest.mark.slow
def test_bench_summary_has_the_success_rate(tmp_path) -> None:
    out = tmp_path / "exp"
    args = ["bench", ENV, "--agent", "ppo", "--seeds", "2", "--workers", "1", "--steps", "512", "--out", str(out)]
    done = runner.invoke(app, [*args, "--eval-every", "256", "--eval-episodes", "6", "-q", "--set", "n_steps=64"])
    assert done.exit_code == 0, done.output
    summary = json.loads((out / "summary.json").read_text())
    rates = [r["final_success_rate"] for r in summary["seeds"]]
    assert all(0.0 <= r <= 1.0 for r in rates)
    assert summary["aggregate"]["success_rate"] == pytest.approx(sum(rates) / 2)
    assert "success rate" in (out / "summary.md").read_text()
