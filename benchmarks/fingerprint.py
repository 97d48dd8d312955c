"""Fingerprints of short training runs: a refactor that keeps the arithmetic keeps them.

Each case trains one agent for a few thousand steps with a fixed seed through the
installed command (``python -m kerasdojo train ...``, one fresh process each), then
prints a hash of every network weight, optimizer slot and variable in the run's
``agent.npz`` and the final evaluation. Run it before and after a change and compare
the lines: equal hashes mean the same learning, step for step.

    cp benchmarks/fingerprint.py /tmp/fp.py && python /tmp/fp.py > after.txt
    git stash && python /tmp/fp.py > before.txt; git stash pop
    diff before.txt after.txt

(``PYTHONPATH=/old/checkout`` does not work: the editable install's import hook wins over it.)

Where TensorFlow on the CPU is not bit-reproducible from run to run, a case prints
``(run twice: differs)`` with ``--twice``, so a difference there says nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# (label, env, agent, steps, extra arguments)
CASES: list[tuple[str, str, str, int, list[str]]] = [
    ("ppo-cartpole", "CartPole-v1", "ppo", 4096, []),
    (
        "ppo-pendulum-norm",
        "Pendulum-v1",
        "ppo",
        4096,
        ["--set", "normalize_obs=true", "--set", "normalize_reward=true"],
    ),
    ("a2c-cartpole", "CartPole-v1", "a2c", 4000, []),
    ("a2c-pendulum", "Pendulum-v1", "a2c", 4000, []),
    ("dqn-cartpole", "CartPole-v1", "dqn", 5000, []),
    ("sac-pendulum", "Pendulum-v1", "sac", 600, []),
    ("td3-pendulum", "Pendulum-v1", "td3", 600, ["--set", "learning_starts=100"]),
    (
        "ddpg-pendulum",
        "Pendulum-v1",
        "ddpg",
        600,
        ["--set", "noise_type=ornstein-uhlenbeck", "--set", "learning_starts=100"],
    ),
    ("native-ppo-cartpole", "CartPole-v1", "ppo", 4096, ["--native"]),
    ("native-ppo-pendulum", "Pendulum-v1", "ppo", 4096, ["--native"]),
    ("native-dqn-cartpole", "CartPole-v1", "dqn", 5000, ["--native"]),
    ("native-sac-pendulum", "Pendulum-v1", "sac", 1000, ["--native", "--set", "learning_starts=100"]),
    (
        "native-ddpg-ou",
        "Pendulum-v1",
        "ddpg",
        1000,
        ["--native", "--set", "noise_type=ornstein-uhlenbeck", "--set", "learning_starts=100"],
    ),
    # The CNN path (uint8 frames, channels first, a torso shared by policy and value), on the tests' pixel env.
    (
        "ppo-pixels-cnn",
        "tests.envs.pixels:ReachSquare",
        "ppo",
        4096,
        ["--env-kwargs", "cells=5", "--set", "n_envs=8", "--set", "n_steps=128", "--set", "batch_size=256"]
        + ["--set", "n_epochs=4", "--set", "ent_coef=0.01", "--set", "net_arch=128"],
    ),
    # Corners the presets do not reach: one gradient step a call, Polyak targets, PPO's early stop.
    ("dqn-k1", "CartPole-v1", "dqn", 3000, ["--set", "gradient_steps=1", "--set", "train_freq=4"]),
    (
        "dqn-polyak-k1",
        "CartPole-v1",
        "dqn",
        3000,
        ["--set", "tau=0.5", "--set", "gradient_steps=1", "--set", "train_freq=4"],
    ),
    ("native-dqn-polyak", "CartPole-v1", "dqn", 3000, ["--native", "--set", "tau=0.5", "--set", "gradient_steps=2"]),
    ("ppo-target-kl-k2", "CartPole-v1", "ppo", 4096, ["--set", "target_kl=0.005", "--set", "n_epochs=2"]),
    (
        "td3-k8",
        "Pendulum-v1",
        "td3",
        600,
        ["--set", "gradient_steps=8", "--set", "train_freq=8", "--set", "learning_starts=100"],
    ),
]


def fingerprint(run_dir: Path) -> str:
    """A hash of every array in agent.npz (sorted by key) and the final mean reward."""
    digest = hashlib.sha256()
    with np.load(run_dir / "agent.npz", allow_pickle=False) as data:
        for key in sorted(data.files):
            if key.startswith(("net/", "opt/", "var/", "norm/")):
                digest.update(key.encode())
                digest.update(np.ascontiguousarray(data[key]).tobytes())
    result = json.loads((run_dir / "eval.json").read_text())
    return f"{digest.hexdigest()[:16]} eval {result['mean_reward']:.4f}"


def run_case(env: str, agent: str, steps: int, extra: list[str], seed: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "kerasdojo", "train", env, "--agent", agent, "--steps", str(steps)]
        cmd += ["--seed", str(seed), "--runs-dir", tmp, "--eval-every", "0", "--eval-episodes", "3", "-q", *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
        if proc.returncode != 0:
            return f"failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
        (run_dir,) = Path(tmp).iterdir()
        return fingerprint(run_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="labels of the cases to run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--twice", action="store_true", help="run each case twice and say whether it repeats")
    args = parser.parse_args()
    for label, env, agent, steps, extra in CASES:
        if args.only and label not in args.only:
            continue
        first = run_case(env, agent, steps, extra, args.seed)
        note = ""
        if args.twice:
            note = (
                "  (run twice: same)"
                if run_case(env, agent, steps, extra, args.seed) == first
                else "  (run twice: differs)"
            )
        print(f"{label:22s} {first}{note}", flush=True)


if __name__ == "__main__":
    main()
