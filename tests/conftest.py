"""Shared fixtures. Tests never download: MNIST comes from ../shared/data when present
(tests that need it skip otherwise); everything else is written to tmp_path."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
# XLA's compiled programs go to a cache of this test session, not the user's ~/.cache.
if "KERASDOJO_XLA_CACHE" not in os.environ:
    os.environ["KERASDOJO_XLA_CACHE"] = tempfile.mkdtemp(prefix="kerasdojo-xla-")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("KERASDOJO_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture(scope="session")
def mnist_npz() -> Path:
    path = SHARED_DATA / "mnist" / "mnist.npz"
    if not path.is_file():
        pytest.skip(f"MNIST not found at {path}")
    return path


def digit_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Small synthetic 'digits': class k is a bar at a position and angle set by k, plus noise.
    Learnable in a few epochs, so tests can check that training works end to end."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = np.zeros((n, 28, 28), np.float32)
    yy, xx = np.mgrid[0:28, 0:28]
    for i, k in enumerate(labels):
        angle = np.pi * k / 10
        cx, cy = 14 + rng.normal(0, 1), 14 + rng.normal(0, 1)
        dist = np.abs((xx - cx) * np.sin(angle) - (yy - cy) * np.cos(angle))
        images[i] = np.clip(1.5 - dist, 0, 1) * (np.hypot(xx - cx, yy - cy) < 6 + k % 3 * 2)
    images = np.clip(images * 255 + rng.normal(0, 10, images.shape), 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def write_idx_folder(folder: Path, n_train: int, n_test: int) -> Path:
    """The four MNIST IDX files (gzipped) of synthetic digits in a new ``folder``."""
    from kerasdojo.supervised.data import write_idx

    folder.mkdir()
    x, y = digit_images(n_train + n_test)
    write_idx(folder / "train-images-idx3-ubyte.gz", x[:n_train])
    write_idx(folder / "train-labels-idx1-ubyte.gz", y[:n_train].astype(np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", x[n_train:])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", y[n_train:].astype(np.uint8))
    return folder


@pytest.fixture
def idx_folder(tmp_path: Path) -> Path:
    """A folder with the four MNIST IDX files (gzipped), 600 train and 200 test images."""
    return write_idx_folder(tmp_path / "idx", 600, 200)


def write_digits_folder(root: Path, n_train: int, n_test: int, seed: int, gray_too: bool = False) -> Path:
    """The 'identify the digits' layout under ``root``: train.csv, test.csv, Images/train and
    Images/test of PNG digits (RGBA; with ``gray_too`` two of three training images gray)."""
    import imageio.v3 as iio

    (root / "Images" / "train").mkdir(parents=True)
    (root / "Images" / "test").mkdir(parents=True)
    x, y = digit_images(n_train + n_test, seed=seed)
    lines = ["filename,label"]
    for i in range(n_train):
        rgba = np.zeros((28, 28, 4), np.uint8)
        rgba[..., :3] = x[i, ..., None]
        rgba[..., 3] = 255
        iio.imwrite(root / "Images" / "train" / f"{i}.png", x[i] if gray_too and i % 3 else rgba)
        lines.append(f"{i}.png,{y[i]}")
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    test_lines = ["filename"]
    for i in range(n_train, n_train + n_test):
        iio.imwrite(root / "Images" / "test" / f"{i}.png", x[i])
        test_lines.append(f"{i}.png")
    (root / "test.csv").write_text("\n".join(test_lines) + "\n")
    return root


@pytest.fixture
def digits_folder(tmp_path: Path) -> Path:
    """The 'identify the digits' layout: train.csv, test.csv, Images/train, Images/test (PNG, RGBA)."""
    return write_digits_folder(tmp_path / "digits", 300, 40, seed=1)
