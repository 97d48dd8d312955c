"""Identify the digits: a classifier trained from a folder of images plus a CSV of labels.

Layout of ``--data DIR``::

    DIR/train.csv          filename,label   (label 0-9)
    DIR/test.csv           filename         (optional)
    DIR/Images/train/...   the images named in train.csv
    DIR/Images/test/...    the images named in test.csv

Images may also sit beside the CSVs, or under ``--images``. They are read with
imageio and converted to 28x28 grayscale. A stratified part of the labelled
images is held out for validation; ``predictions.csv`` gets a label for each
test image.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kerasdojo import backend
from kerasdojo.errors import DojoError
from kerasdojo.files import atomic_path
from kerasdojo.progress import Counter
from kerasdojo.runs import Run
from kerasdojo.supervised import data, fit, folder


@dataclass(frozen=True)
class DigitsConfig:
    data: str = "."
    images: str | None = None
    model: str = "mlp"
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    lr_schedule: str = "cosine"
    val_split: float = 0.1
    seed: int = 0


def run(cfg: DigitsConfig, runs_dir: str | Path = "runs", quiet: bool = False) -> tuple[Run, fit.FitResult]:
    fit.check_positive(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr)
    if cfg.model not in fit.MODELS:
        fit.build_classifier(cfg.model)
    if not 0.0 < cfg.val_split < 1.0:
        raise DojoError(f"--val-split must be between 0 and 1. Received: {cfg.val_split}")
    dataset = folder.load_digits_folder(cfg.data, cfg.images, progress=Counter("reading images", quiet))
    y = dataset.train.y
    assert y is not None
    train_idx, val_idx = data.stratified_split(y, cfg.val_split, cfg.seed)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise DojoError(
            f"{cfg.data}/train.csv has too few images ({len(y)}) for a validation split",
            hint="each class needs at least two images",
        )
    x = dataset.train.x
    backend.seed_everything(cfg.seed)
    model = fit.build_classifier(cfg.model)
    config: dict[str, Any] = {
        "task": "digits",
        **asdict(cfg),
        "train_images": len(y),
        "input": "28x28 grayscale, pixels / 255",
    }
    with fit.new_run(runs_dir, ("digits", cfg.model, f"s{cfg.seed}"), config) as run_:
        train, val = (x[train_idx], y[train_idx]), (x[val_idx], y[val_idx])
        result = fit.fit_classifier(model, run_, train, val, None, cfg, quiet=quiet)
        if dataset.test is not None and len(dataset.test.x):
            labels, _ = fit.predict_labels(model, dataset.test.x)
            write_predictions(run_.path / "predictions.csv", dataset.test.names or [], labels)
            result.metrics["test_predictions"] = len(labels)
        fit.finish(run_, config, result.metrics, cfg.epochs)
    return run_, result


def write_predictions(path: Path, names: list[str], labels: Any) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["filename", "label"])
            writer.writerows(zip(names, (int(v) for v in labels), strict=True))
