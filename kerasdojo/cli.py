"""The kerasdojo command line.

Heavy imports (TensorFlow, Keras, Gymnasium) happen inside command bodies, so
``kerasdojo --help`` answers in a fraction of a second. Errors a user can cause
are :class:`~kerasdojo.errors.DojoError`: printed as one line on stderr, exit
code 2, no traceback unless ``KERASDOJO_DEBUG=1``.
"""

from __future__ import annotations

import os
import platform
import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from kerasdojo import __version__
from kerasdojo.agents import AGENT_NAMES
from kerasdojo.errors import DojoError

CONTEXT = {"help_option_names": ["-h", "--help"]}
RUNS_DIR = "runs"


class _DojoGroup(TyperGroup):
    """Turns DojoError into one line on stderr and its exit code."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DojoError as exc:
            if os.environ.get("KERASDOJO_DEBUG", "") not in ("", "0"):
                traceback.print_exc()
            typer.echo(exc.one_line(), err=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_DojoGroup,
    name="kerasdojo",
    help="Train Keras agents on Gymnasium environments, run supervised baselines, watch it all in TensorBoard.",
    no_args_is_help=True,
    context_settings=CONTEXT,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
supervised_app = typer.Typer(
    help="Supervised baselines: XOR, MNIST / Fashion-MNIST, digits from an image folder.",
    no_args_is_help=True,
    context_settings=CONTEXT,
)
app.add_typer(supervised_app, name="supervised")

AgentName = Enum("AgentName", {name: name for name in AGENT_NAMES}, type=str)  # type: ignore[misc]


class ModelKind(str, Enum):
    mlp = "mlp"
    cnn = "cnn"


class DatasetName(str, Enum):
    mnist = "mnist"
    fashion = "fashion"


class ShowDataset(str, Enum):
    mnist = "mnist"
    fashion = "fashion"
    digits = "digits"


class LrSchedule(str, Enum):
    cosine = "cosine"
    constant = "constant"


class XorImpl(str, Enum):
    keras = "keras"
    numpy = "numpy"


class Optimizer(str, Enum):
    adam = "adam"
    rmsprop = "rmsprop"
    sgd = "sgd"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kerasdojo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """kerasdojo: a terminal sandbox for training Keras agents."""


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Parent folder of run directories.")]


# --------------------------------------------------------------------------- info / tensorboard


@app.command()
def info() -> None:
    """Versions of kerasdojo and its stack, and the devices TensorFlow sees."""
    from rich.table import Table

    from kerasdojo import backend

    tf = backend.tf()
    import gymnasium
    import keras
    import numpy

    console = _console()
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
    ):
        table.add_row(name, version)
    console.print(table)
    devices = Table(title="Devices TensorFlow sees")
    for column in ("name", "type", "details"):
        devices.add_column(column)
    gpus = 0
    for dev in backend.devices():
        details = ", ".join(f"{k}: {v}" for k, v in dev.items() if k not in ("name", "type"))
        devices.add_row(dev["name"], dev["type"], details)
        gpus += dev["type"] == "GPU"
    console.print(devices)
    if not gpus:
        console.print("No GPU visible to TensorFlow: training runs on the CPU.")


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
    from kerasdojo import envs as envs_mod

    console = _console()
    if name and envs_mod.is_registered(name):
        d = envs_mod.describe(name)
        from rich.table import Table

        table = Table(title=name, show_header=False)
        for key, value in d.items():
            table.add_row(key, str(value))
        console.print(table)
        return
    groups = envs_mod.list_envs(name)
    if not groups:
        raise DojoError(f"No registered environment matches {name!r}", hint="run kerasdojo envs to see them all")
    for group, ids in groups.items():
        console.print(f"[bold]===== {group} =====[/bold]")
        console.print("  ".join(ids), soft_wrap=False)
    console.print(f"\n{sum(len(v) for v in groups.values())} environments. Describe one: kerasdojo envs CartPole-v1")


@app.command()
def agents() -> None:
    """List the agents and the action spaces each supports."""
    from rich.table import Table

    from kerasdojo.agents import REGISTRY

    table = Table(title="Agents")
    for column in ("name", "action spaces", "description"):
        table.add_column(column)
    for agent in REGISTRY.values():
        table.add_row(agent.name, ", ".join(agent.action_spaces), agent.summary)
    _console().print(table)


# --------------------------------------------------------------------------- RL: train / eval / resume


@app.command(no_args_is_help=True)
def train(
    env: Annotated[str, typer.Argument(help="A registered Gymnasium id (CartPole-v1) or module:Class.")],
    agent: Annotated[AgentName, typer.Option("--agent", "-a", help="Algorithm.")] = "ppo",  # type: ignore[assignment]
    steps: Annotated[int | None, typer.Option("--steps", "-n", help="Total env steps [default: preset's].")] = None,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Seed for networks, envs and sampling.")] = 0,
    n_envs: Annotated[int | None, typer.Option("--n-envs", help="Parallel envs [default: preset's].")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a hyperparameter: key=value (repeatable).")
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train an agent; logs go to TensorBoard, the agent and its evaluation into the run directory."""
    from kerasdojo.agents import trainer

    job = trainer.TrainSpec(
        env_id=env,
        agent=agent.value if isinstance(agent, Enum) else str(agent),
        seed=seed,
        total_steps=steps,
        n_envs=n_envs,
        overrides=_overrides(config, set_),
        env_kwargs=_pairs(env_kwargs, "--env-kwargs"),
        async_envs=async_envs,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        save_every=save_every,
        video=video,
    )
    session = trainer.start(job, runs_dir)
    _run_training(session, quiet)


