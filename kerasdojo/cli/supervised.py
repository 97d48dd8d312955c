"""Supervised baselines: XOR, MNIST / Fashion-MNIST, digits from an image folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kerasdojo.cli.common import CONTEXT, RUNS_DIR, RunsDir, app, choices, console

supervised_app = typer.Typer(
    help="Supervised baselines: XOR, MNIST / Fashion-MNIST, digits from an image folder.",
    no_args_is_help=True,
    context_settings=CONTEXT,
)
app.add_typer(supervised_app, name="supervised")


ModelKind = choices("ModelKind", "mlp", "cnn")
DatasetName = choices("DatasetName", "mnist", "fashion")
ShowDataset = choices("ShowDataset", "mnist", "fashion", "digits")
LrSchedule = choices("LrSchedule", "cosine", "constant")
XorImpl = choices("XorImpl", "keras", "numpy")
Optimizer = choices("Optimizer", "adam", "rmsprop", "sgd")

# The training options of every classifier task (mnist, digits).
Epochs = Annotated[int, typer.Option("--epochs", help="Training epochs.")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Minibatch size.")]
LearningRate = Annotated[float, typer.Option("--lr", help="Learning rate.")]
OptimizerOption = Annotated[Optimizer, typer.Option("--optimizer", help="adam, rmsprop or sgd.")]
ScheduleOption = Annotated[
    LrSchedule, typer.Option("--lr-schedule", help="cosine: decay to 0 over training; or constant.")
]


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
    out = console()
    out.print(table)
    out.print(f"{result.correct}/4 correct, final loss {result.losses[-1]:.4g}. Run directory: {run.path}")


@supervised_app.command()
def mnist(
    model: Annotated[ModelKind, typer.Option("--model", "-m", help="mlp or cnn.")] = ModelKind.mlp,
    dataset: Annotated[DatasetName, typer.Option("--dataset", help="mnist or fashion.")] = DatasetName.mnist,
    data: Annotated[
        Path | None, typer.Option("--data", help="A Keras-format .npz or a folder of the four IDX files.")
    ] = None,
    epochs: Epochs = 20,
    batch_size: BatchSize = 128,
    lr: LearningRate = 1e-3,
    optimizer: OptimizerOption = Optimizer.adam,
    lr_schedule: ScheduleOption = LrSchedule.cosine,
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
    epochs: Epochs = 20,
    batch_size: BatchSize = 128,
    lr: LearningRate = 1e-3,
    optimizer: OptimizerOption = Optimizer.adam,
    lr_schedule: ScheduleOption = LrSchedule.cosine,
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
        console().print(f"Predictions: {run.path / 'predictions.csv'}")


def _print_metrics(run: Any, metrics: dict[str, Any]) -> None:
    out = console()
    parts = [f"{k} {metrics[k]:.4f}" for k in ("val_accuracy", "test_accuracy", "test_loss") if k in metrics]
    out.print(f"{metrics['epochs']} epochs, {metrics['seconds_per_epoch']:.1f} s/epoch. " + ", ".join(parts))
    out.print(f"Run directory: {run.path}")
    out.print(f"Watch the curves: kerasdojo tensorboard --logdir {run.path.parent}")


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
