"""bench --native with PPO: every seed in one compiled program, each written as its own run."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from kerasdojo.agents.seeds import SeedsPPO
from kerasdojo.cli import app
from kerasdojo.experiments import bench as bench_mod
from kerasdojo.experiments.batched import train_batched
from kerasdojo.files import load_arrays, read_json
from kerasdojo.runs import read_progress
from kerasdojo.training.session import evaluate_run
from tests.experiments.interrupt import interrupted_at
from tests.test_runs import read_events

runner = CliRunner()
SMALL = {"n_envs": 4, "n_steps": 32, "batch_size": 64, "n_epochs": 2}
STEPS = 2048  # 16 iterations of 128 steps


def spec(out, seeds, env_id="CartPole-v1"):
    return bench_mod.BenchSpec(
        env_id,
        "ppo",
        seeds=tuple(seeds),
        out=out,
        total_steps=STEPS,
        overrides=SMALL,
        native=True,
        eval_every=512,
        eval_episodes=3,
        save_every=1024,
    )


def train(out, seeds, env_id="CartPole-v1"):
    s = spec(out, seeds, env_id)
    bench_mod.prepare(s)
    return train_batched(s, s.seeds)


def weights(run) -> dict[str, np.ndarray]:
    arrays, _ = load_arrays(run / "agent.npz")
    return {k: v for k, v in arrays.items() if k.startswith(("net/", "opt/", "var/"))}


LEARNING = ("rollout/ep_rew_mean", "train/loss", "train/approx_kl", "eval/mean_reward", "time/episodes")


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """Seeds 0, 1 and 2 trained in one program."""
    out = tmp_path_factory.mktemp("three")
    return out, {r["seed"]: r for r in train(out, [0, 1, 2])}


def test_each_seed_is_a_complete_run_directory(three) -> None:
    out, results = three
    assert {r["status"] for r in results.values()} == {"trained"}
    for seed, result in results.items():
        run = bench_mod.seed_run(out, seed)
        assert str(run) == result["run"]
        for name in ("config.json", "eval.json", "agent.npz", "policy.keras", "best_agent.npz", "best_policy.keras"):
            assert (run / name).is_file(), name
        rows = read_progress(run / "progress.csv")
        assert int(rows[-1]["time/total_timesteps"]) == STEPS
        evals = [float(r["eval/mean_reward"]) for r in rows if r.get("eval/mean_reward")]
        assert len(evals) == 4  # 512, 1024, 1536 and the final one
        scalars = read_events(run).Scalars("eval/mean_reward")
        assert [round(e.value, 3) for e in scalars] == [round(v, 3) for v in evals]
        # progress.csv keeps 6 significant digits
        assert read_json(run / "eval.json")["mean_reward"] == pytest.approx(evals[-1], abs=1e-3)
        # The run is an ordinary PPO run: kerasdojo eval loads it and plays Gymnasium's own env.
        assert evaluate_run(run, episodes=2).result.mean_reward > 8


def test_a_seed_learns_the_same_beside_other_seeds_or_alone(three, tmp_path) -> None:
    out, _ = three
    train(tmp_path / "alone", [1])
    together, alone = bench_mod.seed_run(out, 1), bench_mod.seed_run(tmp_path / "alone", 1)
    rows, rows_alone = read_progress(together / "progress.csv"), read_progress(alone / "progress.csv")
    assert [{k: r.get(k) for k in LEARNING} for r in rows] == [{k: r.get(k) for k in LEARNING} for r in rows_alone]
    mine, theirs = weights(together), weights(alone)
    assert mine.keys() == theirs.keys()
    for key in mine:
        np.testing.assert_array_equal(mine[key], theirs[key], err_msg=key)
    # ... and another seed learns differently.
    other = weights(bench_mod.seed_run(out, 0))
    assert not np.array_equal(other["net/policy/0"], mine["net/policy/0"])


def test_ctrl_c_checkpoints_every_seed_and_bench_resumes_them_exactly(three, tmp_path, monkeypatch) -> None:
    out = tmp_path / "stopped"
    results = interrupted_at(monkeypatch, SeedsPPO, 768, lambda: train(out, [1, 2]))
    assert {r["status"] for r in results} == {"interrupted"}
    rngs = []
    for seed in (1, 2):
        checkpoint = bench_mod.seed_run(out, seed) / "checkpoints" / "step_000000000768.npz"
        rngs.append(load_arrays(checkpoint)[0]["rng/tf"])  # kerasdojo resume would sample each seed apart
    assert not np.array_equal(*rngs)
    # Seeds 1 and 2 resume at step 768 in one program; the new seed 3 starts in another.
    assert {r["seed"]: r["status"] for r in train(out, [1, 2, 3])} == {1: "trained", 2: "trained", 3: "trained"}
    assert {r["status"] for r in train(out, [1, 2, 3])} == {"done before"}
    reference, _ = three
    for seed in (1, 2):
        mine, ref = weights(bench_mod.seed_run(out, seed)), weights(bench_mod.seed_run(reference, seed))
        for key in ref:
            np.testing.assert_array_equal(mine[key], ref[key], err_msg=f"seed {seed} {key}")
        rows = read_progress(bench_mod.seed_run(out, seed) / "progress.csv")
        steps = [int(r["time/total_timesteps"]) for r in rows]
        assert steps == sorted(set(steps))  # the resumed curve continues, no step twice


def test_gaussian_seeds_keep_their_own_log_std_through_a_resume(tmp_path, monkeypatch) -> None:
    """Pendulum-v1: a Gaussian policy per seed, its log-std saved and loaded with the seed's checkpoint."""
    whole = tmp_path / "whole"
    assert {r["status"] for r in train(whole, [0, 1], "Pendulum-v1")} == {"trained"}
    stopped = tmp_path / "stopped"
    results = interrupted_at(monkeypatch, SeedsPPO, 1280, lambda: train(stopped, [0, 1], "Pendulum-v1"))
    assert {r["status"] for r in results} == {"interrupted"}
    assert {r["status"] for r in train(stopped, [0, 1], "Pendulum-v1")} == {"trained"}
    stds = []
    for seed in (0, 1):
        mine, ref = weights(bench_mod.seed_run(stopped, seed)), weights(bench_mod.seed_run(whole, seed))
        assert mine.keys() == ref.keys() and "var/log_std" in ref
        for key in ref:
            np.testing.assert_array_equal(mine[key], ref[key], err_msg=f"seed {seed} {key}")
        stds.append(ref["var/log_std"])
        row = read_progress(bench_mod.seed_run(whole, seed) / "progress.csv")[-1]
        assert float(row["train/std"]) == pytest.approx(float(np.exp(ref["var/log_std"]).mean()), rel=1e-4)
    assert not np.array_equal(*stds)
    # An ordinary PPO run: its policy plays Gymnasium's Pendulum-v1 (200 steps an episode).
    result = evaluate_run(bench_mod.seed_run(whole, 0), episodes=1).result
    assert result.mean_ep_length == 200 and -2000 < result.mean_reward < 0


