"""bench (local workers and a real local Ray), plot and tune (Optuna), with short budgets."""

from __future__ import annotations

import json
import socket

import imageio.v3 as iio
import pytest
from typer.testing import CliRunner

from kerasdojo.cli import app
from kerasdojo.errors import DojoError, Interrupted
from kerasdojo.experiments import bench as bench_mod
from kerasdojo.experiments import curves
from kerasdojo.runs import read_progress
from kerasdojo.training.session import TrainSpec, start
from tests.agents.test_agents import press_ctrl_c_at

runner = CliRunner()
FAST = [
    "--steps",
    "1024",
    "--eval-every",
    "512",
    "--eval-episodes",
    "2",
    "--set",
    "n_steps=64",
    "--set",
    "batch_size=64",
    "--set",
    "n_epochs=2",
    "-q",
]


def bench(out, *extra: str):
    result = runner.invoke(app, ["bench", "CartPole-v1", "--out", str(out), *FAST, *extra])
    return result


def per_seed(out) -> dict[int, dict]:
    return {r["seed"]: r for r in json.loads((out / "summary.json").read_text())["seeds"]}


@pytest.mark.slow  # long end to end (pytest -m "not slow" stays under 5 minutes)
def test_bench_trains_seeds_as_runs_and_summarises(tmp_path) -> None:
    out = tmp_path / "exp"
    result = bench(out, "--seeds", "2", "--workers", "2")
    assert result.exit_code == 0, result.output
    runs = sorted(p.name for p in out.iterdir() if (p / "config.json").is_file())
    assert len(runs) == 2 and "__s0__" in runs[0] and "__s1__" in runs[1]
    summary = json.loads((out / "summary.json").read_text())
    assert [r["seed"] for r in summary["seeds"]] == [0, 1] and all(r["finished"] for r in summary["seeds"])
    assert summary["aggregate"]["seeds_finished"] == 2
    lo, hi = summary["aggregate"]["iqm_ci95"]
    assert lo <= summary["aggregate"]["iqm"] <= hi
    image = iio.imread(out / "curves.png")
    assert image.shape[:2] == (550, 900)  # 9 x 5.5 inches at 100 dpi
    assert "IQM" in (out / "summary.md").read_text()
    # Again with a third seed: the two finished seeds are kept, only the new one trains.
    mtimes = {p: (p / "eval.json").stat().st_mtime for p in out.iterdir() if (p / "eval.json").is_file()}
    result = bench(out, "--seeds", "0,1,2", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert all((p / "eval.json").stat().st_mtime == t for p, t in mtimes.items())
    assert sorted(per_seed(out)) == [0, 1, 2] and all(r["finished"] for r in per_seed(out).values())


def test_bench_resumes_an_interrupted_seed(tmp_path) -> None:
    out = tmp_path / "exp"
    spec = bench_mod.BenchSpec(
        "CartPole-v1",
        "ppo",
        (0,),
        out,
        total_steps=1024,
        eval_every=512,
        eval_episodes=2,
        save_every=256,
        overrides={"n_steps": 64, "batch_size": 64, "n_epochs": 2},
    )
    bench_mod.prepare(spec)
    job = bench_mod.jobs_of(spec)[0]
    session = start(
        TrainSpec(
            "CartPole-v1",
            "ppo",
            seed=0,
            total_steps=1024,
            eval_every=512,
            eval_episodes=2,
            save_every=256,
            overrides=spec.overrides,
        ),
        out,
    )
    press_ctrl_c_at(session, 500)
    with pytest.raises(Interrupted):
        session.train()
    result = bench_mod.train_seed(job)
    assert result["status"] == "resumed" and result["run"] == str(session.run.path)
    steps = [int(r["time/total_timesteps"]) for r in read_progress(session.run.path / "progress.csv")]
    assert steps[-1] >= 1024 and steps == sorted(steps)
    assert bench_mod.train_seed(job)["status"] == "done before"


def test_plot_two_runs_with_labels(tmp_path, runs_dir) -> None:
    for seed in (0, 1):
        runner.invoke(app, ["train", "CartPole-v1", "--seed", str(seed), "--runs-dir", str(runs_dir), *FAST])
    a, b = sorted(runs_dir.iterdir())
    out = tmp_path / "cmp.png"
    result = runner.invoke(app, ["plot", str(a), str(b), "--label", "first", "--label", "second", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert iio.imread(out).shape[:2] == (550, 900)
    assert "first: 1 run(s)" in result.output
    result = runner.invoke(
        app, ["plot", str(runs_dir), "--x", "seconds", "--metric", "rollout/ep_rew_mean", "--out", str(out)]
    )
    assert result.exit_code == 0 and "ppo on CartPole-v1: 2 run(s)" in result.output
    curve = curves.read_curve(a, "eval/mean_reward")
    assert list(curve.x) == [512, 1024]


def test_iqm_and_bootstrap() -> None:
    assert curves.iqm([1, 2, 3, 4, 100, -100, 5, 6]) == pytest.approx(3.5)  # middle half of 8 values
    lo, hi = curves.bootstrap_ci([10.0, 11, 12, 13, 14])
    assert 10 <= lo <= 12 <= hi <= 14
    assert curves.bootstrap_ci([7.0]) == (7.0, 7.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "CartPole-v1", "--seeds", "a,b"], "--seeds takes"),
        (["bench", "CartPole-v1", "--seeds", "0,0"], "distinct"),
        (["bench", "CartPole-v1", "--workers", "0"], "--workers must be >= 1"),
        (["bench", "NoSuchEnv-v0"], "NoSuchEnv"),
        (["plot", "no/such/folder"], "No run or experiment folder"),
        (["tune", "CartPole-v1", "--trials", "0"], "--trials must be >= 1"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, message) -> None:
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "x.png" if args[0] == "plot" else tmp_path / "x")])
    assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.slow  # long end to end (pytest -m "not slow" stays under 5 minutes)