@app.command(no_args_is_help=True)
def resume(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by kerasdojo train.")],
    steps: Annotated[int | None, typer.Option("--steps", "-n", help="New total env steps for the run.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Continue a run from its last checkpoint (same curves, optimizer, buffer, RNG states)."""
    from kerasdojo.agents import trainer

    session = trainer.resume(run_dir, steps)
    _run_training(session, quiet)


def _run_training(session: Any, quiet: bool) -> None:
    from kerasdojo.progress import TrainingProgress

    console = _console()
    console.print(f"[bold]{session.title}[/bold]  ->  {session.run.path}")
    with TrainingProgress(session.total_steps, session.start_step, console=console, disable=quiet) as bar:
        summary = session.train(bar.update)
    console.print(
        f"Done: {summary['steps']:,} steps in {summary['seconds']:.1f} s ({summary['fps']:,.0f} steps/s). "
        f"Final evaluation over {summary['eval']['episodes']} episodes: "
        f"{summary['eval']['mean_reward']:.2f} ± {summary['eval']['std_reward']:.2f}"
    )
    if summary.get("best_eval") is not None and summary["best_eval"] > summary["eval"]["mean_reward"]:
        console.print(
            f"Best evaluation: {summary['best_eval']:.2f} at step {summary['best_step']:,} "
            "(kept as best_agent.npz / best_policy.keras; kerasdojo eval RUN --best)"
        )
    console.print(f"Run directory: {session.run.path}")
    if summary.get("video"):
        console.print(f"Video: {summary['video']}")
    console.print(f"Watch the curves: kerasdojo tensorboard --logdir {session.run.path.parent}")


@app.command(name="eval", no_args_is_help=True)
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by kerasdojo train.")],
    episodes: Annotated[int, typer.Option("--episodes", "-e", help="Episodes to run.", min=1)] = 10,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Seed for the evaluation envs.")] = 1000,
    video: Annotated[Path | None, typer.Option("--video", help="Record the first episode to a .gif or .mp4.")] = None,
    render: Annotated[bool, typer.Option("--render", help="Show the episodes in a window (needs a display).")] = False,
    stochastic: Annotated[
        bool, typer.Option("--stochastic", help="Sample actions instead of the greedy policy.")
    ] = False,
    best: Annotated[bool, typer.Option("--best", help="Use the agent of the best evaluation during training.")] = False,
) -> None:
    """Evaluate a trained agent from its run directory alone; prints mean ± std return."""
    from kerasdojo.agents import trainer

    result = trainer.evaluate_run(
        run_dir, episodes, seed, video=video, render=render, deterministic=not stochastic, best=best
    )
    console = _console()
    console.print(
        f"{result['env_id']} / {result['agent']} ({result['source']}): "
        f"mean return {result['mean_reward']:.2f} ± {result['std_reward']:.2f} over {result['episodes']} episodes "
        f"(mean length {result['mean_ep_length']:.1f})"
    )
    if result.get("video"):
        console.print(f"Video: {result['video']}")


def _overrides(config: Path | None, set_: list[str] | None) -> dict[str, Any]:
    from kerasdojo import config as config_mod

    merged: dict[str, Any] = {}
    if config is not None:
        merged.update(config_mod.load_toml(config))
    merged.update(config_mod.parse_set(set_ or []))
    return merged


def _pairs(values: list[str] | None, flag: str) -> dict[str, Any]:
    from kerasdojo.envs import parse_env_kwargs

    return parse_env_kwargs(values or [], flag)


# --------------------------------------------------------------------------- supervised


@supervised_app.command()
def xor(
    impl: Annotated[XorImpl, typer.Option("--impl", help="keras: a Keras MLP; numpy: from scratch.")] = XorImpl.keras,
    hidden: Annotated[int, typer.Option("--hidden", help="Hidden units.")] = 8,
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs [default: 40 keras, 4000 numpy].")] = 0,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate [default: 0.05 keras, 1.0 numpy].")] = 0.0,
    seed: Annotated[int, typer.Option("--seed", "-s")] = 0,
    runs_dir: RunsDir = Path(RUNS_DIR),
) -> None:
    """Learn XOR with a Keras MLP or a from-scratch NumPy MLP; prints the truth table."""
    from rich.table import Table

    from kerasdojo.supervised import xor as xor_mod

    run, result = xor_mod.run(xor_mod.XorConfig(impl.value, hidden, epochs, lr, seed), runs_dir)
    table = Table(title=f"XOR ({impl.value})")
    for column in ("x1", "x2", "target", "p(1)", "prediction"):
        table.add_column(column, justify="right")
    for (a, b), t, p, pred in zip(xor_mod.X, xor_mod.Y, result.probabilities, result.predictions, strict=True):
        mark = "" if pred == t else " ✗"
        table.add_row(str(int(a)), str(int(b)), str(int(t)), f"{p:.3f}", f"{pred}{mark}")
    console = _console()
    console.print(table)
    console.print(f"{result.correct}/4 correct, final loss {result.losses[-1]:.4g}. Run directory: {run.path}")


