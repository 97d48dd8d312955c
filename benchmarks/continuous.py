"""SAC and TD3 on Pendulum-v1, A2C on CartPole-v1 (kerasdojo presets), beside Stable-Baselines3 and SBX when installed.

SAC and TD3: 20,000 steps with their presets (RL Zoo's Pendulum-v1 values), a
10-episode deterministic evaluation every 1,000 steps: the first step and
training seconds at which it reaches -200, training steps/s and a final
100-episode evaluation. A2C: CartPole-v1 as ``benchmarks/cartpole.py`` does PPO
(20 episodes every 5,000 steps, solved at >= 475), for ``--a2c-steps`` steps
(RL Zoo trains 500,000; both libraries get the same budget). With ``--mujoco``
(and the ``mujoco`` extra installed): SAC on HalfCheetah-v5 for 100,000 steps,
final return and steps/s.

Training seconds are the wall time of the library's training loop minus
evaluation, compilation included; both libraries are evaluated by the same loop
on the same vector env and seeds; each (library, algorithm, seed) runs in a fresh
Python process, one at a time. SB3 and SBX (SB3 on JAX; it has no A2C) run on the
CPU with RL Zoo's hyperparameters; install them beside kerasdojo, never as
dependencies: ``pip install torch==2.13.0 stable-baselines3 sbx-rl``.

    python benchmarks/continuous.py                       # 5 seeds each, SB3 and SBX if installed
    python benchmarks/continuous.py --algos sac --seeds 2 --sb3-seeds 1 --no-sbx
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    fmt,
    kerasdojo_run,
    learning_tables,
    libraries,
    machine,
    median,
    peer,
    peer_algos,
    ratio_lines,
    run_worker,
    sb3_learn,
    today,
    update_section,
    versions,
)

EVAL_SEED = 10_000
FINAL_EPISODES = 100
# algo -> (env, total steps, eval every, eval episodes, threshold)
TASKS = {
    "sac": ("Pendulum-v1", 20_000, 1000, 10, -200.0),
    "td3": ("Pendulum-v1", 20_000, 1000, 10, -200.0),
    "a2c": ("CartPole-v1", 100_000, 5000, 20, 475.0),
    "sac-halfcheetah": ("HalfCheetah-v5", 100_000, 10_000, 10, float("inf")),
}


def kerasdojo_worker(task: str, seed: int, steps: int) -> dict:
    env_id, _, every, episodes, threshold = TASKS[task]
    return kerasdojo_run(
        env_id, task.split("-")[0], seed, every, episodes, threshold, FINAL_EPISODES, EVAL_SEED + 1, steps
    )


def peer_worker(lib: str, task: str, seed: int, steps: int) -> dict:
    """SB3 or SBX (``lib``) with the same RL Zoo hyperparameters."""
    import numpy as np
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.noise import NormalActionNoise

    env_id, _, every, episodes, threshold = TASKS[task]
    common = {"seed": seed, "verbose": 0, "device": "cpu"}
    if task == "sac":  # rl-baselines3-zoo hyperparams/sac.yml, Pendulum-v1
        model = peer(lib, "sac")("MlpPolicy", make_vec_env(env_id, n_envs=1, seed=seed), learning_rate=1e-3, **common)
    elif task == "td3":  # rl-baselines3-zoo hyperparams/td3.yml, Pendulum-v1
        model = peer(lib, "td3")(
            "MlpPolicy",
            make_vec_env(env_id, n_envs=1, seed=seed),
            gamma=0.98,
            buffer_size=200_000,
            learning_starts=10_000,
            action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)),
            train_freq=1,
            gradient_steps=1,
            learning_rate=1e-3,
            policy_kwargs={"net_arch": [400, 300]},
            **common,
        )
    elif task == "a2c":  # rl-baselines3-zoo hyperparams/a2c.yml, CartPole-v1
        model = peer(lib, "a2c")("MlpPolicy", make_vec_env(env_id, n_envs=8, seed=seed), ent_coef=0.0, **common)
    else:  # rl-baselines3-zoo hyperparams/sac.yml, MuJoCo defaults
        model = peer(lib, "sac")(
            "MlpPolicy", make_vec_env(env_id, n_envs=1, seed=seed), learning_starts=10_000, **common
        )
    return sb3_learn(model, env_id, steps, seed, every, episodes, threshold, FINAL_EPISODES, EVAL_SEED, EVAL_SEED + 1)


# The arithmetic of one gradient step (Pendulum: 3 observations, 1 action, batch 256, twin critics).
OBS, ACT, BATCH = 3, 1, 256
# task -> (hidden widths, updates before the first: learning_starts)
UPDATE_SHAPES = {"sac": ((256, 256), 100), "td3": ((400, 300), 10_000)}


def mlp_macs(sizes: list[int]) -> int:
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def update_flops(task: str) -> float:
    """Float operations of one gradient step, counting multiply-adds of the matrix products
    (2 FLOPs each; a backward pass is 2 forward passes, 1 when only the input gradient is
    needed). SAC: next action, 2 target critics, 2 critics forward and backward, then the actor's
    step through both critics. TD3: target actor, 2 target critics, 2 critics forward and backward,
    and every 2nd step the actor's through the first critic."""
    hidden, _ = UPDATE_SHAPES[task]
    critic = mlp_macs([OBS + ACT, *hidden, 1])
    if task == "sac":
        actor = mlp_macs([OBS, *hidden, 2 * ACT])
        macs = actor + 2 * critic + 6 * critic + (3 * actor + 4 * critic)
    else:
        actor = mlp_macs([OBS, *hidden, ACT])
        macs = actor + 2 * critic + 6 * critic + (3 * actor + 2 * critic) / 2
    return 2.0 * BATCH * macs