@pytest.mark.slow  # 16 s: three Acrobot programs and a Keras reload
def test_normalising_seeds_keep_their_own_statistics_in_checkpoints_policies_and_resumes(tmp_path, monkeypatch) -> None:
    """Acrobot-v1's preset normalises observations and rewards: each seed's statistics are its
    own, saved in its checkpoint and agent, built into its policy.keras, and a resume goes on
    from them (and from each env's discounted return) exactly."""
    import keras

    whole = tmp_path / "whole"
    assert {r["status"] for r in train(whole, [0, 1], "Acrobot-v1")} == {"trained"}
    stopped = tmp_path / "stopped"
    results = interrupted_at(monkeypatch, SeedsPPO, 1280, lambda: train(stopped, [0, 1], "Acrobot-v1"))
    assert {r["status"] for r in results} == {"interrupted"}
    assert {r["status"] for r in train(stopped, [0, 1], "Acrobot-v1")} == {"trained"}
    means = []
    for seed in (0, 1):
        run = bench_mod.seed_run(whole, seed)
        for name in ("agent.npz", "best_agent.npz"):
            ref, _ = load_arrays(run / name)
            mine, _ = load_arrays(bench_mod.seed_run(stopped, seed) / name)
            for key in [k for k in ref if k.startswith(("net/", "opt/", "var/", "norm/"))]:
                np.testing.assert_array_equal(mine[key], ref[key], err_msg=f"seed {seed} {name} {key}")
        # Every step adds each env's last observation; every finished episode its next first one.
        ref, meta = load_arrays(run / "agent.npz")
        assert float(ref["norm/obs_count"]) == pytest.approx(STEPS + meta["episodes"], abs=1e-3)
        assert float(ref["norm/ret_count"]) == pytest.approx(STEPS, abs=1e-3)
        means.append(ref["norm/obs_mean"])
        # The best agent keeps the statistics it was evaluated with, not the last ones.
        best, best_meta = load_arrays(run / "best_agent.npz")
        assert float(best["norm/ret_count"]) == pytest.approx(best_meta["best_step"], abs=1e-3)
        # policy.keras takes raw observations: the seed's statistics, then its policy network.
        obs = np.random.default_rng(seed).normal(size=(5, 6)).astype(np.float32)
        for name, arrays in (("policy.keras", ref), ("best_policy.keras", best)):
            x = np.clip((obs - arrays["norm/obs_mean"]) / np.sqrt(arrays["norm/obs_var"] + 1e-8), -10, 10)
            for i in range(3):
                x = x @ arrays[f"net/policy/{2 * i}"] + arrays[f"net/policy/{2 * i + 1}"]
                x = np.tanh(x) if i < 2 else x
            got = keras.saving.load_model(run / name, compile=False)(obs)
            np.testing.assert_allclose(np.asarray(got), x, rtol=1e-4, atol=1e-5, err_msg=name)
    assert not np.array_equal(*means)


