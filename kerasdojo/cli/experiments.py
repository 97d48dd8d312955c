"""Commands over many runs: bench (many seeds) and plot."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from kerasdojo.cli.common import RUNS_DIR, app, console
from kerasdojo.cli.rl import AgentName
from kerasdojo.errors import DojoError
from kerasdojo.experiments.tune import space_help


@app.command(no_args_is_help=True)
def bench(
    env: Annotated[str, typer.Argument(help="A registered Gymnasium id.")],
    agent: Annotated[AgentName, typer.Option("--agent", "-a", help="Algorithm.")] = "ppo",  # type: ignore[assignment]
    seeds: Annotated[str, typer.Option("--seeds", help="How many seeds (5: seeds 0-4), or which (0,3,7).")] = "5",
    steps: Annotated[int | None, typer.Option("--steps", "-n", help="Env steps per seed [default: preset's].")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a hyperparameter: key=value.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML file of hyperparameters.")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Worker processes [default: as many as fit the cores].")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Experiment folder (reuse it to resume).")] = None,
    eval_every: Annotated[int, typer.Option("--eval-every", help="Evaluate every N steps.")] = 10_000,
    eval_episodes: Annotated[int, typer.Option("--eval-episodes", help="Episodes per evaluation.", min=1)] = 10,
    native: Annotated[
        bool,
        typer.Option(
            "--native",
            help="Train on the TensorFlow twin (train --native); ppo trains every seed in one compiled program.",
        ),
    ] = False,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Run each seed as a Ray task: --ray alone (or 'local') starts a local Ray; 'auto' or "
            "ray://HOST:10001 joins a cluster.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Train one agent over many seeds (each an ordinary run in one folder), then summarise:
    a table per seed, mean, IQM with a 95% bootstrap CI, summary.json/.md and curves.png."""
    import time

    from kerasdojo import config as config_mod
    from kerasdojo.experiments import bench as bench_mod
    from kerasdojo.experiments.summary import summarize

    name = agent.value if isinstance(agent, Enum) else str(agent)
    if workers is not None and workers < 1:
        raise DojoError(f"--workers must be >= 1. Received: {workers}")
    seed_list = bench_mod.parse_seeds(seeds)
    overrides: dict[str, Any] = config_mod.load_toml(config) if config is not None else {}
    overrides.update(config_mod.parse_pairs(set_ or [], "--set"))
    folder = out or Path(RUNS_DIR) / "bench" / f"{env.replace('/', '-')}__{name}__{time.strftime('%Y%m%d-%H%M%S')}"
    spec = bench_mod.BenchSpec(
        env_id=env,
        agent=name,
        seeds=seed_list,
        out=folder,
        total_steps=steps,
        overrides=overrides,
        native=native,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        workers=workers or 0,
    )
    if ray:
        bench_mod.connect_ray(ray)  # a one-line error before anything is written
    bench_mod.prepare(spec)
    jobs = bench_mod.jobs_of(spec)
    n_workers = spec.workers or bench_mod.default_workers(len(jobs))
    cons = console()
    where = f"Ray ({ray})" if ray else f"{n_workers} worker(s)"
    batched = False
    if native and not ray:  # every seed in one compiled program, where the agent can
        from kerasdojo.experiments.batched import check_batchable
        from kerasdojo.training.spec import resolve_config

        why = check_batchable(name, resolve_config(name, env, overrides, steps), env)
        batched = why is None
        where = "one compiled program" if batched else f"{where}, one program per seed ({why})"
    cons.print(f"[bold]bench {name} on {env}[/bold]: seeds {', '.join(map(str, seed_list))}; {where}  ->  {folder}")
    t0 = time.perf_counter()
    results = _run_with_progress(spec, jobs, quiet, ray, batched)
    wall = time.perf_counter() - t0
    summary = summarize(folder)  # every seed the folder holds, earlier runs' too
    from rich.markdown import Markdown

    cons.print(Markdown((folder / "summary.md").read_text()))
    interrupted = [r["seed"] for r in results if r["status"] == "interrupted"]
    cons.print(f"Wall time {wall:.1f} s. Summary: {folder / 'summary.json'}, curves: {folder / 'curves.png'}")
    if interrupted or summary["aggregate"]["seeds_finished"] < len(summary["seeds"]):
        cons.print(f"Unfinished seeds: continue with the same command and --out {folder}")
        raise typer.Exit(130 if interrupted else 1)


