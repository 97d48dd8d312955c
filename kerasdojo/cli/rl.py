"""Commands for environments, agents, training, evaluation, and TensorBoard."""

from __future__ import annotations

import platform
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from kerasdojo import __version__
from kerasdojo.agents import AGENT_NAMES
from kerasdojo.cli.common import RUNS_DIR, RunsDir, app, choices, console, warn
from kerasdojo.errors import DojoError

AgentName = choices("AgentName", *AGENT_NAMES)
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]


# --------------------------------------------------------------------------- info / tensorboard


@app.command()
def info() -> None:
    """Versions of kerasdojo and its stack, and the devices TensorFlow sees."""
    from rich.table import Table

    from kerasdojo import backend

    tf = backend.tf()
    keras = backend.keras()
    import gymnasium
    import numpy

    out = console()
    table = Table(title="kerasdojo", show_header=False)
    for name, version in (
        ("kerasdojo", __version__),
        ("Python", platform.python_version()),
        ("TensorFlow", tf.__version__),
        ("Keras", f"{keras.__version__} (backend: {keras.backend.backend()})"),
        ("Gymnasium", gymnasium.__version__),
        ("NumPy", numpy.__version__),
        ("Platform", f"{platform.system()} {platform.machine()}"),
        ("Built with CUDA", str(tf.test.is_built_with_cuda())),
        ("kerasdojo export", _export_formats()),
    ):
        table.add_row(name, version)
    out.print(table)
    devices = Table(title="Devices TensorFlow sees")
    for column in ("name", "type", "details"):
        devices.add_column(column)
    gpus = 0
    for dev in backend.devices():
        details = ", ".join(f"{k}: {v}" for k, v in dev.items() if k not in ("name", "type"))
        devices.add_row(dev["name"], dev["type"], details)
        gpus += dev["type"] == "GPU"
    out.print(devices)
    if not gpus:
        out.print("No GPU visible to TensorFlow: training runs on the CPU.")
    native, why = backend.native_bfloat16()
    out.print(
        f"bfloat16: {why}, so Nature-CNN updates run in "
        f"{'mixed_bfloat16' if native else 'float32'} by default (--set precision=...)."
    )


def _export_formats() -> str:
    """Which export formats this installation can write and check."""
    from kerasdojo import portable

    ready, missing = [], []
    for fmt in portable.FORMATS:
        try:
            portable.require(fmt)
            ready.append(fmt)
        except DojoError:
            missing.append(fmt)
    return ", ".join(ready) + (f" ({', '.join(missing)}: pip install 'kerasdojo[export]')" if missing else "")


@app.command()
def tensorboard(
    logdir: Annotated[Path, typer.Option("--logdir", help="Folder of runs to show.")] = Path(RUNS_DIR),
    port: Annotated[int, typer.Option("--port", help="Port to serve on.", min=1, max=65535)] = 6006,
    host: Annotated[str, typer.Option("--host", help="Address to bind (0.0.0.0 for all).")] = "localhost",
) -> None:
    """Start TensorBoard on the runs folder and print its URL (Ctrl-C stops it)."""
    from kerasdojo.tensorboard import serve

    serve(logdir, port, host, echo=typer.echo)


# --------------------------------------------------------------------------- environments and agents