@pytest.mark.slow  # 20 s: two bench commands end to end
def test_bench_cli_says_how_it_runs_the_seeds(tmp_path) -> None:
    args = ["bench", "CartPole-v1", "--native", "--steps", "512", "--eval-every", "256", "--eval-episodes", "2", "-q"]
    sets = [x for k, v in SMALL.items() for x in ("--set", f"{k}={v}")]
    result = runner.invoke(app, [*args, *sets, "--seeds", "2", "--out", str(tmp_path / "ppo")])
    assert result.exit_code == 0, result.output
    assert "one compiled program" in result.output
    summary = read_json(tmp_path / "ppo" / "summary.json")
    assert [r["seed"] for r in summary["seeds"]] == [0, 1] and summary["aggregate"]["seeds_finished"] == 2
    assert (tmp_path / "ppo" / "curves.png").stat().st_size > 10_000
    result = runner.invoke(app, [*args, "--agent", "dqn", "--seeds", "2", "--out", str(tmp_path / "dqn")])
    assert result.exit_code == 0, result.output
    assert "one compiled program" in result.output
    # What cannot batch trains one program per seed, and the first line says why.
    result = runner.invoke(
        app, [*args, *sets, "--set", "target_kl=0.02", "--seeds", "1", "--out", str(tmp_path / "kl")]
    )
    assert result.exit_code == 0, result.output
    assert "one program per seed (target_kl is set" in result.output


@pytest.mark.slow
def test_eight_batched_seeds_each_solve_cartpole(tmp_path) -> None:
    """RL Zoo's PPO preset, 8 seeds in one program: every seed reaches a 475 evaluation."""
    s = bench_mod.BenchSpec("CartPole-v1", "ppo", seeds=tuple(range(8)), out=tmp_path, native=True)
    bench_mod.prepare(s)
    results = train_batched(s, s.seeds)
    assert len(results) == 8
    for seed in range(8):
        best = read_json(bench_mod.seed_run(tmp_path, seed) / "eval.json")["best_mean_reward"]
        assert best >= 475, f"seed {seed}: best evaluation {best}"


@pytest.mark.slow
def test_two_normalising_seeds_each_solve_acrobot(tmp_path) -> None:
    """RL Zoo's Acrobot PPO preset (observations and rewards normalised per seed), 2 seeds in one
    program for 40,960 steps: each reaches the goal of -100 (both did by 20,480 steps here)."""
    s = bench_mod.BenchSpec(
        "Acrobot-v1", "ppo", seeds=(0, 1), out=tmp_path, native=True, total_steps=40_960, eval_every=10_240
    )
    bench_mod.prepare(s)
    assert {r["status"] for r in train_batched(s, s.seeds)} == {"trained"}
    for seed in (0, 1):
        found = read_json(bench_mod.seed_run(tmp_path, seed) / "eval.json")
        assert found["best_mean_reward"] >= -100 and found["mean_reward"] > -150, f"seed {seed}: {found}"
