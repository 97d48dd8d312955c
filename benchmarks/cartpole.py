"""CartPole-v1: kerasdojo PPO and DQN (presets) over five seeds, beside Stable-Baselines3 and SBX when installed.

For each seed: the first step count and training seconds at which a 20-episode
deterministic evaluation (every 5,000 steps) reaches >= 475, training env-steps
per second, and a final 100-episode evaluation. Training seconds are the wall
time of the library's training loop (environment steps, updates, compilation,
its own logging) minus evaluation, not model construction, on both sides. Both
libraries are evaluated by the same loop on the same vector env and seeds. Each
(library, algorithm, seed) runs in a fresh Python process, one at a time. Median
solve times count a seed that never solved as infinitely slow.

SB3 and SBX (SB3 on JAX, every update compiled by XLA) run with RL Zoo's
CartPole-v1 hyperparameters on the CPU. Install them beside kerasdojo, never as
dependencies: ``pip install torch==2.13.0 stable-baselines3 sbx-rl``.
kerasdojo runs its presets unchanged, which differ from the peers in three ways: DQN is
Double DQN (kerasdojo's default; SB3 and SBX have plain DQN only); DQN's 128 gradient
steps run in a thread beside the next 256 env steps (``overlap_update``), which act with
the weights from before them; and PPO's 8 CartPoles step through Gymnasium's vectorised
CartPole implementation (the peers use a DummyVecEnv of single envs; DQN's one env steps
alone, as theirs).

    python benchmarks/cartpole.py                 # 5 seeds, both algorithms, SB3 and SBX if installed
    python benchmarks/cartpole.py --seeds 2 --algos ppo --no-sb3
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
    peer,
    peer_algos,
    ratio_lines,
    run_worker,
    sb3_learn,
    today,
    update_section,
    versions,
)

ENV_ID = "CartPole-v1"
EVAL_EVERY = 5000
EVAL_EPISODES = 20
FINAL_EPISODES = 100
SOLVED = 475.0
EVAL_SEED = 10_000


# --------------------------------------------------------------------------- workers


def kerasdojo_worker(algo: str, seed: int) -> dict:
    return kerasdojo_run(ENV_ID, algo, seed, EVAL_EVERY, EVAL_EPISODES, SOLVED, FINAL_EPISODES, EVAL_SEED + 1)


def peer_worker(lib: str, algo: str, seed: int) -> dict:
    """SB3 or SBX (``lib``) with the same RL Zoo hyperparameters."""
    from stable_baselines3.common.env_util import make_vec_env

    def linear(value: float):
        return lambda progress_remaining: progress_remaining * value

    if algo == "ppo":  # rl-baselines3-zoo hyperparams/ppo.yml, CartPole-v1
        env = make_vec_env(ENV_ID, n_envs=8, seed=seed)
        model = peer(lib, "ppo")(
            "MlpPolicy",
            env,
            n_steps=32,
            batch_size=256,
            gae_lambda=0.8,
            gamma=0.98,
            n_epochs=20,
            ent_coef=0.0,
            learning_rate=linear(1e-3),
            clip_range=linear(0.2),
            seed=seed,
            verbose=0,
            device="cpu",
        )
        total = 100_000
    else:  # rl-baselines3-zoo hyperparams/dqn.yml, CartPole-v1
        env = make_vec_env(ENV_ID, n_envs=1, seed=seed)
        model = peer(lib, "dqn")(
            "MlpPolicy",
            env,
            learning_rate=2.3e-3,
            batch_size=64,
            buffer_size=100_000,
            learning_starts=1000,
            gamma=0.99,
            target_update_interval=10,
            train_freq=256,
            gradient_steps=128,
            exploration_fraction=0.16,
            exploration_final_eps=0.04,
            policy_kwargs={"net_arch": [256, 256]},
            seed=seed,
            verbose=0,
            device="cpu",
        )
        total = 50_000

    return sb3_learn(
        model, ENV_ID, total, seed, EVAL_EVERY, EVAL_EPISODES, SOLVED, FINAL_EPISODES, EVAL_SEED, EVAL_SEED + 1
    )


# --------------------------------------------------------------------------- driver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--algos", default="ppo,dqn")
    parser.add_argument("--no-sb3", action="store_true", help="skip Stable-Baselines3 even if installed")
    parser.add_argument("--no-sbx", action="store_true", help="skip SBX (SB3 on JAX) even if installed")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--worker", nargs=3, metavar=("LIB", "ALGO", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        lib, algo, seed = args.worker
        res = kerasdojo_worker(algo, int(seed)) if lib == "kerasdojo" else peer_worker(lib, algo, int(seed))
        print(json.dumps(res))
        return

    libs = libraries(args.no_sb3, args.no_sbx)
    results: dict[tuple[str, str], list[dict]] = {}
    for algo in args.algos.split(","):
        for lib in [lib for lib in libs if peer_algos(lib, [algo])]:
            for seed in range(args.seeds):
                res = json.loads(run_worker(Path(__file__), [lib, algo, str(seed)]))
                results.setdefault((lib, algo), []).append(res)
                print(
                    f"{lib:9s} {algo} seed {seed}: solved at {fmt(res['solve_step'])} steps / "
                    f"{fmt(res['solve_seconds'], '.2f')} s, {res['fps']:,.0f} steps/s, "
                    f"final {res['final_mean']:.1f} ± {res['final_std']:.1f}",
                    flush=True,
                )

    lines = [
        f"Machine: {machine()}. Date: {today()}. "
        f"{versions('tensorflow', 'keras', 'gymnasium', 'numpy', 'torch', 'stable_baselines3', 'sbx', 'jax')}.",
        "",
        "Per seed (time = training-loop wall seconds minus evaluation; solved = first 20-episode deterministic "
        f"evaluation >= {SOLVED:.0f} (the goal), evaluated every {EVAL_EVERY:,} steps; final = 100 episodes). "
        "kerasdojo DQN is Double DQN (its default), the peers' is plain DQN, and overlaps its update with "
        "the next env steps; kerasdojo PPO steps Gymnasium's vectorised CartPole, the peers a DummyVecEnv. "
        "Median solve times count an unsolved seed as never:",
        "",
        *learning_tables(results, ".2f"),
    ]
    if len(libs) > 1:
        lines += ratio_lines(results, args.algos.split(","), ".2f")
    body = "## CartPole-v1: PPO and DQN presets (`benchmarks/cartpole.py`)\n\n" + "\n".join(lines)
    print("\n" + body)
    if not args.no_write:
        update_section("cartpole", body)


if __name__ == "__main__":
    main()