@supervised_app.command()
def mnist(
    model: Annotated[ModelKind, typer.Option("--model", "-m", help="mlp or cnn.")] = ModelKind.mlp,
    dataset: Annotated[DatasetName, typer.Option("--dataset", help="mnist or fashion.")] = DatasetName.mnist,
    data: Annotated[
        Path | None, typer.Option("--data", help="A Keras-format .npz or a folder of the four IDX files.")
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs.")] = 20,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Minibatch size.")] = 128,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 1e-3,
    optimizer: Annotated[Optimizer, typer.Option("--optimizer", help="adam, rmsprop or sgd.")] = Optimizer.adam,
    lr_schedule: Annotated[
        LrSchedule, typer.Option("--lr-schedule", help="cosine: decay to 0 over training; or constant.")
    ] = LrSchedule.cosine,
    limit: Annotated[int | None, typer.Option("--limit", help="Use only the first N training images.")] = None,
    val_split: Annotated[
        float, typer.Option("--val-split", help="Hold out this fraction for validation (0: validate on test).")
    ] = 0.0,
    seed: Annotated[int, typer.Option("--seed", "-s")] = 0,
    runs_dir: RunsDir = Path(RUNS_DIR),
) -> None:
    """Train the classic Keras MLP or CNN on MNIST or Fashion-MNIST."""
    from kerasdojo.supervised import mnist as mnist_mod

    cfg = mnist_mod.MnistConfig(
        model=model.value,
        dataset=dataset.value,
        data=str(data) if data else None,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer.value,
        lr_schedule=lr_schedule.value,
        limit=limit,
        val_split=val_split,
        seed=seed,
    )
    run, result = mnist_mod.run(cfg, runs_dir)
    _print_metrics(run, result.metrics)