def _run_with_progress(
    spec: Any, jobs: list[dict[str, Any]], quiet: bool, ray: str | None, batched: bool = False
) -> list[dict[str, Any]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kerasdojo.experiments import bench as bench_mod

    with Progress(
        TextColumn("seed {task.fields[seed]:>3}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console(),
        disable=quiet,
    ) as progress:
        tasks = {job["seed"]: progress.add_task("", total=None, seed=job["seed"], info="waiting") for job in jobs}

        def update(msg: tuple) -> None:
            seed, step, total, ret, last_eval = msg
            info = "" if ret is None or ret != ret else f"return {ret:.1f}"
            if last_eval is not None:
                info += f"  eval {last_eval:.1f}"
            progress.update(tasks[seed], completed=step, total=total, info=info)

        watch = None if quiet else update
        if batched:
            from kerasdojo.experiments.batched import train_batched

            return train_batched(spec, spec.seeds, watch)
        if ray:
            return bench_mod.run_ray(jobs, ray, watch)
        return bench_mod.run_local(spec, jobs, watch)


@app.command(no_args_is_help=True)
def plot(
    paths: Annotated[list[Path], typer.Argument(help="Run directories or bench folders.")],
    metric: Annotated[str, typer.Option("--metric", help="A progress.csv column.")] = "eval/mean_reward",
    x: Annotated[str, typer.Option("--x", help="steps or seconds.")] = "steps",
    label: Annotated[
        list[str] | None, typer.Option("--label", help="A label per PATH (groups by label, not env/agent).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="PNG to write.")] = Path("curves.png"),
) -> None:
    """Curves of runs and experiments on one figure: each run thin, each group's IQM bold with
    a 95% bootstrap band; grouped by (env, agent) or by --label."""
    from kerasdojo.experiments import curves as curves_mod

    if label and len(label) != len(paths):
        raise DojoError(f"--label needs one label per PATH: {len(paths)} paths, {len(label)} labels")
    if out.suffix.lower() != ".png":
        raise DojoError(f"--out must be a .png file. Received: {out}")
    groups: dict[str, list[Any]] = {}
    for i, path in enumerate(paths):
        for run in curves_mod.run_dirs(path):
            curve = curves_mod.read_curve(run, metric, x)
            key = label[i] if label else f"{curve.agent} on {curve.env_id}"
            groups.setdefault(key, []).append(curve)
    written = curves_mod.draw(groups, out, metric, x, title=metric)
    sizes = ", ".join(f"{k}: {len(v)} run(s)" for k, v in groups.items())
    console().print(f"Wrote {written} ({sizes})")


@app.command(no_args_is_help=True, epilog=space_help())
def tune(
    env: Annotated[str, typer.Argument(help="A registered Gymnasium id.")],
    agent: Annotated[AgentName, typer.Option("--agent", "-a", help="Algorithm.")] = "ppo",  # type: ignore[assignment]
    trials: Annotated[int, typer.Option("--trials", help="Finished trials to reach (the study keeps counting).")] = 20,
    steps: Annotated[int | None, typer.Option("--steps", "-n", help="Env steps per run [default: preset's].")] = None,
    seeds_per_trial: Annotated[int, typer.Option("--seeds-per-trial", help="Seeds averaged per trial.")] = 1,
    storage: Annotated[
        str | None, typer.Option("--storage", help="Optuna storage URL [default: sqlite:///OUT/study.db].")
    ] = None,
    study: Annotated[str | None, typer.Option("--study", help="Study name [default: ENV__AGENT].")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Fix a hyperparameter: key=value.")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Trials in parallel (processes or Ray tasks).")] = 1,
    ray: Annotated[
        str | None,
        typer.Option("--ray", help="Run the workers as Ray tasks: --ray alone (local), auto or ray://HOST:10001."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Study folder [default: runs/tune/ENV__AGENT].")] = None,
    eval_every: Annotated[int, typer.Option("--eval-every", help="Evaluate (and maybe prune) every N steps.")] = 10_000,
    eval_episodes: Annotated[int, typer.Option("--eval-episodes", help="Episodes per evaluation.", min=1)] = 10,
    native: Annotated[bool, typer.Option("--native", help="Train on the TensorFlow twin (train --native).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Search hyperparameters with Optuna (TPE sampler, median pruner on the periodic evaluations),
    resumable from its storage; prints the best trials and writes best.toml for train --config,
    with Optuna's optimisation-history and parameter-importance plots."""
    from kerasdojo import config as config_mod
    from kerasdojo.experiments import tune as tune_mod

    name = agent.value if isinstance(agent, Enum) else str(agent)
    if name not in tune_mod.SPACES:
        raise DojoError(f"tune has no search space for {name}", hint="tune one of: " + ", ".join(tune_mod.SPACES))
    for flag, value in (("--trials", trials), ("--seeds-per-trial", seeds_per_trial), ("--workers", workers)):
        if value < 1:
            raise DojoError(f"{flag} must be >= 1. Received: {value}")
    overrides = config_mod.parse_pairs(set_ or [], "--set")
    from kerasdojo.training.spec import TrainSpec, resolve_config

    cfg = resolve_config(name, env, overrides, steps)  # unknown env/agent, bad --set: one line now
    overrides = {k: getattr(cfg, k) for k in overrides}  # typed, as best.toml repeats them
    TrainSpec(env, name, total_steps=steps, native=native, eval_every=eval_every).check()
    folder = out or Path(RUNS_DIR) / "tune" / f"{env.replace('/', '-')}__{name}"
    folder.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    study_name = study or f"{env}__{name}"
    if ray:
        from kerasdojo.experiments.ray_join import connect_ray

        connect_ray(ray)
    opened = tune_mod.open_study(url, study_name, env, name, steps)
    fixed = json.loads(json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}))
    if "fixed" not in opened.user_attrs:
        tune_mod.fix(opened, overrides)
    elif opened.user_attrs["fixed"] != fixed:
        raise DojoError(
            f"The study {study_name!r} was tuned with --set {opened.user_attrs['fixed']}, not {fixed}",
            hint="pass the same --set values, or another --study",
        )
    job = {
        "storage": url,
        "study": study_name,
        "env_id": env,
        "agent": name,
        "steps": steps,
        "trials": trials,
        "seeds_per_trial": seeds_per_trial,
        "overrides": overrides,
        "eval_every": eval_every,
        "eval_episodes": eval_episodes,
        "native": native,
        "out": str(folder.resolve()),
    }
    cons = console()
    cons.print(f"[bold]tune {name} on {env}[/bold]: {trials} trials, study {study_name!r} in {url}")
    from optuna.trial import TrialState
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("trials"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=cons,
        disable=quiet,
    ) as progress:
        task = progress.add_task("", total=trials, info="")

        def poll() -> None:
            done = opened.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            values = [t.value for t in done if t.state == TrialState.COMPLETE]
            info = f"best {max(values):.1f}" if values else ""
            progress.update(task, completed=min(len(done), trials), info=info)

        tune_mod.run_workers([job] * workers, ray, poll)
    _report_study(tune_mod, opened, folder)


def _report_study(tune_mod: Any, study: Any, folder: Path) -> None:
    from rich.table import Table

    cons = console()
    finished = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: -t.value)
    pruned = sum(t.state.name == "PRUNED" for t in study.trials)
    if not finished:
        cons.print(f"No trial finished ({pruned} pruned). Run again to continue the study.")
        raise typer.Exit(1)
    table = Table(title=f"Best trials ({len(finished)} finished, {pruned} pruned)")
    for column in ("trial", "value", "hyperparameters"):
        table.add_column(column)
    for t in finished[:5]:
        table.add_row(str(t.number), f"{t.value:.2f}", ", ".join(f"{k}={v}" for k, v in sorted(t.params.items())))
    cons.print(table)
    best = tune_mod.write_best(study, folder)
    plots = tune_mod.write_plots(study, folder)
    cons.print(f"Best hyperparameters: {best} (kerasdojo train ENV --agent AGENT --config {best})")
    cons.print("Plots: " + ", ".join(str(p) for p in plots))
