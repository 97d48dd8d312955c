"""--native: PPO and DQN compiled end to end on TensorFlow-native envs, beside kerasdojo's
Gymnasium path, Stable-Baselines3 and SBX (when installed), with the same presets.

Learning (five seeds each, one fresh process per run, one at a time): the first step
count and training seconds at which a 20-episode deterministic evaluation on
Gymnasium's own env (every 5,000 steps) reaches the goal, steps/s over the whole run,
and a final 100-episode evaluation. Training seconds are the training loop's wall
time minus evaluation, *compilation included*. ``native`` runs with no XLA cache
(every seed compiles from scratch); ``native-warm`` runs the same seeds again with a
filled persistent XLA cache (what the second run of a preset costs on a machine).
DQN's CartPole preset overlaps its update with the next env steps on the Gymnasium path
(``overlap_update``); ``--native`` collects, then updates, in one compiled call.

Throughput: env steps/s of one compiled PPO iteration with the CartPole preset and
with larger batches of envs, and of the rollout alone (policy + env, no update) for
64 and 1,024 envs: the ceiling a compiled trainer approaches.

    python benchmarks/native.py                       # everything, SB3 and SBX if installed
    python benchmarks/native.py --seeds 2 --cases ppo-cartpole --no-sb3 --no-sbx
    python benchmarks/native.py --throughput-only --envs 4096   # e.g. on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    fmt,
    kerasdojo_run,
    learning_tables,
    libraries,
    machine,
    markdown_table,
    median,
    median_solve,
    peer,
    run_worker,
    sb3_learn,
    today,
    update_section,
    versions,
)

EVAL_EVERY = 5000
EVAL_EPISODES = 20
FINAL_EPISODES = 100
EVAL_SEED = 10_000
CASES = {  # name: (agent, env, goal)
    "ppo-cartpole": ("ppo", "CartPole-v1", 475.0),
    "ppo-pendulum": ("ppo", "Pendulum-v1", -200.0),
    "dqn-cartpole": ("dqn", "CartPole-v1", 475.0),
    "sac-pendulum": ("sac", "Pendulum-v1", -200.0),
}
# Off-policy cases as benchmarks/continuous.py measures them: (steps, eval every, eval episodes).
# The preset's 20,000 steps cut to 8,000: every seed reaches -200 within 3,000-5,000 steps.
OFF_POLICY = {"sac-pendulum": (8000, 1000, 10)}


# --------------------------------------------------------------------------- workers


def kerasdojo_worker(lib: str, case: str, seed: int) -> dict:
    agent, env_id, goal = CASES[case]
    steps, every, episodes = OFF_POLICY.get(case, (None, EVAL_EVERY, EVAL_EPISODES))
    return kerasdojo_run(
        env_id,
        agent,
        seed,
        every,
        episodes,
        goal,
        FINAL_EPISODES,
        EVAL_SEED + 1,
        total_steps=steps,
        native=lib.startswith("native"),
    )


def peer_worker(lib: str, case: str, seed: int) -> dict:
    """SB3 or SBX (``lib``) on ``case``, with the same hyperparameters as kerasdojo's preset."""
    agent, env_id, goal = CASES[case]
    if case in OFF_POLICY:  # the same RL Zoo presets as benchmarks/continuous.py
        from continuous import peer_worker as continuous_peer

        return continuous_peer(lib, agent, seed, OFF_POLICY[case][0])
    if env_id == "CartPole-v1":  # the same RL Zoo presets as benchmarks/cartpole.py
        from cartpole import peer_worker as cartpole_peer

        return cartpole_peer(lib, agent, seed)
    from stable_baselines3.common.env_util import make_vec_env

    # kerasdojo's Pendulum-v1 PPO preset: RL Zoo's values without gSDE (see presets.py).
    env = make_vec_env(env_id, n_envs=4, seed=seed)
    model = peer(lib, "ppo")(
        "MlpPolicy",
        env,
        n_steps=1024,
        gae_lambda=0.95,
        gamma=0.9,
        n_epochs=10,
        ent_coef=0.0,
        learning_rate=1e-3,
        clip_range=0.2,
        seed=seed,
        verbose=0,
        device="cpu",
    )
    return sb3_learn(
        model, env_id, 100_000, seed, EVAL_EVERY, EVAL_EPISODES, goal, FINAL_EPISODES, EVAL_SEED, EVAL_SEED + 1
    )