@supervised_app.command()
def digits(
    data: Annotated[Path, typer.Option("--data", help="Folder with train.csv, optional test.csv and Images/.")],
    images: Annotated[Path | None, typer.Option("--images", help="Folder of the images, if elsewhere.")] = None,
    model: Annotated[ModelKind, typer.Option("--model", "-m", help="mlp or cnn.")] = ModelKind.mlp,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs.")] = 20,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Minibatch size.")] = 128,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 1e-3,
    optimizer: Annotated[Optimizer, typer.Option("--optimizer", help="adam, rmsprop or sgd.")] = Optimizer.adam,
    lr_schedule: Annotated[
        LrSchedule, typer.Option("--lr-schedule", help="cosine: decay to 0 over training; or constant.")
    ] = LrSchedule.cosine,
    val_split: Annotated[float, typer.Option("--val-split", help="Stratified validation fraction.")] = 0.1,
    seed: Annotated[int, typer.Option("--seed", "-s")] = 0,
    runs_dir: RunsDir = Path(RUNS_DIR),
) -> None:
    """Identify the digits: train on a folder of images + train.csv, predict test.csv."""
    from kerasdojo.supervised import digits as digits_mod

    cfg = digits_mod.DigitsConfig(
        data=str(data),
        images=str(images) if images else None,
        model=model.value,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer.value,
        lr_schedule=lr_schedule.value,
        val_split=val_split,
        seed=seed,
    )
    run, result = digits_mod.run(cfg, runs_dir)
    _print_metrics(run, result.metrics)
    if (run.path / "predictions.csv").exists():
        _console().print(f"Predictions: {run.path / 'predictions.csv'}")


def _print_metrics(run: Any, metrics: dict[str, Any]) -> None:
    console = _console()
    parts = [f"{k} {metrics[k]:.4f}" for k in ("val_accuracy", "test_accuracy", "test_loss") if k in metrics]
    console.print(f"{metrics['epochs']} epochs, {metrics['seconds_per_epoch']:.1f} s/epoch. " + ", ".join(parts))
    console.print(f"Run directory: {run.path}")
    console.print(f"Watch the curves: kerasdojo tensorboard --logdir {run.path.parent}")


@supervised_app.command()
def show(
    dataset: Annotated[ShowDataset, typer.Argument(help="mnist, fashion or digits.")],
    index: Annotated[int, typer.Option("--index", "-i", help="Which sample.", min=0)] = 0,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write [default: <dataset>_<index>.png].")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Dataset path (.npz, IDX folder, or digits folder).")
    ] = None,
    split: Annotated[str, typer.Option("--split", help="train or test.")] = "train",
    scale: Annotated[int, typer.Option("--scale", help="Enlargement factor.", min=1, max=64)] = 10,
) -> None:
    """Write one sample as an enlarged PNG and print its label."""
    from kerasdojo.supervised import show as show_mod

    path, label = show_mod.show(dataset.value, index, out, data, split, scale)
    typer.echo(f"{dataset.value} {split}[{index}]: label {label if label is not None else '(none)'} -> {path}")


@supervised_app.command(no_args_is_help=True)
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A supervised run directory (mnist or digits).")],
    images: Annotated[list[Path], typer.Argument(help="Image files to label.")],
) -> None:
    """Label image files with a trained supervised model."""
    from kerasdojo.supervised import show as show_mod

    for path, label, confidence in show_mod.predict(run_dir, images):
        typer.echo(f"{path}\t{label}\t{confidence:.3f}")


def main() -> None:
    """Console entry point."""
    try:
        app()
    except DojoError as exc:  # raised outside a command (should not happen, but never show a traceback)
        typer.echo(exc.one_line(), err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