@app.command()
def envs(
    name: Annotated[str | None, typer.Argument(help="An environment id to describe, or a filter for the list.")] = None,
) -> None:
    """List registered Gymnasium environments, or describe one (spaces, limits, fitting agents)."""
    from rich.table import Table

    from kerasdojo import envs as envs_mod
    from kerasdojo.agents import fitting_agents

    out = console()
    if name and (envs_mod.is_registered(name) or ":" in name):  # an id, or a module:Class entry point
        table = Table(title=name, show_header=False)
        for key, value in envs_mod.describe(name).items():
            table.add_row(key, str(value))
        table.add_row("kerasdojo agents", ", ".join(fitting_agents(*envs_mod.spaces_of(name))) or "none")
        from kerasdojo.envs.native import native_ids

        if name in native_ids():
            table.add_row(
                "--native", "a TensorFlow twin: train --native with ppo, dqn, sac, td3 or ddpg (compiled end to end)"
            )
        out.print(table)
        return
    groups = envs_mod.list_envs(name)
    if not groups and (name or "").lower() in ("atari", "ale"):
        raise DojoError(
            "No Atari games: the Arcade Learning Environment is not installed", hint="pip install -e '.[atari]'"
        )
    if not groups:
        raise DojoError(f"No registered environment matches {name!r}", hint="run kerasdojo envs to see them all")
    for group, ids in groups.items():
        out.print(f"[bold]===== {group} =====[/bold]")
        out.print("  ".join(ids), soft_wrap=False)
    example = "ALE/Breakout-v5" if "ALE (Atari)" in groups else "CartPole-v1"
    out.print(f"\n{sum(len(v) for v in groups.values())} environments. Describe one: kerasdojo envs {example}")


@app.command()
def agents(
    name: Annotated[AgentName | None, typer.Argument(help="An agent whose hyperparameters to list.")] = None,
    env: Annotated[str | None, typer.Option("--env", help="Also show the preset values for this environment.")] = None,
) -> None:
    """List the agents, or every hyperparameter of one (type, default, preset, help): what --set accepts."""
    from rich.table import Table

    from kerasdojo.agents import REGISTRY

    out = console()
    if name is None:
        table = Table(title="Agents")
        for column in ("name", "action spaces", "description"):
            table.add_column(column)
        for agent in REGISTRY.values():
            table.add_row(agent.name, ", ".join(agent.action_spaces), agent.summary)
        out.print(table)
        out.print(
            "Observations: every agent takes Box, Discrete, MultiDiscrete, MultiBinary, and Dict/Tuple of them "
            "(kerasdojo envs ENV shows what it sees). Invalid-action masks: ppo, a2c, dqn, random."
        )
        out.print("Hyperparameters of one: kerasdojo agents ppo [--env CartPole-v1]")
        return
    from kerasdojo import config as config_mod
    from kerasdojo.agents import presets

    agent = name.value if isinstance(name, Enum) else str(name)
    preset = presets.preset(agent, env) if env else {}
    table = Table(title=f"{agent} hyperparameters (--set key=value)")
    for column in ("key", "type", "default", *([f"preset for {env}"] if env else [])):
        table.add_column(column, no_wrap=True)
    table.add_column("help", ratio=1)
    for field in config_mod.describe(REGISTRY[agent].load().Config):
        cells = [field.name, field.type_name, field.shown(field.default)]
        if env:
            cells.append(field.shown(preset[field.name]) if field.name in preset else "")
        table.add_row(*cells, field.help)
    out.print(table)
    if env and not preset:
        out.print(f"No {agent} preset for {env}: the defaults apply. Presets: {presets.envs_with_preset(agent)}")


# --------------------------------------------------------------------------- RL: train / eval / resume


