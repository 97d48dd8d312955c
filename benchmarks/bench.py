"""``kerasdojo bench`` wall time: the same 8 seeds with 1 worker, 2 workers and a local Ray; with
``--cluster``, 2 local workers, a local Ray and a two-node Ray cluster on this machine.

    python benchmarks/bench.py                     # CartPole-v1 PPO preset, 8 seeds
    python benchmarks/bench.py --seeds 4 --no-ray
    python benchmarks/bench.py --cluster           # section "bench-ray-cluster"
    python benchmarks/bench.py --cluster --seeds 2 --steps 4096 --long-seeds 0 --no-write   # a smoke run

Each configuration runs the installed command in a fresh process, into a fresh
folder, one after another; the wall time covers the whole command (start-up,
workers, training, evaluation, summary). Speed-up = 1-worker time / this time.
The per-seed final evaluations are compared between configurations (they must
match: the seeds do the same work in each).

``--cluster`` starts a Ray cluster the way the README says (token authentication,
``ray start --head`` and a second ``ray start --address`` with its own temporary
folder, one CPU each: the two cores of the 2-worker run), runs the bench on it
beside 2 local workers and ``--ray`` alone, once with the preset's steps (seeds of
about 10 s here) and once with ``--long-steps`` (about 60 s), and stops every
process it started by its id. The cluster's start-up is not in the wall times (a
user's cluster is already running); Ray's overhead = Ray wall / local wall - 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, today, update_section, versions  # noqa: E402


def run(args: list[str], out: Path, env: dict[str, str] | None = None) -> tuple[float, dict]:
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "kerasdojo", "bench", *args, "--out", str(out), "-q"],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    return wall, json.loads((out / "summary.json").read_text())


# --------------------------------------------------------------------------- a two-node cluster


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def two_node_cluster(base: Path):
    """A head and a second node on this machine, one CPU each, with token authentication; yields
    (address, the environment every client needs, start-up seconds). Stops both by their ids."""
    ray = str(Path(sys.executable).parent / "ray")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    made = subprocess.run(
        [ray, "get-auth-token", "--generate"], env={**env, "HOME": str(base)}, capture_output=True, text=True
    )
    if made.returncode != 0:
        raise RuntimeError(made.stderr)
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(base / ".ray" / "auth_token"))
    port = free_port()
    nodes = [
        ["--head", "--port", str(port), "--temp-dir", str(base / "head"), "--include-dashboard", "false"],
        ["--address", f"127.0.0.1:{port}", "--temp-dir", str(base / "node2")]
        + ["--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port())],
    ]
    procs: list[subprocess.Popen] = []
    t0 = time.perf_counter()
    try:
        for i, args in enumerate(nodes):
            log = base / f"node{i}.log"
            with open(log, "w") as out:
                cmd = [ray, "start", *args, "--num-cpus", "1", "--disable-usage-stats", "--block"]
                procs.append(
                    subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
                )
            deadline = time.monotonic() + 120
            while "Ray runtime started" not in log.read_text(errors="replace"):
                if procs[-1].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log.read_text()[-3000:])
                time.sleep(0.3)
        yield f"127.0.0.1:{port}", env, time.perf_counter() - t0
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def cluster_main(args: argparse.Namespace) -> None:
    base = [args.env, "--agent", args.agent]
    configs = [("2 local workers", ["--workers", "2"]), ("local Ray (--ray)", ["--ray", "local"])]
    cluster = "two-node Ray cluster"
    short = "preset's steps" if args.steps is None else f"{args.steps:,} steps"
    budgets = [(short, args.seeds, [] if args.steps is None else ["--steps", str(args.steps)])]
    if args.long_seeds:
        budgets.append((f"{args.long_steps:,} steps", args.long_seeds, ["--steps", str(args.long_steps)]))
    load = os.getloadavg()[0]  # run it on an idle machine: the configurations share its cores
    results: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory(prefix="kdbench-", dir="/tmp") as tmp:
        with two_node_cluster(Path(tmp)) as (address, env, startup):
            print(f"cluster at {address} up in {startup:.1f} s", flush=True)
            for budget, seeds, steps in budgets:
                for label, extra in [*configs, (cluster, ["--ray", address])]:
                    out = Path(tmp) / f"{budget}-{len(results)}"
                    wall, summary = run(base + ["--seeds", str(seeds), *steps, *extra], out, env)
                    secs = [r["train_seconds"] for r in summary["seeds"]]
                    results[budget, label] = {
                        "wall": wall,
                        "seeds": seeds,
                        "seed_s": statistics.median(secs),
                        "finals": [r["final_eval"] for r in summary["seeds"]],
                        "nodes": summary["aggregate"].get("nodes", {}),
                    }
                    print(f"{budget} / {label}: {wall:.1f} s, median seed {statistics.median(secs):.1f} s", flush=True)
    rows = []
    for (budget, label), r in results.items():
        local = results[budget, "2 local workers"]
        same = "yes" if r["finals"] == local["finals"] else "no"
        spread = ", ".join(f"{len(s)} on {n}" for n, s in r["nodes"].items()) if label == cluster else ""
        overhead = "" if label == "2 local workers" else f"{100 * (r['wall'] / local['wall'] - 1):+.0f}%"
        rows.append([budget, str(r["seeds"]), label, f"{r['seed_s']:.1f}", f"{r['wall']:.1f}", overhead, same, spread])
    lines = [
        "## `kerasdojo bench` on a two-node Ray cluster (`benchmarks/bench.py --cluster`)",
        "",
        f"Machine: {machine()}. Date: {today()}. {versions('tensorflow', 'keras', 'gymnasium', 'ray')}. "
        f"1-minute load before the run: {load:.2f}.",
        "",
        f"`kerasdojo bench {' '.join(base)}`: {' and '.join(f'{n} seeds of {b}' for b, n, _ in budgets)}. "
        "The cluster: `ray start --head` and a second `ray start --address` on this machine with token "
        f"authentication, one CPU each (started in {startup:.1f} s, not counted); the 2 local workers get one core "
        "each as well. Overhead = wall time / the 2 local workers' - 1; the seed column is the median of the "
        "seeds' own training time.",
        "",
        markdown_table(
            ["per seed", "seeds", "configuration", "seed s", "wall s", "Ray overhead", "same finals", "where"], rows
        ),
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        update_section("bench-ray-cluster", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--agent", default="ppo")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--cluster", action="store_true", help="2 local workers, local Ray, a two-node cluster")
    parser.add_argument("--steps", type=int, default=None, help="--cluster: steps per seed [preset's]")
    parser.add_argument("--long-seeds", type=int, default=4, help="--cluster: seeds of the long run (0: none)")
    parser.add_argument("--long-steps", type=int, default=600_000, help="--cluster: steps per long seed")
    args = parser.parse_args()
    if args.cluster:
        cluster_main(args)
        return
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