def matmul_rate() -> float:
    """This CPU's float32 matrix-product rate, FLOP/s: XLA on 1024 x 1024, best of 5 timings."""
    import time

    import numpy as np
    import tensorflow as tf

    n = 1024
    a = tf.constant(np.random.default_rng(0).random((n, n), np.float32))
    f = tf.function(lambda x: tf.matmul(tf.matmul(x, x), x), jit_compile=True)
    f(a).numpy()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(10):
            f(a).numpy()
        best = min(best, (time.perf_counter() - t0) / 10)
    return 4 * n**3 / best


def arithmetic_lines(results: dict[tuple[str, str], list[dict]], rate: float) -> list[str]:
    """The share of the arithmetic limit each library's median run reached on SAC and TD3."""
    lines = [
        "",
        f"Arithmetic limit: this CPU multiplies float32 matrices at {rate / 1e9:.0f} GFLOP/s (XLA, 1024 x 1024, "
        "best of 5). Share = FLOPs of the gradient steps taken / training seconds / that rate:",
        "",
    ]
    for task, (_, starts) in UPDATE_SHAPES.items():
        flops = update_flops(task)
        for lib in ("kerasdojo", "sbx", "sb3"):
            runs = results.get((lib, task))
            if not runs:
                continue
            share = median([(r["steps"] - starts) * flops / r["train_seconds"] / rate for r in runs])
            lines.append(
                f"- {task} {lib}: {flops / 1e6:.0f} MFLOP per gradient step, limit {rate / flops:,.0f} steps/s; "
                f"reached {share:.0%}"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sb3-seeds", type=int, default=None, help="seeds for SB3 and SBX (default: --seeds)")
    parser.add_argument("--algos", default="sac,td3,a2c")
    parser.add_argument("--a2c-steps", type=int, default=TASKS["a2c"][1])
    parser.add_argument("--mujoco", action="store_true", help="add SAC on HalfCheetah-v5 (mujoco extra)")
    parser.add_argument("--no-sb3", action="store_true", help="skip Stable-Baselines3 even if installed")
    parser.add_argument("--no-sbx", action="store_true", help="skip SBX (SB3 on JAX) even if installed")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--worker", nargs=4, metavar=("LIB", "TASK", "SEED", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        lib, task, seed, steps = args.worker
        if lib == "rate":
            print(json.dumps(matmul_rate()))
        elif lib == "kerasdojo":
            print(json.dumps(kerasdojo_worker(task, int(seed), int(steps))))
        else:
            print(json.dumps(peer_worker(lib, task, int(seed), int(steps))))
        return

    libs = libraries(args.no_sb3, args.no_sbx)
    tasks = args.algos.split(",") + (["sac-halfcheetah"] if args.mujoco else [])
    results: dict[tuple[str, str], list[dict]] = {}
    for task in tasks:
        steps = args.a2c_steps if task == "a2c" else TASKS[task][1]
        for lib in [lib for lib in libs if peer_algos(lib, [task])]:
            n_seeds = args.seeds if lib == "kerasdojo" or args.sb3_seeds is None else args.sb3_seeds
            for seed in range(n_seeds):
                res = json.loads(run_worker(Path(__file__), [lib, task, str(seed), str(steps)], timeout=3600))
                results.setdefault((lib, task), []).append(res)
                print(
                    f"{lib:9s} {task} seed {seed}: reached at {fmt(res['solve_step'])} steps / "
                    f"{fmt(res['solve_seconds'], '.1f')} s, {res['fps']:,.0f} steps/s, "
                    f"final {res['final_mean']:.1f} ± {res['final_std']:.1f}",
                    flush=True,
                )

    lines = [
        f"Machine: {machine()}. Date: {today()}. "
        f"{versions('tensorflow', 'keras', 'gymnasium', 'numpy', 'torch', 'stable_baselines3', 'sbx', 'jax')}.",
        "",
        "Per seed (reached = first periodic deterministic evaluation at the goal: Pendulum 10 episodes every "
        "1,000 steps, goal -200; CartPole 20 episodes every 5,000 steps, goal 475; s = training-loop wall "
        "seconds minus evaluation, compilation included; final = 100 episodes). "
        f"A2C trains {args.a2c_steps:,} steps. Medians count a seed that never got there as never:",
        "",
        *learning_tables(results, ".1f"),
    ]
    if len(libs) > 1:
        lines += ratio_lines(results, tasks, ".1f")
    if any(task in UPDATE_SHAPES for task in tasks):
        lines += arithmetic_lines(results, float(run_worker(Path(__file__), ["rate", "-", "0", "0"])))
    body = "## Continuous control and A2C (`benchmarks/continuous.py`)\n\n" + "\n".join(lines)
    print("\n" + body)
    if not args.no_write:
        update_section("continuous", body)


if __name__ == "__main__":
    main()
