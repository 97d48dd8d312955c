"""Atari: training speed of PPO and DQN on Breakout beside Stable-Baselines3, and a PPO learning run.

``speed`` (the default): kerasdojo's Breakout presets (RL Zoo's Atari values) for a
fixed ``--steps`` (100,000) with no evaluation, training steps/s = steps / training
seconds (start-up and compilation included). SB3 in the same run, when installed
beside kerasdojo: ``make_atari_env`` (``AtariWrapper``) + ``VecFrameStack(4)`` on
``BreakoutNoFrameskip-v4``, the env RL Zoo trains, with the Zoo's hyperparameters, on
the CPU. DQN's preset waits 100,000 steps before learning, which would time acting
alone, so both libraries run DQN with ``learning_starts=--dqn-learning-starts``
(10,000). Each (library, algorithm) runs in a fresh Python process, one at a time.
SB3 needs ``pip install torch==2.13.0 stable-baselines3 opencv-python-headless``.

``learn``: PPO on ALE/Breakout-v5 for ``--learn-steps`` (1,000,000), evaluated every
``--eval-every`` steps over 10 whole games (raw scores, sticky actions), then a final
evaluation of 30 games with sampled actions and 10 with greedy ones; writes the curve to
``benchmarks/atari_breakout_ppo.png``. ``--from-run DIR`` reports a run made with
``kerasdojo train ALE/Breakout-v5 --agent ppo --eval-every 100000`` (and resumed) instead;
``--sb3 DIR`` draws and reports ``sb3-learn`` runs beside them.

``sb3-learn``: the reference, SB3's PPO on BreakoutNoFrameskip-v4 with RL Zoo's
hyperparameters for ``--learn-steps``, evaluated the same way (10 whole games with sampled
actions every ``--eval-every`` steps, then 30 sampled and 10 greedy games, seed 1000); it
writes progress.csv, model.zip and sb3_eval.json into ``--runs``.

    python benchmarks/atari.py                   # speed, 100k steps each
    python benchmarks/atari.py learn             # the 1M-step learning run (about 30 min on 2 cores)
    python benchmarks/atari.py learn --from-run runs/ALE-Breakout-v5__ppo__s0__... --compare OLD_RUN=label
    python benchmarks/atari.py sb3-learn --runs sb3_s0    # SB3's PPO for 1M steps (about 55 min on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HERE, machine, markdown_table, run_worker, today, update_section, versions  # noqa: E402

ENV = "ALE/Breakout-v5"
SB3_ENV = "BreakoutNoFrameskip-v4"


def kerasdojo_speed(algo: str, steps: int, dqn_learning_starts: int) -> dict:
    import tempfile

    from kerasdojo.training.session import TrainSpec, start

    overrides = {"learning_starts": dqn_learning_starts} if algo == "dqn" else {}
    with tempfile.TemporaryDirectory() as tmp:
        spec = TrainSpec(
            ENV, algo, seed=0, total_steps=steps, eval_every=0, eval_episodes=1, save_every=0, overrides=overrides
        )
        t0 = time.perf_counter()
        session = start(spec, tmp)
        summary = session.train()
        wall = time.perf_counter() - t0
    return {"steps": summary.steps, "train_seconds": summary.train_seconds_total, "wall": wall}


def sb3_env(n_envs: int, seed: int):
    """SB3's Atari env as RL Zoo trains it: ``make_atari_env`` (Monitor, then ``AtariWrapper``) + 4 stacked frames.
    The Monitor sits under the wrapper, so ``evaluate_policy`` reads whole-game raw scores from it."""
    import ale_py
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    return VecFrameStack(make_atari_env(SB3_ENV, n_envs=n_envs, seed=seed), n_stack=4)


def sb3_ppo(seed: int):
    """SB3's PPO with RL Zoo's Atari hyperparameters (8 envs, linear lr and clip schedules), on the CPU."""
    from stable_baselines3 import PPO

    def linear(x: float):
        return lambda progress: progress * x

    return PPO(
        "CnnPolicy",
        sb3_env(8, seed),
        n_steps=128,
        n_epochs=4,
        batch_size=256,
        learning_rate=linear(2.5e-4),
        clip_range=linear(0.1),
        vf_coef=0.5,
        ent_coef=0.01,
        device="cpu",
        seed=seed,
    )


def sb3_learn(args: argparse.Namespace) -> None:
    """SB3's PPO on BreakoutNoFrameskip-v4 for ``--learn-steps``, evaluated as kerasdojo's runs are: 10 whole games
    with sampled actions every ``--eval-every`` steps, then 30 sampled and 10 greedy games (seed 1000). Writes
    progress.csv (SB3's logger: rollout/ep_rew_mean over whole games, eval/mean_reward) and sb3_eval.json."""
    import numpy as np
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.logger import configure

    out = Path(args.runs or f"sb3_breakout_ppo_s{args.seed}")
    out.mkdir(parents=True, exist_ok=True)
    model = sb3_ppo(seed=args.seed)
    model.set_logger(configure(str(out), ["csv", "stdout"]))
    every = EvalCallback(
        sb3_env(1, 1000), n_eval_episodes=10, eval_freq=max(args.eval_every // 8, 1), deterministic=False, verbose=0
    )
    start = time.perf_counter()
    model.learn(args.learn_steps, callback=every)
    seconds = time.perf_counter() - start
    model.save(out / "model.zip")
    result = {"steps": int(model.num_timesteps), "train_seconds": seconds, "seed": args.seed, "env": SB3_ENV}
    for name, episodes, greedy in (("sampled", 30, False), ("greedy", 10, True)):
        scores, lengths = evaluate_policy(
            model, sb3_env(1, 1000), n_eval_episodes=episodes, deterministic=greedy, return_episode_rewards=True
        )
        # Monitor sits under the frame skip: its lengths are emulator frames (4 per agent step).
        result[name] = {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "frames": float(np.mean(lengths))}
        print(f"SB3 PPO final, {episodes} games, {name}: {result[name]['mean']:.1f} +- {result[name]['std']:.1f}")
    (out / "sb3_eval.json").write_text(json.dumps(result, indent=2))


def sb3_speed(algo: str, steps: int, dqn_learning_starts: int) -> dict:
    from stable_baselines3 import DQN

    start = time.perf_counter()
    if algo == "ppo":
        model = sb3_ppo(seed=0)
    else:
        model = DQN(
            "CnnPolicy",
            sb3_env(1, 0),
            buffer_size=100_000,
            learning_rate=1e-4,
            batch_size=32,
            learning_starts=dqn_learning_starts,
            target_update_interval=1000,
            train_freq=4,
            gradient_steps=1,
            exploration_fraction=0.1,
            exploration_final_eps=0.01,
            device="cpu",
            seed=0,
        )
    learn_start = time.perf_counter()
    model.learn(steps)
    end = time.perf_counter()
    return {"steps": steps, "train_seconds": end - learn_start, "wall": end - start}


def speed(args: argparse.Namespace) -> None:
    libs = ["kerasdojo"]
    try:
        import stable_baselines3  # noqa: F401

        libs.append("sb3")
    except ImportError:
        print("stable-baselines3 is not installed: kerasdojo only")
    results: dict[tuple[str, str], dict] = {}
    for algo in args.algos:
        for lib in libs:
            steps = args.dqn_steps if algo == "dqn" and args.dqn_steps else args.steps
            line = run_worker(Path(__file__), [lib, algo, str(steps), str(args.dqn_learning_starts)], timeout=7200)
            results[(lib, algo)] = json.loads(line)
            r = results[(lib, algo)]
            print(
                f"{lib:9s} {algo}: {r['steps']:,} steps, {r['train_seconds']:.1f} s training, "
                f"{r['steps'] / r['train_seconds']:,.0f} steps/s (wall {r['wall']:.1f} s)",
                flush=True,
            )
    rows = []
    for algo in args.algos:
        ours = results[("kerasdojo", algo)]
        fps = ours["steps"] / ours["train_seconds"]
        row = [algo.upper(), f"{fps:,.0f}", f"{ours['train_seconds']:.1f}"]
        if ("sb3", algo) in results:
            sb3 = results[("sb3", algo)]
            sfps = sb3["steps"] / sb3["train_seconds"]
            row += [f"{sfps:,.0f}", f"{sb3['train_seconds']:.1f}", f"x{fps / sfps:.2f}"]
        else:
            row += ["-", "-", "-"]
        rows.append(row)
    libs_line = versions("tensorflow", "keras", "gymnasium", "ale_py", "stable_baselines3", "torch")
    body = "\n".join(
        [
            "## Atari speed: Breakout, RL Zoo's Atari presets, fixed steps (`benchmarks/atari.py`)",
            "",
            f"{today()}; {machine()}; {libs_line}.",
            f"{args.steps:,} steps per PPO run, {args.dqn_steps or args.steps:,} per DQN run, no evaluation; "
            f"DQN with learning_starts={args.dqn_learning_starts:,} "
            "on both sides (the preset's 100,000 would time acting alone). kerasdojo: ALE/Breakout-v5 through "
            f"ale-py's vector env; SB3: {SB3_ENV} with make_atari_env + VecFrameStack(4), CPU.",
            "",
            markdown_table(["agent", "kerasdojo steps/s", "kerasdojo s", "SB3 steps/s", "SB3 s", "ratio"], rows),
        ]
    )
    update_section("atari-speed", body)
    print(body)


def learn(args: argparse.Namespace) -> None:
    """Train PPO on Breakout (or, with ``--from-run``, take finished runs) and report it."""
    import tempfile

    from kerasdojo.training.session import TrainSpec, start

    compare = [(Path(p.split("=", 1)[0]), p.split("=", 1)[1] if "=" in p else Path(p).name) for p in args.compare]
    if args.from_run:
        report([Path(p) for p in args.from_run], compare, [Path(p) for p in args.sb3])
        return
    out_dir = Path(args.runs) if args.runs else Path(tempfile.mkdtemp())
    spec = TrainSpec(
        ENV, "ppo", seed=args.seed, total_steps=args.learn_steps, eval_every=args.eval_every, eval_episodes=10
    )
    session = start(spec, out_dir)
    print("run directory:", session.run.path, flush=True)
    session.train()
    report([session.run.path], compare, [Path(p) for p in args.sb3])


def curves(run: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """A run's ``rollout/ep_rew_mean`` and in-run evaluation curves from its progress.csv."""
    from kerasdojo.runs import read_progress

    rows = read_progress(run / "progress.csv")
    evals = [(int(r["time/total_timesteps"]), float(r["eval/mean_reward"])) for r in rows if r.get("eval/mean_reward")]
    train = [
        (int(r["time/total_timesteps"]), float(r["rollout/ep_rew_mean"]))
        for r in rows
        if r.get("rollout/ep_rew_mean") not in (None, "", "nan")
    ]
    return train, evals


def seed_average(setting: str, scores: dict[int, float]) -> list[str]:
    """The RESULTS line of one setting's final 30-game means across seeds (none for a single seed)."""
    import numpy as np

    if len(scores) < 2:
        return []
    means = np.array(list(scores.values()))
    each = ", ".join(f"seed {seed}: {m:.1f}" for seed, m in scores.items())
    return [
        f"- **Across {len(scores)} seeds, {setting}**: final 30-game sampled mean **{means.mean():.1f}** "
        f"(seed-to-seed sample std {means.std(ddof=1):.1f}; {each})."
    ]


def report(runs: list[Path], compare: list[tuple[Path, str]] = (), sb3: list[Path] = ()) -> None:
    """The curves (PNG), a final evaluation of 30 games per run and the RESULTS section of PPO Breakout
    runs; ``compare``: (run, label) pairs of earlier runs drawn beside them, curves only (not evaluated);
    ``sb3``: directories of ``sb3-learn`` runs, drawn and reported with the evaluation they made themselves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from kerasdojo.agents.speed import resolve_precision
    from kerasdojo.runs import read_progress
    from kerasdojo.training.session import evaluate_run, open_run
    from kerasdojo.training.spec import greedy_evaluation

    fig, ax = plt.subplots(figsize=(13, 5.5))
    lines = []
    # (precision, sticky, budget, stopped at or 0) -> {seed: final mean}
    finals: dict[tuple[str, float, int, int], dict[int, float]] = {}
    for i, run in enumerate(runs):
        rows = read_progress(run / "progress.csv")
        _, spec, cfg = open_run(run)
        steps, seconds = int(rows[-1]["time/total_timesteps"]), float(rows[-1]["time/train_seconds"])
        # eval.json comes with the final evaluation: a run stopped early (Ctrl-C) has none.
        in_run = json.loads((run / "eval.json").read_text()) if (run / "eval.json").exists() else {}
        # Runs before eval.json said it: what precision=auto picks on this machine (the one that trained them).
        math = in_run.get("precision") or resolve_precision(cfg.precision)[0]
        how = "greedy" if in_run.get("deterministic", greedy_evaluation(spec, cfg)) else "sampled"
        final = evaluate_run(run, episodes=30, seed=1000).result  # sampled actions, as RL Zoo
        greedy = evaluate_run(run, episodes=10, seed=1000, deterministic=True).result
        train, evals = curves(run)
        c = plt.cm.tab20(2 * i % 20)
        sticky = float(spec.env_kwargs.get("repeat_action_probability", 0.25))
        # Finished runs by budget; runs stopped early (Ctrl-C) apart, by where they stopped (to 100k steps).
        stopped = 0 if steps >= cfg.total_steps else round(steps, -5)
        finals.setdefault((math, sticky, cfg.total_steps, stopped), {})[spec.seed] = final.mean_reward
        name = f"{math}, seed {spec.seed}" + ("" if sticky == 0.25 else f", sticky actions {sticky:g}")
        if cfg.total_steps > steps:  # a longer run stopped early (Ctrl-C): its schedules span the whole budget
            name += f", stopped at {steps / 1e6:.1f}M of {cfg.total_steps / 1e6:g}M (lr and clip schedules over it)"
        if train:
            ax.plot(*zip(*train, strict=True), lw=1, alpha=0.5, c=c)
        if evals:
            ax.plot(*zip(*evals, strict=True), "o-", lw=2, c=c, label=name)
        ax.plot([steps], [final.mean_reward], "s", ms=9, c=c, mec="k", label=None if evals else name)
        curve = ", ".join(f"{s // 1000}k: {v:.1f}" for s, v in evals)
        lines += [
            f"- **{name}** (`{run.name}`): {steps:,} steps in {seconds / 60:.1f} min of training "
            f"({steps / seconds:,.0f} steps/s). Evaluations during training (10 whole games, raw score, sticky "
            f"actions {sticky:g}, {how} actions): {curve}. `rollout/ep_rew_mean` at the end: "
            f"{float(train[-1][1]) if train else float('nan'):.2f}. Final agent, 30 games with sampled actions "
            f"(RL Zoo's Atari convention): **{final.mean_reward:.1f} ± {final.std_reward:.1f}**; 10 games with "
            f"greedy actions: {greedy.mean_reward:.1f} ± {greedy.std_reward:.1f} (mean length "
            f"{greedy.mean_ep_length:,.0f} steps against {final.mean_ep_length:,.0f}).",
        ]
    for (math, sticky, budget, stopped), scores in finals.items():
        at = f", stopped at {stopped / 1e6:.1f}M" if stopped else ""
        lines += seed_average(f"{math}, sticky actions {sticky:g}, {budget:,}-step budget{at}", scores)
    sb3_finals = {}
    for j, run in enumerate(sb3):
        done = json.loads((run / "sb3_eval.json").read_text())
        train, evals = curves(run)
        c = plt.cm.tab20b(4 * j % 20)
        name = f"SB3 PPO, {done['env']}, seed {done['seed']}"
        if train:
            ax.plot(*zip(*train, strict=True), lw=1, ls=":", alpha=0.6, c=c)
        if evals:
            ax.plot(*zip(*evals, strict=True), "^--", lw=1.5, c=c, label=name)
        ax.plot([done["steps"]], [done["sampled"]["mean"]], "s", ms=9, c=c, mec="k", label=None if evals else name)
        sb3_finals[done["seed"]] = done["sampled"]["mean"]
        curve = ", ".join(f"{s // 1000}k: {v:.1f}" for s, v in evals)
        lines.append(
            f"- **{name}** (`{run.name}`, `benchmarks/atari.py sb3-learn`: RL Zoo's hyperparameters, `AtariWrapper`, "
            f"sticky actions 0, float32 on the CPU): {done['steps']:,} steps in {done['train_seconds'] / 60:.1f} min "
            f"({done['steps'] / done['train_seconds']:,.0f} steps/s, evaluations included). Evaluations during "
            f"training (10 whole games, sampled actions): {curve}. `rollout/ep_rew_mean` at the end: "
            f"{float(train[-1][1]) if train else float('nan'):.2f}. Final agent, 30 games with sampled actions: "
            f"**{done['sampled']['mean']:.1f} ± {done['sampled']['std']:.1f}**; 10 greedy games: "
            f"{done['greedy']['mean']:.1f} ± {done['greedy']['std']:.1f}."
        )
    lines += seed_average("SB3 PPO", sb3_finals)
    for j, (run, label) in enumerate(compare):
        train, evals = curves(run)
        c = plt.cm.tab20((2 * (len(runs) + j) + 1) % 20)
        if train:
            ax.plot(*zip(*train, strict=True), lw=1, alpha=0.4, c=c, label=None if evals else label)
        if evals:
            ax.plot(*zip(*evals, strict=True), "o--", lw=1.5, c=c, label=label)
    ax.axhline(20, ls="--", c="gray", lw=1, label="target 20")
    ax.set_xlabel("env steps")
    ax.set_ylabel("game score")
    ax.set_title(f"kerasdojo PPO on {ENV}, Atari preset" + (f", beside SB3's PPO on {SB3_ENV}" if sb3 else ""))
    # One entry per run (its colour), then what each mark is; outside the axes, off the curves.
    marks = [
        Line2D([], [], c="k", lw=1, alpha=0.5, label="rollout/ep_rew_mean (100 training games)"),
        Line2D([], [], c="k", lw=2, marker="o", label="evaluation during training (10 games)"),
        Line2D([], [], c="k", ls="", marker="s", ms=9, label="final agent, 30 games, sampled actions"),
    ]
    handles = ax.get_legend_handles_labels()[0] + marks
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    png = HERE / "atari_breakout_ppo.png"
    fig.savefig(png, dpi=100)
    body = "\n".join(
        [
            "## Atari learning: PPO on ALE/Breakout-v5 (`benchmarks/atari.py learn`)",
            "",
            f"{today()}; {machine()}; CPU only; the PPO Atari preset (target: a mean score >= 20 at 1M steps).",
            "",
            *lines,
            "",
            f"Curves: `benchmarks/{png.name}`.",
        ]
    )
    update_section("atari-learning", body)
    print(body)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        lib, algo, steps, starts = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        fn = kerasdojo_speed if lib == "kerasdojo" else sb3_speed
        print(json.dumps(fn(algo, steps, starts)))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="speed", choices=("speed", "learn", "sb3-learn"))
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--algos", nargs="+", default=["ppo", "dqn"], choices=("ppo", "dqn"))
    parser.add_argument("--dqn-steps", type=int, default=None, help="DQN's steps (default: --steps)")
    parser.add_argument("--dqn-learning-starts", type=int, default=10_000)
    parser.add_argument("--learn-steps", type=int, default=1_000_000)
    parser.add_argument("--eval-every", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default=None, help="keep the learning run here (default: a temp dir)")
    parser.add_argument("--from-run", nargs="+", default=None, help="learn: report these finished runs instead")
    parser.add_argument(
        "--compare", nargs="+", default=[], help="learn: earlier runs (DIR or DIR=label) to draw beside, curves only"
    )
    parser.add_argument("--sb3", nargs="+", default=[], help="learn: directories of sb3-learn runs to report beside")
    args = parser.parse_args()
    {"speed": speed, "learn": learn, "sb3-learn": sb3_learn}[args.mode](args)


if __name__ == "__main__":
    main()