@app.command(no_args_is_help=True)
def train(
    env: Annotated[str, typer.Argument(help="A registered Gymnasium id (CartPole-v1) or module:Class.")],
    agent: Annotated[AgentName, typer.Option("--agent", "-a", help="Algorithm.")] = "ppo",  # type: ignore[assignment]
    steps: Annotated[int | None, typer.Option("--steps", "-n", help="Total env steps [default: preset's].")] = None,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Seed for networks, envs and sampling.")] = 0,
    n_envs: Annotated[int | None, typer.Option("--n-envs", help="Parallel envs [default: preset's].")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a hyperparameter: key=value (repeatable; see kerasdojo agents NAME)."),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML file of hyperparameters.")] = None,
    env_kwargs: Annotated[
        list[str] | None, typer.Option("--env-kwargs", help="Keyword for gymnasium.make: key=value (repeatable).")
    ] = None,
    async_envs: Annotated[bool, typer.Option("--async", help="Step envs in subprocesses.")] = False,
    runs_dir: RunsDir = Path(RUNS_DIR),
    eval_every: Annotated[
        int, typer.Option("--eval-every", help="Evaluate every N steps (0: only at the end).")
    ] = 10_000,
    eval_episodes: Annotated[int, typer.Option("--eval-episodes", help="Episodes per evaluation.", min=1)] = 10,
    save_every: Annotated[
        int, typer.Option("--save-every", help="Checkpoint every N steps (0: only at the end).")
    ] = 50_000,
    video: Annotated[bool, typer.Option("--video", help="Record the final evaluation episode (GIF).")] = False,
    native: Annotated[
        bool,
        typer.Option(
            "--native",
            help="Train on the TensorFlow twin of a classic-control env, rollout and update compiled as one "
            "XLA program (ppo, dqn, sac, td3, ddpg; evaluation stays on Gymnasium's env).",
        ),
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Train an agent; logs go to TensorBoard, the agent and its evaluation into the run directory."""
    from kerasdojo import config as config_mod
    from kerasdojo.training.session import TrainSpec, start

    overrides: dict[str, Any] = config_mod.load_toml(config) if config is not None else {}
    overrides.update(config_mod.parse_pairs(set_ or [], "--set"))
    spec = TrainSpec(
        env_id=env,
        agent=agent.value if isinstance(agent, Enum) else str(agent),
        seed=seed,
        total_steps=steps,
        n_envs=n_envs,
        overrides=overrides,
        env_kwargs=config_mod.parse_kwargs(env_kwargs or [], "--env-kwargs"),
        async_envs=async_envs,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        save_every=save_every,
        video=video,
        native=native,
    )
    _run_training(start(spec, runs_dir), quiet)


@app.command(no_args_is_help=True)
def resume(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by kerasdojo train.")],
    steps: Annotated[int | None, typer.Option("--steps", "-n", help="New total env steps for the run.")] = None,
    quiet: Quiet = False,
) -> None:
    """Continue a run from its last good checkpoint (same curves, optimizer, buffer, RNG states)."""
    from kerasdojo.training.session import resume

    _run_training(resume(run_dir, steps, warn=warn), quiet)


def _run_training(session: Any, quiet: bool) -> None:
    from kerasdojo.progress import TrainingProgress

    out = console()
    out.print(f"[bold]{session.title}[/bold]  ->  {session.run.path}")
    for note in getattr(session.agent, "notes", []):
        out.print(note, highlight=False)
    with TrainingProgress(session.state.total_steps, session.state.step, console=out, disable=quiet) as bar:
        summary = session.train(bar.report)
    final = summary.eval
    out.print(
        f"Done: {summary.steps:,} steps in {summary.seconds:.1f} s ({summary.fps:,.0f} steps/s). "
        f"Final evaluation over {final.episodes} episodes{'' if session.eval_deterministic else ' (sampled actions)'}: "
        f"{final.mean_reward:.2f} ± {final.std_reward:.2f}"
        + ("" if final.success_rate is None else f", success rate {final.success_rate:.0%}")
    )
    if summary.best_eval is not None and summary.best_eval > final.mean_reward:
        out.print(
            f"Best evaluation: {summary.best_eval:.2f} at step {summary.best_step:,} "
            "(kept as best_agent.npz / best_policy.keras; kerasdojo eval RUN --best)"
        )
    out.print(f"Run directory: {summary.run_dir}")
    if summary.video:
        out.print(f"Video: {summary.video}")
    out.print(f"Watch the curves: kerasdojo tensorboard --logdir {summary.run_dir.parent}")


@app.command(name="eval", no_args_is_help=True)
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by kerasdojo train.")],
    episodes: Annotated[int, typer.Option("--episodes", "-e", help="Episodes to run.", min=1)] = 10,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Seed for the evaluation envs.")] = 1000,
    video: Annotated[Path | None, typer.Option("--video", help="Record the first episode to a .gif or .mp4.")] = None,
    render: Annotated[bool, typer.Option("--render", help="Show the episodes in a window (needs a display).")] = False,
    stochastic: Annotated[
        bool | None,
        typer.Option(
            "--stochastic/--deterministic",
            help="Sample actions, or take the greedy ones. Default: greedy, sampled on Atari games (as RL Zoo).",
            show_default=False,
        ),
    ] = None,
    best: Annotated[bool, typer.Option("--best", help="Use the agent of the best evaluation during training.")] = False,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="Play an exported policy (.onnx, .tflite or a SavedModel folder from kerasdojo export) "
            "through its own runtime instead of the run's agent.",
        ),
    ] = None,
) -> None:
    """Evaluate a trained agent from its run directory alone; prints mean ± std return."""
    greedy = None if stochastic is None else not stochastic
    if policy is not None:
        from kerasdojo.training.exported import evaluate_policy_file

        if best:
            raise DojoError("--best and --policy both choose what plays: give one")
        done = evaluate_policy_file(run_dir, policy, episodes, seed, video=video, render=render, deterministic=greedy)
    else:
        from kerasdojo.training.session import evaluate_run

        done = evaluate_run(
            run_dir, episodes, seed, video=video, render=render, deterministic=greedy, best=best, warn=warn
        )
    r = done.result
    out = console()
    out.print(
        f"{done.env_id} / {done.agent} ({done.source}{'' if done.deterministic else ', sampled actions'}): "
        f"mean return {r.mean_reward:.2f} ± {r.std_reward:.2f} over {r.episodes} episodes "
        f"(mean length {r.mean_ep_length:.1f})"
        + ("" if r.success_rate is None else f", success rate {r.success_rate:.0%}")
    )
    if done.video:
        out.print(f"Video: {done.video}")


class ExportFormat(str, Enum):
    saved_model = "saved_model"
    onnx = "onnx"
    litert = "litert"


@app.command(name="export", no_args_is_help=True)
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (RL, or a supervised mnist, digits or xor run).")],
    fmt: Annotated[
        ExportFormat, typer.Option("--format", "-f", help="saved_model (a folder), onnx (.onnx) or litert (.tflite).")
    ],
    best: Annotated[bool, typer.Option("--best", help="Export best_policy.keras (the best evaluation).")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Where to write it. Default: beside the Keras file in the run.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
) -> None:
    """Export a run's policy.keras (or a supervised model.keras) and check it in its own runtime.

    The exported model takes the same inputs ("obs", or one per observation leaf) and returns
    what policy.keras returns. Before it is kept, it runs in its own runtime (tf.saved_model,
    ONNX Runtime, LiteRT) on 1,000 observations of the run's environment (a supervised run's test
    images) and must match policy.keras within 1e-4 with the same greedy actions on all of them."""
    from kerasdojo import portable
    from kerasdojo.training.exported import export_run

    out_ = console()
    with out_.status(f"Exporting to {fmt.value} and checking it in {portable.RUNTIME[fmt.value]} ..."):
        done = export_run(run_dir, fmt.value, best=best, out=out, force=force)
    size = f"{done.bytes / 1e6:.2f} MB" if done.bytes >= 1e5 else f"{done.bytes / 1e3:.1f} KB"
    out_.print(f"Exported {done.source} -> {done.path} ({size}, {done.seconds:.1f} s)", highlight=False)
    ties = f" ({done.ties} ties within the tolerance)" if done.ties else ""
    out_.print(
        f"Checked in {portable.RUNTIME[done.fmt]} on {done.on}: outputs within {done.max_error:.1e} of "
        f"{done.source.name} (tolerance {done.tolerance:g}), same greedy choice on {done.agreed:,} of "
        f"{done.checked:,}{ties}",
        highlight=False,
    )
    if (Path(run_dir) / "config.json").is_file() and done.source.name.endswith("policy.keras"):
        out_.print(f"Play it: kerasdojo eval {run_dir} --policy {done.path}", highlight=False)
