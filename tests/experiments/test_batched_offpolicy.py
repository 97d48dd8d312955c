"""bench --native with DQN and SAC: every seed in one compiled program, each written as its own
run, its checkpoints holding its own replay buffer."""

from __future__ import annotations

import numpy as np
import pytest

from kerasdojo.agents.seeds_dqn import SeedsDQN
from kerasdojo.agents.seeds_sac import SeedsSAC
from kerasdojo.experiments import bench as bench_mod
from kerasdojo.experiments.batched import train_batched
from kerasdojo.files import load_arrays, read_json
from kerasdojo.runs import read_progress
from kerasdojo.training.session import evaluate_run
from tests.experiments.interrupt import interrupted_at

SMALL = {"learning_starts": 256, "train_freq": 64, "gradient_steps": 8, "buffer_size": 1000, "net_arch": "64,64"}
STEPS = 2048  # 32 calls of 64 steps


def train(out, seeds, agent="dqn", env_id="CartPole-v1", overrides=SMALL, steps=STEPS):
    s = bench_mod.BenchSpec(
        env_id,
        agent,
        seeds=tuple(seeds),
        out=out,
        total_steps=steps,
        overrides=overrides,
        native=True,
        eval_every=512,
        eval_episodes=3,
        save_every=1024,
    )
    bench_mod.prepare(s)
    return train_batched(s, s.seeds)


def test_dqn_seeds_checkpoint_their_replay_and_resume_exactly(tmp_path, monkeypatch) -> None:
    whole = tmp_path / "whole"
    assert {r["status"] for r in train(whole, [0, 1])} == {"trained"}
    for seed in (0, 1):
        run = bench_mod.seed_run(whole, seed)
        for name in ("config.json", "eval.json", "agent.npz", "policy.keras", "best_agent.npz", "best_policy.keras"):
            assert (run / name).is_file(), name
        rows = read_progress(run / "progress.csv")
        assert int(rows[-1]["time/total_timesteps"]) == STEPS
        assert float(rows[-1]["train/n_updates"]) == (STEPS - 256) // 64 * 8
        assert read_json(run / "eval.json")["evaluated_on"] == "native twin"
        # An ordinary DQN run: kerasdojo eval loads it and plays Gymnasium's own env.
        assert evaluate_run(run, episodes=2).result.mean_reward >= 8
    stopped = tmp_path / "stopped"
    assert {r["status"] for r in interrupted_at(monkeypatch, SeedsDQN, 1280, lambda: train(stopped, [0, 1]))} == {
        "interrupted"
    }
    buffers = []
    for seed in (0, 1):
        arrays, meta = load_arrays(bench_mod.seed_run(stopped, seed) / "checkpoints" / "step_000000001280.npz")
        assert meta["replay/size"] == 1000 and meta["n_calls"] == 1280
        buffers.append(arrays["replay/obs"])
    assert buffers[0].shape == (1000, 4) and not np.array_equal(*buffers)  # each seed's own transitions
    assert {r["status"] for r in train(stopped, [0, 1])} == {"trained"}
    for seed in (0, 1):
        mine, _ = load_arrays(bench_mod.seed_run(stopped, seed) / "agent.npz")
        ref, _ = load_arrays(bench_mod.seed_run(whole, seed) / "agent.npz")
        keys = [k for k in ref if k.startswith(("net/", "opt/"))]
        assert keys and mine.keys() == ref.keys()
        for key in keys:
            np.testing.assert_array_equal(mine[key], ref[key], err_msg=f"seed {seed} {key}")


SAC_SMALL = {"learning_starts": 64, "buffer_size": 300, "batch_size": 32, "net_arch": "32,32", "train_freq": 4}


def test_sac_seeds_checkpoint_their_state_and_resume_exactly(tmp_path, monkeypatch) -> None:
    def sac(out):
        return train(out, [0, 1], "sac", "Pendulum-v1", SAC_SMALL, 1200)

    whole = tmp_path / "whole"
    assert {r["status"] for r in sac(whole)} == {"trained"}
    stopped = tmp_path / "stopped"
    assert {r["status"] for r in interrupted_at(monkeypatch, SeedsSAC, 500, lambda: sac(stopped))} == {"interrupted"}
    assert {r["status"] for r in sac(stopped)} == {"trained"}
    for seed in (0, 1):
        mine, _ = load_arrays(bench_mod.seed_run(stopped, seed) / "agent.npz")
        ref, _ = load_arrays(bench_mod.seed_run(whole, seed) / "agent.npz")
        keys = [k for k in ref if k.startswith(("net/", "opt/", "var/"))]
        assert "var/log_ent_coef" in keys and "net/critics/0" in keys and mine.keys() == ref.keys()
        for key in keys:
            np.testing.assert_array_equal(mine[key], ref[key], err_msg=f"seed {seed} {key}")
        rows = read_progress(bench_mod.seed_run(whole, seed) / "progress.csv")
        assert int(rows[-1]["time/total_timesteps"]) == 1200 and float(rows[-1]["train/ent_coef"]) < 1.0
    # An ordinary SAC run: its policy plays Gymnasium's Pendulum-v1.
    result = evaluate_run(bench_mod.seed_run(whole, 0), episodes=1).result
    assert result.mean_ep_length == 200 and -2000 < result.mean_reward < 0


@pytest.mark.slow
def test_batched_dqn_seeds_learn_cartpole(tmp_path) -> None:
    """RL Zoo's DQN preset, 4 seeds in one program: as unsteady as DQN on CartPole is one seed at a
    time (4 of 5 native seeds reach 475), at least half of them reach a 475 evaluation."""
    s = bench_mod.BenchSpec("CartPole-v1", "dqn", seeds=(0, 1, 2, 3), out=tmp_path, native=True)
    bench_mod.prepare(s)
    assert {r["status"] for r in train_batched(s, s.seeds)} == {"trained"}
    best = [read_json(bench_mod.seed_run(tmp_path, seed) / "eval.json")["best_mean_reward"] for seed in range(4)]
    assert sum(b >= 475 for b in best) >= 2 and min(best) >= 150, best


@pytest.mark.slow
def test_batched_sac_seeds_each_reach_minus_200_on_pendulum(tmp_path) -> None:
    """SAC's Pendulum preset cut to 8,000 steps, 2 seeds in one program: each reaches a -200 evaluation."""
    s = bench_mod.BenchSpec(
        "Pendulum-v1", "sac", seeds=(0, 1), out=tmp_path, total_steps=8000, native=True, eval_every=2000
    )
    bench_mod.prepare(s)
    assert {r["status"] for r in train_batched(s, s.seeds)} == {"trained"}
    for seed in (0, 1):
        best = read_json(bench_mod.seed_run(tmp_path, seed) / "eval.json")["best_mean_reward"]
        assert best >= -200, f"seed {seed}: best evaluation {best}"
