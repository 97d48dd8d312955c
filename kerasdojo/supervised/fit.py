"""Training, evaluation and saving shared by the supervised tasks.

One routine, :func:`fit_classifier`, trains a Keras classifier with ``model.fit``
(the Keras TensorBoard callback writes the train/ and validation/ curves),
evaluates it on the test set, logs sample images and the confusion matrix to
TensorBoard, and saves ``model.keras`` into the run.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kerasdojo import backend
from kerasdojo.errors import DojoError
from kerasdojo.events import EventWriter, markdown_table, write_hparams
from kerasdojo.files import save_keras_model
from kerasdojo.runs import Run

MODELS = ("mlp", "cnn")
OPTIMIZERS = ("adam", "rmsprop", "sgd")
SCHEDULES = ("constant", "cosine")


def check_positive(**values: float) -> None:
    """Raise a one-line error for any non-positive training setting (epochs, batch size...)."""
    for name, value in values.items():
        if value is not None and not value > 0:
            raise DojoError(f"--{name.replace('_', '-')} must be positive. Received: {value}")


def to_inputs(x: np.ndarray) -> np.ndarray:
    """uint8 images (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1]."""
    return (x.astype(np.float32) / 255.0)[..., None]


def build_classifier(kind: str, num_classes: int = 10) -> Any:
    """The MLP (784-512-512-10, dropout 0.2) or CNN baseline, with a softmax output."""
    from kerasdojo import networks

    backend.tf()
    if kind == "mlp":
        return networks.mlp(
            (28, 28, 1),
            hidden=(512, 512),
            activation="relu",
            dropout=0.2,
            output_dim=num_classes,
            output_activation="softmax",
            name="mnist_mlp",
        )
    if kind == "cnn":
        return networks.mnist_cnn((28, 28, 1), num_classes, name="mnist_cnn", output_activation="softmax")
    raise DojoError(f"Unknown model. Received: {kind!r}", hint="valid: " + ", ".join(MODELS))


def make_optimizer(name: str, lr: float, schedule: str = "constant", total_steps: int = 1) -> Any:
    """Adam, RMSprop or SGD (momentum 0.9); ``schedule="cosine"`` decays ``lr`` to 0 over ``total_steps``."""
    keras = backend.keras()
    if schedule not in SCHEDULES:
        raise DojoError(f"Unknown learning-rate schedule. Received: {schedule!r}", hint="valid: constant, cosine")
    rate = keras.optimizers.schedules.CosineDecay(lr, max(total_steps, 1)) if schedule == "cosine" else lr
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=rate)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, momentum=0.9)
    raise DojoError(f"Unknown optimizer. Received: {name!r}", hint="valid: " + ", ".join(OPTIMIZERS))


def steps_for(samples: int, batch_size: int, epochs: int) -> int:
    return epochs * math.ceil(samples / batch_size)


@dataclass
class FitResult:
    metrics: dict[str, Any]
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds_per_epoch: list[float] = field(default_factory=list)


def fit_classifier(
    model: Any,
    run: Run,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    test: tuple[np.ndarray, np.ndarray] | None,
    cfg: Any,
    *,
    quiet: bool = False,
    callbacks: list[Any] | None = None,
) -> FitResult:
    """Compile and fit ``model``; evaluate, log images and save ``model.keras``.

    ``cfg`` is the task's config: ``epochs``, ``batch_size``, ``optimizer``, ``lr``, ``lr_schedule``.

    The caller writes ``metrics.json`` last: its presence marks a finished run.

    Inputs are uint8 images and integer labels; validation curves use ``val``
    (falling back to ``test`` when ``val`` is None, as the classic Keras baselines do).
    """
    epochs, batch_size = cfg.epochs, cfg.batch_size
    total_steps = steps_for(len(train[0]), batch_size, epochs)
    optimizer = make_optimizer(cfg.optimizer, cfg.lr, cfg.lr_schedule, total_steps)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x_train, y_train = to_inputs(train[0]), train[1]
    val_data = val if val is not None else test
    validation = (to_inputs(val_data[0]), val_data[1]) if val_data is not None else None
    timer = epoch_timer()
    tb = epoch_tensorboard(run.path)
    history = model.fit(
        x_train,
        y_train,
        batch_size=batch_size,
        epochs=epochs,
        validation_data=validation,
        callbacks=[tb, timer, epoch_progress(epochs, quiet), *(callbacks or [])],
        verbose=0,
        shuffle=True,
    )
    hist = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    metrics: dict[str, Any] = {
        "epochs": epochs,
        "train_samples": int(len(x_train)),
        "train_loss": hist["loss"][-1],
        "train_accuracy": hist["accuracy"][-1],
        "seconds_per_epoch": round(float(np.median(timer.seconds)), 3),
    }
    if val is not None:
        metrics.update(val_loss=hist["val_loss"][-1], val_accuracy=hist["val_accuracy"][-1], val_samples=len(val[0]))
    report = test if test is not None else val
    if report is not None:
        x_eval, y_eval = to_inputs(report[0]), report[1]
        probs = model.predict(x_eval, batch_size=1024, verbose=0)
        pred = probs.argmax(axis=1)
        loss = float(np.mean(-np.log(np.clip(probs[np.arange(len(y_eval)), y_eval], 1e-7, 1.0))))
        prefix = "test" if test is not None else "val"
        metrics[f"{prefix}_loss"] = loss
        metrics[f"{prefix}_accuracy"] = float(np.mean(pred == y_eval))
        matrix = confusion_matrix(y_eval, pred, probs.shape[1])
        metrics["confusion_matrix"] = matrix.tolist()
        log_images(run, report[0], y_eval, pred, matrix, epochs, prefix)
    save_keras_model(model, run.path / "model.keras")
    run.writer.flush()
    return FitResult(metrics, hist, timer.seconds)


def epoch_tensorboard(logdir: Path) -> Any:
    """Epoch curves in ``train/`` and ``validation/``, with the tags Keras's TensorBoard
    callback uses (``epoch_loss``, ``epoch_accuracy``, ``epoch_learning_rate``).

    Not ``keras.callbacks.TensorBoard``: in Keras 3 it implements ``on_train_batch_end``,
    which turns off Keras's asynchronous callback dispatch and makes four ``tf.summary``
    calls per batch even with ``update_freq="epoch"``; that cost 6% of an MLP epoch here.
    This callback has epoch hooks only.
    """
    keras = backend.keras()

    class EpochTensorBoard(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.train = EventWriter(logdir / "train")
            self.validation = EventWriter(logdir / "validation")

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            for name, value in (logs or {}).items():
                if name.startswith("val_"):
                    self.validation.scalar(f"epoch_{name[4:]}", float(value), epoch)
                else:
                    self.train.scalar(f"epoch_{name}", float(value), epoch)
            lr = getattr(self.model.optimizer, "learning_rate", None)  # the current value, schedules included
            if lr is not None:
                self.train.scalar("epoch_learning_rate", float(np.asarray(lr)), epoch)
            self.train.flush()
            self.validation.flush()

        def on_train_end(self, logs: Any = None) -> None:
            self.train.close()
            self.validation.close()

    return EpochTensorBoard()


def epoch_timer() -> Any:
    """A Keras callback whose ``seconds`` list gets the wall time of each epoch."""
    keras = backend.keras()

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._start = 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int = 10) -> np.ndarray:
    matrix = np.zeros((n, n), np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def image_grid(images: np.ndarray, cols: int = 8, scale: int = 3, pad: int = 2) -> np.ndarray:
    """Tile uint8 images (N, H, W) into one grid image, enlarged ``scale`` times."""
    n, h, w = images.shape
    rows = math.ceil(n / cols)
    big = images.repeat(scale, 1).repeat(scale, 2)
    hh, ww = h * scale + pad, w * scale + pad
    grid = np.full((rows * hh + pad, cols * ww + pad), 96, np.uint8)
    for i, img in enumerate(big):
        r, c = divmod(i, cols)
        grid[pad + r * hh : pad + r * hh + h * scale, pad + c * ww : pad + c * ww + w * scale] = img
    return grid


def confusion_image(matrix: np.ndarray, cell: int = 24) -> np.ndarray:
    """The row-normalised confusion matrix as an RGB heat map (white = 0, dark blue = 1)."""
    rows = matrix.sum(axis=1, keepdims=True).clip(min=1)
    frac = matrix / rows
    white, blue = np.array([255, 255, 255], np.float32), np.array([8, 48, 107], np.float32)
    colours = (white + (blue - white) * np.sqrt(frac)[..., None]).astype(np.uint8)
    img = colours.repeat(cell, 0).repeat(cell, 1)
    img[::cell, :] = 200
    img[:, ::cell] = 200
    return img


def log_images(
    run: Run, x: np.ndarray, y: np.ndarray, pred: np.ndarray, matrix: np.ndarray, step: int, split: str
) -> None:
    """Sample images (with labels and predictions as text) and the confusion matrix (as an image
    and as a table). A tag belongs to one TensorBoard plugin, so the texts have tags of their own."""
    writer = run.writer
    k = min(32, len(x))
    writer.image(f"{split}/samples", image_grid(x[:k]), step)
    writer.text(
        f"{split}/samples_labels",
        "Row by row, label -> prediction: " + ", ".join(f"{a}->{b}" for a, b in zip(y[:k], pred[:k], strict=True)),
        step,
    )
    writer.image(f"{split}/confusion_matrix", confusion_image(matrix), step)
    header = "|true \\ pred|" + "|".join(str(i) for i in range(len(matrix))) + "|"
    lines = [header, "|" + "-|" * (len(matrix) + 1)]
    lines += [f"|{i}|" + "|".join(str(v) for v in row) + "|" for i, row in enumerate(matrix)]
    writer.text(f"{split}/confusion_matrix_counts", "\n".join(lines), step)
    writer.flush()


@contextmanager
def new_run(runs_dir: str | Path, parts: tuple[str, ...], config: dict[str, Any]) -> Iterator[Run]:
    """A new run directory holding config.json (and the config as TensorBoard text).

    A finished run is one with ``metrics.json``: if the task fails or is
    interrupted before writing it, the directory is removed again.
    """
    run = Run.create(runs_dir, *parts)
    try:
        run.write_json("config.json", config)
        run.writer.text("config", markdown_table([(k, str(v)) for k, v in config.items()]), 0)
        yield run
    except BaseException:
        run.close()
        if not (run.path / "metrics.json").exists():
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    run.close()


def predict_labels(model: Any, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = model.predict(to_inputs(images), batch_size=1024, verbose=0)
    return probs.argmax(axis=1), probs.max(axis=1)


def epoch_progress(epochs: int, quiet: bool = False) -> Any:
    """A Keras callback showing epochs with their loss and accuracy (rich; a plain line per
    epoch off a terminal). Epoch hooks only, so Keras keeps its asynchronous dispatch."""
    from kerasdojo.progress import Bar

    keras = backend.keras()

    class EpochProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.bar = Bar(epochs, label="epoch", disable=quiet, unit_lines=True).__enter__()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            text = "  ".join(f"{k} {float(v):.4f}" for k, v in (logs or {}).items() if k != "learning_rate")
            self.bar.update(epoch + 1, text)

        def on_train_end(self, logs: Any = None) -> None:
            self.bar.__exit__(None, None, None)

    return EpochProgress()


def finish(run: Run, config: dict[str, Any], metrics: dict[str, Any], step: int) -> None:
    """The run's HParams entry (its settings and final metrics, numbers only), then
    ``metrics.json``, whose presence marks a finished run."""
    final = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    write_hparams(run.path, config, final, step)
    run.write_json("metrics.json", metrics)