def test_bench_refuses_a_folder_of_other_settings_and_a_dead_ray_address(tmp_path) -> None:
    out = tmp_path / "exp"
    assert bench(out, "--seeds", "1").exit_code == 0
    result = runner.invoke(app, ["bench", "CartPole-v1", "--out", str(out), "--seeds", "1", "--steps", "2048", "-q"])
    assert result.exit_code == 2 and "different settings" in result.output
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = runner.invoke(app, ["bench", "CartPole-v1", "--ray", f"127.0.0.1:{port}", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "No Ray cluster answers" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_tune_three_trials_writes_best_toml_that_train_accepts(tmp_path) -> None:
    pytest.importorskip("optuna")
    out = tmp_path / "study"
    args = [
        "tune",
        "CartPole-v1",
        "--trials",
        "3",
        "--steps",
        "1024",
        "--eval-every",
        "512",
        "--eval-episodes",
        "2",
        "--out",
        str(out),
        "-q",
        "--set",
        "n_envs=2",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    best = out / "best.toml"
    assert best.is_file() and "learning_rate" in best.read_text()
    assert "n_envs = 2" in best.read_text() and "total_steps = 1024" in best.read_text()  # what trials ran with
    assert (out / "optimization_history.png").is_file()
    result = runner.invoke(
        app,
        [
            "train",
            "CartPole-v1",
            "--config",
            str(best),
            "--steps",
            "256",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--eval-episodes",
            "1",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    # The same storage, asked to tune another env under this study's name: one line.
    result = runner.invoke(app, ["tune", "Acrobot-v1", "--study", "CartPole-v1__ppo", "--out", str(out), "-q"])
    assert result.exit_code == 2 and "tunes ppo on CartPole-v1" in result.output
    with pytest.raises(DojoError):
        from kerasdojo.experiments import tune

        tune.open_study(f"sqlite:///{out / 'study.db'}", "CartPole-v1__ppo", "CartPole-v1", "dqn", 1024)


@pytest.mark.slow
def test_bench_on_a_local_ray_matches_local_workers(tmp_path) -> None:
    pytest.importorskip("ray")
    import os

    local, ray = tmp_path / "local", tmp_path / "ray"
    # One TensorFlow thread per seed on both sides (a Ray task has one CPU), whatever the core count.
    workers = str(max(os.cpu_count() or 1, 2))
    assert bench(local, "--seeds", "2", "--workers", workers).exit_code == 0
    result = bench(ray, "--seeds", "2", "--ray", "local")
    assert result.exit_code == 0, result.output
    a, b = per_seed(local), per_seed(ray)
    for seed in (0, 1):
        assert a[seed]["final_eval"] == b[seed]["final_eval"]
        assert a[seed]["best_eval"] == b[seed]["best_eval"]
        rows_a = read_progress(next(local.glob(f"*__s{seed}__*")) / "progress.csv")
        rows_b = read_progress(next(ray.glob(f"*__s{seed}__*")) / "progress.csv")
        assert [r["rollout/ep_rew_mean"] for r in rows_a] == [r["rollout/ep_rew_mean"] for r in rows_b]


def test_bare_ray_flag_means_local() -> None:
    from kerasdojo.cli.common import bare_flags

    assert bare_flags(["bench", "CartPole-v1", "--ray"]) == ["bench", "CartPole-v1", "--ray", "local"]
    assert bare_flags(["bench", "X", "--ray", "--seeds", "2"]) == ["bench", "X", "--ray", "local", "--seeds", "2"]
    assert bare_flags(["bench", "X", "--ray", "auto"]) == ["bench", "X", "--ray", "auto"]
