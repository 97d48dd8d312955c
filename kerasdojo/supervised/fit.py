"""Training, evaluation and saving shared by the supervised tasks.

One routine, :func:`fit_classifier`, trains a Keras classifier with ``model.fit``
(the Keras TensorBoard callback writes the train/ and validation/ curves),
evaluates it on the test set, logs sample images and the confusion matrix to
TensorBoard, and saves ``model.keras`` into the run.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kerasdojo import backend
from kerasdojo.errors import DojoError
from kerasdojo.runs import Run, atomic_path, markdown_table

MODELS = ("mlp", "cnn")
OPTIMIZERS = ("adam", "rmsprop", "sgd")


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
        keras = backend.keras()
        model = networks.mnist_cnn((28, 28, 1), num_classes, name="mnist_cnn")
        return keras.Sequential([*model.layers, keras.layers.Softmax(name="softmax")], name="mnist_cnn")
    raise DojoError(f"Unknown model. Received: {kind!r}", hint="valid: " + ", ".join(MODELS))


def make_optimizer(name: str, lr: float) -> Any:
    keras = backend.keras()
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=0.9)
    raise DojoError(f"Unknown optimizer. Received: {name!r}", hint="valid: " + ", ".join(OPTIMIZERS))


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
    *,
    epochs: int,
    batch_size: int,
    optimizer: Any,
    verbose: int | None = None,
    callbacks: list[Any] | None = None,
) -> FitResult:
    """Compile and fit ``model``; evaluate, log images and save ``model.keras``.

    The caller writes ``metrics.json`` last: its presence marks a finished run.

    Inputs are uint8 images and integer labels; validation curves use ``val``
    (falling back to ``test`` when ``val`` is None, as the classic Keras baselines do).
    """
    keras = backend.keras()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x_train, y_train = to_inputs(train[0]), train[1]
    val_data = val if val is not None else test
    validation = (to_inputs(val_data[0]), val_data[1]) if val_data is not None else None
    timer = EpochTimer()
    tb = keras.callbacks.TensorBoard(log_dir=str(run.path), update_freq="epoch", write_graph=False)
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    history = model.fit(
        x_train,
        y_train,
        batch_size=batch_size,
        epochs=epochs,
        validation_data=validation,
        callbacks=[tb, timer, *(callbacks or [])],
        verbose=verbose,
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
    save_model(model, run.path / "model.keras")
    run.close()
    return FitResult(metrics, hist, timer.seconds)


def save_model(model: Any, path: Path) -> None:
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


class EpochTimer:
    """A Keras callback recording the wall seconds of each epoch."""

    def __new__(cls) -> Any:
        keras = backend.keras()

        class _Timer(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.seconds: list[float] = []
                self._start = 0.0

            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                self.seconds.append(time.perf_counter() - self._start)

        return _Timer()


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
    """Sample images (with labels and predictions as text) and the confusion matrix."""
    writer = run.writer
    k = min(32, len(x))
    writer.image(f"{split}/samples", image_grid(x[:k]), step)
    writer.text(
        f"{split}/samples",
        "Row by row, label -> prediction: " + ", ".join(f"{a}->{b}" for a, b in zip(y[:k], pred[:k], strict=True)),
        step,
    )
    writer.image(f"{split}/confusion_matrix", confusion_image(matrix), step)
    header = "|true \\ pred|" + "|".join(str(i) for i in range(len(matrix))) + "|"
    lines = [header, "|" + "-|" * (len(matrix) + 1)]
    lines += [f"|{i}|" + "|".join(str(v) for v in row) + "|" for i, row in enumerate(matrix)]
    writer.text(f"{split}/confusion_matrix", "\n".join(lines), step)
    writer.flush()


def log_config(run: Run, config: dict[str, Any]) -> None:
    run.writer.text("config", markdown_table([(k, str(v)) for k, v in config.items()]), 0)


@contextmanager
def run_guard(run: Run, finished_file: str) -> Any:
    """Remove the run directory if the task fails before writing ``finished_file``."""
    import shutil

    try:
        yield run
    except BaseException:
        run.close()
        if not (run.path / finished_file).exists():
            shutil.rmtree(run.path, ignore_errors=True)
        raise


def predict_labels(model: Any, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = model.predict(to_inputs(images), batch_size=1024, verbose=0)
    return probs.argmax(axis=1), probs.max(axis=1)


def progress_printer(label: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        print(f"\r{label}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)

    return report
