"""MNIST and Fashion-MNIST with the classic Keras MLP and CNN baselines."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kerasdojo import backend
from kerasdojo.runs import Run
from kerasdojo.supervised import data, fit


@dataclass(frozen=True)
class MnistConfig:
    model: str = "mlp"
    dataset: str = "mnist"
    data: str | None = None
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    lr_schedule: str = "cosine"
    limit: int | None = None
    val_split: float = 0.0
    seed: int = 0


def run(cfg: MnistConfig, runs_dir: str | Path = "runs", quiet: bool = False) -> tuple[Run, fit.FitResult]:
    """Train ``cfg.model`` on MNIST/Fashion-MNIST and return the run and its results."""
    fit.check_positive(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, limit=cfg.limit)
    if cfg.model not in fit.MODELS:
        fit.build_classifier(cfg.model)  # raises the one-line error
    if not 0.0 <= cfg.val_split < 1.0:
        from kerasdojo.errors import DojoError

        raise DojoError(f"--val-split must be in [0, 1). Received: {cfg.val_split}")
    dataset = data.load_dataset(cfg.dataset, cfg.data)
    x, y = dataset.train.x, dataset.train.y
    assert y is not None
    if cfg.limit:
        x, y = x[: cfg.limit], y[: cfg.limit]
    val = None
    if cfg.val_split > 0:
        train_idx, val_idx = data.stratified_split(y, cfg.val_split, cfg.seed)
        if len(val_idx) == 0:
            from kerasdojo.errors import DojoError

            raise DojoError(
                f"--val-split {cfg.val_split} of {len(y)} images leaves no validation image",
                hint="use more images (--limit) or a larger --val-split",
            )
        val = (x[val_idx], y[val_idx])
        x, y = x[train_idx], y[train_idx]
    test = (dataset.test.x, dataset.test.y) if dataset.test is not None else None

    backend.seed_everything(cfg.seed)
    model = fit.build_classifier(cfg.model)
    config: dict[str, Any] = {
        "task": "mnist",
        **asdict(cfg),
        "data_source": dataset.source,
        "input": "28x28 grayscale, pixels / 255",
    }
    with fit.new_run(runs_dir, (cfg.dataset, cfg.model, f"s{cfg.seed}"), config) as run_:
        result = fit.fit_classifier(model, run_, (x, y), val, test, cfg, quiet=quiet)
        fit.finish(run_, config, result.metrics, cfg.epochs)
    return run_, result
