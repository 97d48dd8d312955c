"""Helpers shared by the benchmark scripts: machine description and RESULTS.md sections."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
REPO = HERE.parent
SHARED_DATA = Path(os.environ.get("KERASDOJO_SHARED_DATA", REPO.parent / "shared" / "data"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem = float("nan")
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def versions(*modules: str) -> str:
    out = []
    for name in modules:
        try:
            mod = __import__(name)
            out.append(f"{name} {getattr(mod, '__version__', '?')}")
        except Exception:
            pass
    return ", ".join(out)


def today() -> str:
    return dt.datetime.now().strftime("%Y-%m-%d %H:%M")


def update_section(name: str, body: str) -> None:
    """Replace the section ``name`` of RESULTS.md (between its markers), or append it."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    text = (
        RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nWritten by the scripts in this folder.\n"
    )
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def run_worker(script: Path, args: list[str], timeout: int = 1800) -> str:
    """Run ``script --worker ...`` in a fresh interpreter; return its last stdout line (JSON)."""
    done = subprocess.run(
        [sys.executable, str(script), "--worker", *args], capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- learning benchmarks


def kerasdojo_run(
    env_id: str,
    algo: str,
    seed: int,
    eval_every: int,
    eval_episodes: int,
    threshold: float,
    final_episodes: int,
    final_seed: int,
    total_steps: int | None = None,
    native: bool = False,
    overrides: dict | None = None,
) -> dict:
    """Train kerasdojo's preset for (algo, env) (``native``: compiled end to end on the
    TensorFlow twin; ``overrides`` as --set) and report when its periodic deterministic
    evaluation first reached ``threshold`` (step and training seconds), steps/s and a final evaluation."""
    import tempfile

    from kerasdojo.runs import read_progress
    from kerasdojo.training.session import TrainSpec, evaluate_run, start

    with tempfile.TemporaryDirectory() as tmp:
        spec = TrainSpec(
            env_id,
            algo,
            seed=seed,
            total_steps=total_steps,
            eval_every=eval_every,
            eval_episodes=eval_episodes,
            save_every=0,
            native=native,
            overrides=overrides or {},
        )
        session = start(spec, tmp)
        summary = session.train()
        rows = read_progress(session.run.path / "progress.csv")
        final = evaluate_run(session.run.path, episodes=final_episodes, seed=final_seed).result
    reached_step = reached_seconds = None
    for row in rows:
        if row.get("eval/mean_reward") and float(row["eval/mean_reward"]) >= threshold:
            reached_step, reached_seconds = int(row["time/total_timesteps"]), float(row["time/train_seconds"])
            break
    return {
        "steps": summary.steps,
        "train_seconds": summary.train_seconds_total,
        "fps": summary.steps / summary.train_seconds_total,
        "solve_step": reached_step,
        "solve_seconds": reached_seconds,
        "final_mean": final.mean_reward,
        "final_std": final.std_reward,
        "evals": [float(r["eval/mean_reward"]) for r in rows if r.get("eval/mean_reward")],
    }


def vector_eval(env_id: str, predict, episodes: int, seed: int) -> tuple[float, float]:
    """Mean and std return of ``episodes`` deterministic episodes, through kerasdojo's own
    evaluation loop and vector env, so that every library is evaluated the same way."""
    from kerasdojo.envs import make_vec
    from kerasdojo.training.evaluation import MAX_EVAL_ENVS, EvalResult, evaluate

    class Policy:
        def act(self, obs, deterministic=True):
            return predict(obs)

    env = make_vec(env_id, min(episodes, MAX_EVAL_ENVS), seed=seed)
    try:
        result = EvalResult.of(*evaluate(Policy(), env, episodes, seed))
    finally:
        env.close()
    return result.mean_reward, result.std_reward


def sb3_learn(
    model,
    env_id: str,
    total: int,
    seed: int,
    eval_every: int,
    eval_episodes: int,
    threshold: float,
    final_episodes: int,
    eval_seed: int,
    final_seed: int,
    evaluate=None,
) -> dict:
    """``model.learn(total)`` with an evaluation every ``eval_every`` steps (0: none) through
    :func:`vector_eval`, or ``evaluate(episodes, seed) -> (mean, std)`` when given, reporting the
    same figures as :func:`kerasdojo_run` (training seconds exclude evaluation)."""
    import time

    from stable_baselines3.common.callbacks import BaseCallback

    def predict(obs):
        return model.predict(obs, deterministic=True)[0]

    if evaluate is None:

        def evaluate(episodes: int, seed_: int) -> tuple[float, float]:
            return vector_eval(env_id, predict, episodes, seed_)

    class Evaluate(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_eval, self.eval_seconds, self.start = eval_every, 0.0, 0.0
            self.solve_step = self.solve_seconds = None
            self.evals: list[float] = []

        def _on_training_start(self) -> None:
            self.start = learn_start

        def _on_step(self) -> bool:
            if eval_every and self.num_timesteps >= self.next_eval:
                t0 = time.perf_counter()
                trained = t0 - self.start - self.eval_seconds  # training seconds so far
                mean, _ = evaluate(eval_episodes, eval_seed + seed)
                self.evals.append(mean)
                self.eval_seconds += time.perf_counter() - t0
                if mean >= threshold and self.solve_step is None:
                    self.solve_step, self.solve_seconds = self.num_timesteps, trained
                self.next_eval = (self.num_timesteps // eval_every + 1) * eval_every
            return True

    callback = Evaluate()
    learn_start = time.perf_counter()
    model.learn(total, callback=callback)
    train_seconds = time.perf_counter() - learn_start - callback.eval_seconds
    final_mean, final_std = evaluate(final_episodes, final_seed)
    return {
        "steps": int(model.num_timesteps),
        "train_seconds": train_seconds,
        "fps": model.num_timesteps / train_seconds,
        "solve_step": callback.solve_step,
        "solve_seconds": callback.solve_seconds,
        "final_mean": final_mean,
        "final_std": final_std,
        "evals": callback.evals,
    }


def median(values: list[float]) -> float:
    import statistics

    return statistics.median(values) if values else float("nan")


def median_solve(values: list[float | None]) -> float | None:
    """Median over all seeds, a seed that never got there counting as never (None when the median is)."""
    import math

    m = median([math.inf if v is None else v for v in values])
    return None if math.isinf(m) else m


def fmt(v: float | None, spec: str = ",.0f", missing: str = "not solved") -> str:
    return missing if v is None else format(v, spec)


PEERS = {"sb3": ("stable_baselines3", "SB3"), "sbx": ("sbx", "SBX")}


def libraries(no_sb3: bool, no_sbx: bool = False) -> list[str]:
    """kerasdojo, then each peer (SB3, SBX) that is installed beside the project and not turned off."""
    libs = ["kerasdojo"]
    for lib, off, install in (
        ("sb3", no_sb3, "pip install torch==2.13.0 stable-baselines3"),
        ("sbx", no_sbx, "pip install sbx-rl"),
    ):
        try:
            __import__(PEERS[lib][0])
        except ImportError:
            print(f"{PEERS[lib][1]} is not installed: left out ({install})")
            continue
        if not off:
            libs.append(lib)
    return libs


def peer(lib: str, algo: str):
    """The class of ``algo`` (PPO, DQN, SAC, ...) in peer library ``lib`` ("sb3" or "sbx"); None
    when that library has no such algorithm (SBX has no A2C)."""
    import importlib

    return getattr(importlib.import_module(PEERS[lib][0]), algo.upper(), None)


def peer_algos(lib: str, algos: list[str]) -> list[str]:
    """The ``algos`` (task names such as sac or sac-halfcheetah) that ``lib`` has."""
    return algos if lib == "kerasdojo" else [a for a in algos if peer(lib, a.split("-")[0]) is not None]


def learning_tables(results: dict[tuple[str, str], list[dict]], seconds: str = ".2f") -> list[str]:
    """Markdown lines: a row per (library, algo, seed), then the medians over seeds, from the
    dicts :func:`kerasdojo_run` and :func:`sb3_learn` return."""
    rows, summary = [], []
    for (lib, algo), runs in results.items():
        for seed, r in enumerate(runs):
            rows.append(
                [
                    lib,
                    algo,
                    str(seed),
                    fmt(r["solve_step"], missing="never"),
                    fmt(r["solve_seconds"], seconds, missing="never"),
                    f"{r['fps']:,.0f}",
                    f"{r['final_mean']:.1f} ± {r['final_std']:.1f}",
                ]
            )
        reached = [r for r in runs if r["solve_step"] is not None]
        summary.append(
            [
                lib,
                algo,
                f"{len(reached)}/{len(runs)}",
                fmt(median_solve([r["solve_step"] for r in runs]), missing="never"),
                fmt(median_solve([r["solve_seconds"] for r in runs]), seconds, missing="never"),
                f"{median([r['fps'] for r in runs]):,.0f}",
                f"{median([r['final_mean'] for r in runs]):.1f}",
            ]
        )
    head = ["library", "algo", "seed", "goal at step", "goal at s", "steps/s", "final return"]
    return [
        markdown_table(head, rows),
        "",
        "Medians:",
        "",
        markdown_table(["library", "algo", "reached", "step", "s", "steps/s", "final return"], summary),
    ]


def ratio_lines(results: dict[tuple[str, str], list[dict]], algos: list[str], seconds: str = ".2f") -> list[str]:
    """kerasdojo / peer ratios of median steps/s and median time to the goal, one line per
    (algo, peer) that ran."""
    lines = ["", "Ratios (kerasdojo / peer, medians):", ""]
    for algo in algos:
        ours = results[("kerasdojo", algo)]
        for lib, (_, label) in PEERS.items():
            if (lib, algo) not in results:
                continue
            theirs = results[(lib, algo)]
            fps_ratio = median([r["fps"] for r in ours]) / median([r["fps"] for r in theirs])
            t_ours = median_solve([r["solve_seconds"] for r in ours])
            t_theirs = median_solve([r["solve_seconds"] for r in theirs])
            if t_ours is not None and t_theirs is not None:
                goal = f"median time to goal x{t_ours / t_theirs:.2f} ({t_ours:{seconds}} s vs {t_theirs:{seconds}} s)"
            else:
                goal = f"median time to goal {fmt(t_ours, seconds, 'never')} s vs {fmt(t_theirs, seconds, 'never')} s"
            lines.append(f"- {algo} vs {label}: steps/s x{fps_ratio:.2f}; {goal}")
    return lines
