"""How to run k gradient steps inside one compiled call: the candidates on PPO, DQN and SAC.

``kerasdojo.agents.speed.repeat`` unrolls loops of at most ``UNROLL`` static steps in the
graph and runs longer ones as one ``tf.while_loop``. This script times one compiled
update call of each agent's preset (CartPole PPO and DQN, Pendulum SAC) on random data
under three settings of that threshold: ``while`` (always a while loop), ``unroll<=4``
(the default) and ``unroll all`` (every loop unrolled), for a few values of k. Median of
``--calls`` calls after two warm-up calls (compilation excluded, reported apart).

    python benchmarks/gradient_steps.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, today, update_section, versions  # noqa: E402

SETTINGS = {"while": 0, "unroll<=4": 4, "unroll all": 10**6}


def _agent(name: str, env_id: str, overrides: dict):
    from kerasdojo import envs
    from kerasdojo.training.spec import build_agent, resolve_config

    cfg = resolve_config(name, env_id, overrides)
    env = envs.make_vec(env_id, cfg.n_envs, seed=0)
    return build_agent(name, cfg, env, 0), env


def time_calls(fn, calls: int) -> tuple[float, float]:
    """(first call s, median ms of the next ``calls`` after one more warm-up)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, 1000 * statistics.median(times)


def case(algo: str, k: int, unroll: int, calls: int) -> tuple[float, float]:
    from kerasdojo.agents import speed

    speed.UNROLL = unroll
    rng = np.random.default_rng(0)
    if algo == "ppo":  # k = n_epochs minibatches of the whole rollout
        agent, env = _agent("ppo", "CartPole-v1", {"n_epochs": k})
        n = agent.cfg.n_steps * agent.cfg.n_envs
        obs = rng.normal(size=(n, 4)).astype(np.float32)
        args = [np.float32(agent.cfg.learning_rate), obs, rng.integers(0, 2, n), np.full(n, -0.7, np.float32)]
        args += [rng.normal(size=n).astype(np.float32) for _ in range(3)] + [np.ones(n, np.float32), np.float32(0.2)]
        return time_calls(lambda: agent._update(*args, None), calls)  # the update sets lr, returns the weights
    if algo == "dqn":
        agent, env = _agent("dqn", "CartPole-v1", {"gradient_steps": k})
        b = agent.cfg.batch_size
        args = [rng.normal(size=(k, b, 4)).astype(np.float32), rng.integers(0, 2, (k, b))]
        args += [
            np.ones((k, b), np.float32),
            rng.normal(size=(k, b, 4)).astype(np.float32),
            np.zeros((k, b), np.float32),
        ]
        return time_calls(lambda: agent._train(*args), calls)
    agent, env = _agent("sac", "Pendulum-v1", {"gradient_steps": k})
    b = agent.cfg.batch_size
    args = [rng.normal(size=(k, b, 3)).astype(np.float32), rng.uniform(-1, 1, (k, b, 1)).astype(np.float32)]
    args += [rng.normal(size=(k, b)).astype(np.float32), rng.normal(size=(k, b, 3)).astype(np.float32)]
    args += [np.zeros((k, b), np.float32), np.int64(0), rng.normal(size=(1, 3)).astype(np.float32)]
    return time_calls(lambda: agent._train(*args), calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        algo, k, unroll = args.worker
        first, ms = case(algo, int(k), int(unroll), args.calls)
        print(f"{first:.3f} {ms:.3f}")
        return
    import subprocess

    rows = []
    for algo, ks in (("ppo", (2, 10, 20)), ("dqn", (1, 4, 128)), ("sac", (1, 4, 16))):
        for k in ks:
            cells = []
            for label, unroll in SETTINGS.items():
                cmd = [sys.executable, __file__, "--calls", str(args.calls), "--worker", algo, str(k), str(unroll)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
                cells.append(f"{float(out[1]):.2f} ms ({float(out[0]):.1f} s)")
                print(f"{algo} k={k} {label}: {cells[-1]}", flush=True)
            rows.append(f"| {algo} | {k} | " + " | ".join(cells) + " |")
    table = [
        f"Machine: {machine()}. Date: {today()}. {versions('tensorflow', 'keras', 'numpy')}.",
        "",
        "One compiled update call, median of the calls after warm-up (first call, compilation included, in brackets).",
        "PPO: CartPole preset (no XLA), k = n_epochs minibatches of the 256-step rollout; DQN: CartPole preset"
        " (XLA; its preset takes 128 steps a call), k minibatches of 64; SAC: Pendulum preset (XLA), k minibatches"
        " of 256.",
        "",
        "| algo | k | " + " | ".join(SETTINGS) + " |",
        "|---|---|" + "---|" * len(SETTINGS),
        *rows,
    ]
    text = "\n".join(table)
    print(text)
    if not args.no_write:
        update_section(
            "gradient-steps", "## k gradient steps in one compiled call (`benchmarks/gradient_steps.py`)\n\n" + text
        )


if __name__ == "__main__":
    main()