def throughput_worker(n_envs_list: list[int]) -> dict:
    """Steps/s of compiled PPO iterations (preset and larger batches) and of rollouts alone."""
    import time

    from kerasdojo import backend
    from kerasdojo.envs import native
    from kerasdojo.training.session import TrainSpec, start

    tf = backend.tf()
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    out: dict = {"device": device, "iterations": [], "rollouts": []}
    configs = [("CartPole preset (8 envs x 32 steps, 20 epochs of 256)", {})]
    for n in n_envs_list:
        configs.append(
            (
                f"{n} envs x 32 steps, 4 epochs of {n * 32 // 4:,}",
                {"n_envs": n, "n_steps": 32, "n_epochs": 4, "batch_size": n * 32 // 4},
            )
        )
    with tempfile.TemporaryDirectory() as tmp:
        for label, overrides in configs:
            spec = TrainSpec("CartPole-v1", "ppo", native=True, overrides=overrides, save_every=0)
            session = start(spec, tmp)
            agent, env = session.agent, session.env
            agent.begin(env)
            t0 = time.perf_counter()
            steps = agent.learn(env, 0, 10**9)[0]
            compile_s = time.perf_counter() - t0
            calls = max(3, int(2e6 // steps)) if device == "GPU" else max(3, int(3e5 // steps))
            t0 = time.perf_counter()
            for i in range(calls):
                agent.learn(env, steps * (i + 1), 10**9)
            seconds = time.perf_counter() - t0
            out["iterations"].append(
                {"config": label, "steps_per_s": steps * calls / seconds, "first_call_s": compile_s}
            )
            session.run.close()
    keras = backend.keras()
    for n in sorted({64, 1024, *n_envs_list}):
        env = native.make("CartPole-v1")
        policy = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(64, "tanh"), keras.layers.Dense(64, "tanh"), keras.layers.Dense(2)]
        )
        rng = tf.random.Generator.from_seed(0)
        steps_per_call = 1000

        @tf.function(jit_compile=True, autograph=False)
        def rollout(state, t, env=env, policy=policy, rng=rng, steps_per_call=steps_per_call):
            def body(i, state, t, total):
                logits = policy(env.observe(state))
                u = rng.uniform(tf.shape(logits), minval=1e-20, maxval=1.0)
                actions = tf.argmax(logits - tf.math.log(-tf.math.log(u)), axis=1, output_type=tf.int32)
                step = native.step(env, state, t, actions, rng)
                return i + 1, step.state, step.t, total + tf.reduce_sum(step.reward)

            return tf.while_loop(lambda i, *_: i < steps_per_call, body, (0, state, t, tf.constant(0.0)))[3]

        state, t = env.initial(rng, n), tf.zeros([n], tf.int32)
        rollout(state, t).numpy()
        calls = 3 if n >= 1024 else 10
        t0 = time.perf_counter()
        for _ in range(calls):
            rollout(state, t).numpy()
        seconds = time.perf_counter() - t0
        out["rollouts"].append({"n_envs": n, "steps_per_s": n * steps_per_call * calls / seconds})
    return out


# --------------------------------------------------------------------------- driver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--no-sb3", action="store_true", help="skip Stable-Baselines3 even if installed")
    parser.add_argument("--no-sbx", action="store_true", help="skip SBX (SB3 on JAX) even if installed")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument(
        "--libs", default="native,native-warm,kerasdojo,sb3,sbx", help="which to run (peers only when installed)"
    )
    parser.add_argument("--no-throughput", action="store_true", help="skip the throughput measurement")
    parser.add_argument("--section", help="the RESULTS.md section to write (default: native)")
    parser.add_argument("--throughput-only", action="store_true")
    parser.add_argument("--envs", default="64,256", help="env counts for the throughput of larger batches")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        lib, *rest = args.worker
        if lib == "throughput":
            print(json.dumps(throughput_worker([int(n) for n in rest[0].split(",")])))
        elif lib in ("sb3", "sbx"):
            print(json.dumps(peer_worker(lib, rest[0], int(rest[1]))))
        else:
            print(json.dumps(kerasdojo_worker(lib, rest[0], int(rest[1]))))
        return

    lines = [
        f"Machine: {machine()}. Date: {today()}. "
        f"{versions('tensorflow', 'keras', 'gymnasium', 'numpy', 'torch', 'stable_baselines3', 'sbx', 'jax')}.",
        "",
    ]
    if not args.no_throughput:
        os.environ["KERASDOJO_XLA_CACHE"] = "0"  # the first call's time is a compilation
        throughput = json.loads(run_worker(Path(__file__), ["throughput", args.envs]))
        print(json.dumps(throughput, indent=1), flush=True)
        rows = [[r["config"], f"{r['steps_per_s']:,.0f}", f"{r['first_call_s']:.2f}"] for r in throughput["iterations"]]
        lines += [
            f"Throughput on the {throughput['device']} (PPO on native CartPole-v1, one compiled iteration per call):",
            "",
            markdown_table(["config", "env steps/s", "first call s (trace + compile)"], rows),
            "",
            "Rollout alone (64x64 tanh policy sampling + env step + autoreset, 1,000 steps per XLA call):",
            "",
            markdown_table(
                ["envs", "env steps/s"],
                [[f"{r['n_envs']:,}", f"{r['steps_per_s']:,.0f}"] for r in throughput["rollouts"]],
            ),
        ]
    if not args.throughput_only:
        results: dict[tuple[str, str], list[dict]] = {}
        wanted = args.libs.split(",")
        libs = [lib for lib in ["native", "native-warm", *libraries(args.no_sb3, args.no_sbx)] if lib in wanted]
        cache = tempfile.mkdtemp(prefix="kerasdojo-xla-bench-")
        for case in args.cases.split(","):
            for lib in libs:
                # native: no cache, every seed compiles; native-warm: the cache filled by its first seed's run.
                os.environ["KERASDOJO_XLA_CACHE"] = cache if lib == "native-warm" else "0"
                if lib == "native-warm":
                    run_worker(Path(__file__), ["native", case, "0"])  # fill the cache
                for seed in range(args.seeds):
                    res = json.loads(run_worker(Path(__file__), [lib, case, str(seed)]))
                    results.setdefault((lib, case), []).append(res)
                    print(
                        f"{lib:11s} {case} seed {seed}: goal at {fmt(res['solve_step'])} steps / "
                        f"{fmt(res['solve_seconds'], '.2f')} s, {res['fps']:,.0f} steps/s, "
                        f"final {res['final_mean']:.1f} ± {res['final_std']:.1f}",
                        flush=True,
                    )
        os.environ.pop("KERASDOJO_XLA_CACHE", None)
        lines += [
            "",
            "Learning, per seed (goal: CartPole 475, Pendulum -200, first 20-episode deterministic evaluation on "
            f"Gymnasium's env, every {EVAL_EVERY:,} steps; off-policy cases as benchmarks/continuous.py: "
            "10 episodes every 1,000 steps over 8,000 steps; s = training-loop wall seconds minus evaluation, "
            "compilation included; final = 100 episodes; kerasdojo = the Gymnasium path, same preset). "
            "Medians count a seed that never got there as never:",
            "",
            *learning_tables(results),
            "",
            "Ratios (medians):",
            "",
        ]
        for case, base_lib, base_name in [
            (case, base_lib, base_name)
            for case in args.cases.split(",")
            for base_lib, base_name in (("kerasdojo", "kerasdojo (Gymnasium)"), ("sbx", "SBX"), ("sb3", "SB3"))
            if (base_lib, case) in results
        ]:
            base = results[(base_lib, case)]
            for lib in [lib for lib in ("native", "native-warm") if (lib, case) in results]:
                ours = results[(lib, case)]
                fps = median([r["fps"] for r in ours]) / median([r["fps"] for r in base])
                t_ours, t_base = (
                    median_solve([r["solve_seconds"] for r in ours]),
                    median_solve([r["solve_seconds"] for r in base]),
                )
                goal = (
                    f"time to goal {t_ours:.2f} s vs {t_base:.2f} s (x{t_ours / t_base:.2f})"
                    if t_ours is not None and t_base is not None
                    else f"time to goal {fmt(t_ours, '.2f', 'never')} s vs {fmt(t_base, '.2f', 'never')} s"
                )
                lines.append(f"- {case}, {lib} / {base_name}: steps/s x{fps:.1f}; {goal}")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        update_section(args.section or ("native" if not args.throughput_only else "native-throughput"), text)


if __name__ == "__main__":
    main()
