"""``kerasdojo bench`` wall time: the same 8 seeds with 1 worker, 2 workers and a local Ray.

    python benchmarks/bench.py                     # CartPole-v1 PPO preset, 8 seeds
    python benchmarks/bench.py --seeds 4 --no-ray

Each configuration runs the installed command in a fresh process, into a fresh
folder, one after another; the wall time covers the whole command (start-up,
workers, training, evaluation, summary). Speed-up = 1-worker time / this time.
The per-seed final evaluations are compared between configurations (they must
match: the seeds do the same work in each).
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


def run(args: list[str], out: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "kerasdojo", "bench", *args, "--out", str(out), "-q"], capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    return wall, json.loads((out / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--agent", default="ppo")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    base = [args.env, "--agent", args.agent, "--seeds", str(args.seeds)]
    configs = [("1 worker", ["--workers", "1"]), ("2 workers", ["--workers", "2"])]
    if not args.no_ray:
        configs.append(("local Ray", ["--ray", "local"]))
    rows, finals, walls = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, extra) in enumerate(configs):
            wall, summary = run(base + extra, Path(tmp) / str(i))
            walls[label] = wall
            finals[label] = [r["final_eval"] for r in summary["seeds"]]
            agg = summary["aggregate"]
            print(f"{label}: {wall:.1f} s, IQM {agg['iqm']:.1f}, finals {finals[label]}", flush=True)
    one = walls["1 worker"]
    for label, wall in walls.items():
        same = "yes" if finals[label] == finals["1 worker"] else "no"
        rows.append([label, f"{wall:.1f}", f"x{one / wall:.2f}", same])
    lines = [
        f"Machine: {machine()}. Date: {today()}. {versions('tensorflow', 'keras', 'gymnasium', 'ray', 'optuna')}.",
        "",
        f"`kerasdojo bench {' '.join(base)}` (the preset's steps per seed; wall time of the whole command):",
        "",
        markdown_table(["configuration", "wall s", "speed-up vs 1 worker", "same per-seed finals"], rows),
    ]
    if "local Ray" in walls:
        ratio = walls["local Ray"] / walls["2 workers"]
        lines += ["", f"Local Ray / 2 local workers: x{ratio:.2f} wall time."]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        update_section("bench", text)


if __name__ == "__main__":
    main()
