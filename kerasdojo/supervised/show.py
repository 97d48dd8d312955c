"""Look at the data and use a trained model: ``supervised show`` and ``supervised predict``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kerasdojo.errors import DojoError
from kerasdojo.files import atomic_path, is_zip
from kerasdojo.runs import Run
from kerasdojo.supervised import data, folder


def show(
    dataset: str, index: int, out: Path | None, data_path: Path | None, split: str = "train", scale: int = 10
) -> tuple[Path, int | None]:
    """Write sample ``index`` of ``dataset`` enlarged ``scale`` times as a PNG; return (path, label)."""
    import imageio.v3 as iio

    if split not in ("train", "test"):
        raise DojoError(f"--split must be train or test. Received: {split}")
    if dataset == "digits":
        if data_path is None:
            raise DojoError("show digits needs --data DIR (the folder with train.csv)")
        sample = _digits_sample(Path(data_path), split, index)
    else:
        ds = data.load_dataset(dataset, data_path)
        part = ds.train if split == "train" else ds.test
        assert part is not None
        if index >= len(part.x):
            raise DojoError(f"--index {index} is out of range: {dataset} {split} has {len(part.x)} samples")
        sample = (part.x[index], None if part.y is None else int(part.y[index]))
    image, label = sample
    out = Path(out) if out is not None else Path(f"{dataset}_{split}_{index}.png")
    big = np.asarray(image).repeat(scale, 0).repeat(scale, 1)
    with atomic_path(out, suffix=".png") as tmp:
        iio.imwrite(tmp, big)
    return out, label


def _digits_sample(root: Path, split: str, index: int) -> tuple[np.ndarray, int | None]:
    csv_path = root / f"{split}.csv"
    if not csv_path.is_file():
        raise DojoError(f"{root} has no {split}.csv")
    rows = folder.read_csv(csv_path, ("filename", "label") if split == "train" else ("filename",))
    if index >= len(rows):
        raise DojoError(f"--index {index} is out of range: {csv_path} has {len(rows)} rows")
    line, row = rows[index]
    where = f"{csv_path.name} line {line}"
    path = folder.find_image(folder.image_dirs(root, split, None), row["filename"], where)
    label = row.get("label")
    return folder.read_image(path, where), int(label) if label and label.isascii() and label.isdigit() else None


def predict(run_dir: Path, images: list[Path]) -> Iterator[tuple[Path, int, float]]:
    """Yield (path, label, confidence) for each image, using the run's ``model.keras``."""
    from kerasdojo import backend
    from kerasdojo.supervised.fit import predict_labels

    run = Run.open(run_dir, kind="supervised run")
    task = run.config.get("task")
    if task not in ("mnist", "digits"):
        raise DojoError(f"{run_dir} is a {task or 'non-supervised'} run; predict needs an mnist or digits run")
    model_path = run.path / "model.keras"
    if not model_path.is_file():
        raise DojoError(f"{run_dir} has no model.keras: the run did not finish")
    if not images:
        raise DojoError("Give at least one image file to label")
    batch = np.stack([folder.read_image(p) for p in images])
    if not is_zip(model_path):
        raise DojoError(f"{model_path} is damaged: not a .keras (zip) file", hint="train the model again")
    keras = backend.keras()
    try:
        model = keras.models.load_model(model_path)
    except Exception as exc:
        raise DojoError(f"{model_path} cannot be loaded ({type(exc).__name__}: {exc})") from None
    labels, confidence = predict_labels(model, batch)
    yield from zip(images, (int(v) for v in labels), (float(c) for c in confidence), strict=True)


def check_inputs(run: Run, n: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """Up to ``n`` inputs for checking an exported copy of a supervised run's ``model.keras``, as
    the model takes them, and where they come from: the run's test images (its training images
    when it had none) where its data is still there, the four XOR points and random points in
    the unit square for XOR, random images otherwise (never a download)."""
    from kerasdojo.supervised.fit import to_inputs

    config = run.config
    task = config.get("task")
    rng = np.random.default_rng(seed)
    if task == "xor":
        from kerasdojo.supervised.xor import X

        points = np.concatenate([X, rng.uniform(0, 1, (max(n - len(X), 0), 2)).astype(np.float32)])
        return points[:n], "the 4 XOR points and random points in the unit square"
    where = config.get("data")
    try:
        if task == "digits" and where and Path(where).is_dir():
            found = folder.load_digits_folder(where, config.get("images"))
        elif task == "mnist" and where and Path(where).exists():
            found = data.load_dataset(config.get("dataset", "mnist"), where)
        elif task == "mnist" and not where and _in_keras_cache(config.get("dataset", "mnist")):
            found = data.load_dataset(config.get("dataset", "mnist"))  # Keras's own copy: no download
        else:
            found = None
    except DojoError:
        found = None
    if found is None:
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        return to_inputs(images), f"{n:,} random images (the run's data is not at {where or 'a local path'})"
    split = found.test if found.test is not None and len(found.test.x) else found.train
    name = "test" if split is found.test else "training"
    return to_inputs(split.x[:n]), f"{min(n, len(split.x)):,} of the run's {name} images"


def _in_keras_cache(dataset: str) -> bool:
    """Whether Keras's loader has ``dataset`` on disk already (so loading it downloads nothing)."""
    import os

    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    return (cache / ("mnist.npz" if dataset == "mnist" else "fashion-mnist")).exists()
