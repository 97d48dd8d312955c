"""Many seeds in one compiled program: ``kerasdojo bench ENV --agent AGENT --native --seeds N``
beside one seed's ``kerasdojo train ENV --agent AGENT --native``, whole commands, one at a time
(AGENT: ppo, dqn or sac).

For one seed: the wall time of ``train --native`` run twice (the second with the XLA cache
warm). For each N of ``--counts``: the wall time of the whole ``bench`` command (twice for the
first N, so that both have a warm cache), how many seeds reached the env's goal in an
evaluation, and the aggregate training steps/s (N seeds x steps over the program's training
seconds, evaluation excluded, from each seed's progress.csv). ``--steps`` cuts the budget
(aggregate steps/s is a rate; "seeds at the goal" then says little).

    python benchmarks/seeds.py                              # 16, 64 and 256 seeds of the preset
    python benchmarks/seeds.py --agent dqn --counts 16      # DQN's CartPole preset
    python benchmarks/seeds.py --agent sac --env Pendulum-v1 --counts 16 --steps 2000   # a rate
    python benchmarks/seeds.py --counts 16 --no-write
    python benchmarks/seeds.py --counts 256 --steps 20480   # a short run of many seeds
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, today, update_section, versions  # noqa: E402


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "kerasdojo", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"kerasdojo {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - t0


def bench(env: str, agent: str, n: int, steps: int | None, out: Path) -> dict:
    extra = ["--steps", str(steps)] if steps else []
    wall = timed(["bench", env, "--agent", agent, "--native", "--seeds", str(n), "--out", str(out), "-q", *extra])
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["seeds"]
    steps_done = sum(r["steps"] for r in rows)
    seconds = max(r["train_seconds"] for r in rows)  # one program: every seed's training seconds are its
    return {
        "wall": wall,
        "reached": summary["aggregate"]["reached_threshold"],
        "finished": summary["aggregate"]["seeds_finished"],
        "steps_per_s": steps_done / seconds,
        "train_seconds": seconds,
        "final_mean": summary["aggregate"]["mean"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--agent", default="ppo", choices=("ppo", "dqn", "sac"))
    parser.add_argument("--counts", default="16,64,256", help="seed counts, comma-separated")
    parser.add_argument("--steps", type=int, default=None, help="steps per seed [default: the preset's]")
    parser.add_argument("--seed", type=int, default=0, help="the one-seed run's seed")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    extra = ["--steps", str(args.steps)] if args.steps else []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        one = [timed(["train", args.env, "--agent", args.agent, "--native", "--seed", str(args.seed),
                      "--runs-dir", str(root / f"one{i}"), *extra]) for i in range(2)]  # fmt: skip
        print(f"one seed, train --native: {one[0]:.1f} s cold, {one[1]:.1f} s warm", flush=True)
        results = {}
        for i, n in enumerate(counts):
            if i == 0:
                bench(args.env, args.agent, n, args.steps, root / f"warmup{n}")
            results[n] = bench(args.env, args.agent, n, args.steps, root / f"b{n}")
            r = results[n]
            print(
                f"{n} seeds: {r['wall']:.1f} s whole command ({r['wall'] / one[1]:.2f}x one seed's, "
                f"{n * one[1] / r['wall']:.2f}x faster than {n} one-seed commands), "
                f"{r['reached']}/{n} at the goal, {r['steps_per_s']:,.0f} steps/s in all",
                flush=True,
            )
    rows = [
        [
            str(n),
            f"{r['wall']:.1f}",
            f"{r['wall'] / one[1]:.2f}",
            f"{n * one[1] / r['wall']:.2f}",
            f"{r['train_seconds']:.1f}",
            f"{r['steps_per_s']:,.0f}",
            f"{r['reached']} / {n}",
            f"{r['final_mean']:.1f}",
        ]
        for n, r in results.items()
    ]
    header = ["seeds", "whole command (s)", "x one seed's command", "speed-up over N one-seed commands"]
    header += ["training (s)", "steps/s, all seeds"]
    header += ["seeds at the goal", "mean final eval"]
    budget = f"{args.steps:,} steps per seed" if args.steps else "the preset's budget"
    body = "\n".join(
        [
            f"## Many seeds in one program: {args.agent.upper()} on {args.env} ({today()})",
            "",
            f"Machine: {machine()}. {versions('tensorflow', 'keras')}. `python benchmarks/seeds.py "
            f"--agent {args.agent}{' --env ' + args.env if args.env != 'CartPole-v1' else ''} --counts {args.counts}"
            f"{' --steps ' + str(args.steps) if args.steps else ''}`, "
            f"{budget}.",
            "",
            f"One seed, `kerasdojo train {args.env} --agent {args.agent} --native --seed {args.seed}"
            f"{' --steps ' + str(args.steps) if args.steps else ''}`: "
            f"{one[0]:.1f} s cold, {one[1]:.1f} s with the XLA cache warm (the ratio's base).",
            "",
            markdown_table(header, rows),
        ]
    )
    print(body)
    if not args.no_write:
        update_section(f"seeds-{args.env}" if args.agent == "ppo" else f"seeds-{args.agent}-{args.env}", body)


if __name__ == "__main__":
    main()
