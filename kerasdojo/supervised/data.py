"""Data loaders for the supervised baselines: IDX, Keras ``.npz`` (image folders + CSV: :mod:`.folder`).

Every loader validates what it reads and raises :class:`DojoError` naming the
file (and the CSV line) and what was expected. No TensorFlow here.
"""

from __future__ import annotations

import gzip
import os
import socket
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kerasdojo.errors import DojoError
from kerasdojo.files import is_zip

IMAGE_SIZE = 28
DATASETS = ("mnist", "fashion")
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


@dataclass
class Split:
    """Images (N, 28, 28) uint8 and integer labels (N,) (labels may be None for test data)."""

    x: np.ndarray
    y: np.ndarray | None
    names: list[str] | None = None


@dataclass
class Dataset:
    train: Split
    test: Split | None
    source: str


# --------------------------------------------------------------------------- IDX


def read_idx(path: str | Path, expect_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DojoError(f"IDX file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DojoError(f"{path} is not a readable (gzipped) IDX file: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        magic = int.from_bytes(raw[:4].ljust(4, b"\0"), "big")
        raise DojoError(
            f"{path} is not an IDX file: wrong magic number 0x{magic:08x}",
            hint="expected 0x00000803 (2051) for images or 0x00000801 (2049) for labels",
        )
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    if expect_ndim is not None and ndim != expect_ndim:
        want = {1: "labels (magic 2049)", 3: "images (magic 2051)"}.get(expect_ndim, f"{expect_ndim} dimensions")
        raise DojoError(f"{path} has {ndim} dimensions (magic {int.from_bytes(raw[:4], 'big')}); expected {want}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DojoError(f"{path} is truncated: its header needs {header} bytes, found {len(raw)}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = len(raw) - header
    if have < need:
        raise DojoError(f"{path} is truncated: shape {shape} needs {need} bytes of data, found {have}")
    return (
        np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape)), offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def write_idx(path: str | Path, array: np.ndarray, gz: bool | None = None) -> None:
    """Write ``array`` as IDX (gzipped when the name ends in .gz). Used by tests and tools."""
    path = Path(path)
    array = np.asarray(array)
    code = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}[array.dtype.newbyteorder("=")]
    data = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.astype(IDX_DTYPES[code]).tobytes()
    if gz if gz is not None else path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)


_IDX_NAMES = {
    "x_train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "y_train": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "x_test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "y_test": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _find_idx(folder: Path, key: str) -> Path:
    for stem in _IDX_NAMES[key]:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise DojoError(
        f"{folder} has no {_IDX_NAMES[key][0]}[.gz]",
        hint="a data folder needs the four IDX files: " + ", ".join(v[0] for v in _IDX_NAMES.values()),
    )


def load_idx_folder(folder: str | Path) -> Dataset:
    folder = Path(folder)
    arrays = {k: read_idx(_find_idx(folder, k), 3 if k.startswith("x") else 1) for k in _IDX_NAMES}
    return _dataset(arrays, str(folder))


# --------------------------------------------------------------------------- npz


def load_npz(path: str | Path) -> Dataset:
    path = Path(path)
    try:
        if not is_zip(path):
            raise ValueError("not a zip archive, as an .npz is")
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in _IDX_NAMES if k not in data.files]
            if missing:
                raise DojoError(
                    f"{path} is missing key(s) {', '.join(missing)}; found: {', '.join(data.files) or 'none'}",
                    hint="an .npz needs x_train, y_train, x_test, y_test (the Keras mnist.npz layout)",
                )
            arrays = {k: data[k] for k in _IDX_NAMES}
    except DojoError:
        raise
    except Exception as exc:  # BadZipFile, ValueError (pickled object arrays), OSError
        raise DojoError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc})") from None
    return _dataset(arrays, str(path))


def _dataset(arrays: dict[str, np.ndarray], source: str) -> Dataset:
    splits = []
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim == 4 and x.shape[-1] == 1:
            x = x[..., 0]
        if x.ndim != 3 or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise DojoError(f"{source}: x_{part} has shape {x.shape}; expected (N, 28, 28)")
        if not len(x):
            raise DojoError(f"{source}: x_{part} holds no images")
        y = np.asarray(y).reshape(-1)
        if len(y) != len(x):
            raise DojoError(f"{source}: x_{part} has {len(x)} images but y_{part} has {len(y)} labels")
        if not np.issubdtype(y.dtype, np.integer) or (len(y) and (y.min() < 0 or y.max() > 9)):
            raise DojoError(f"{source}: y_{part} must hold integer labels 0-9")
        x = _to_uint8(x, f"{source}: x_{part}")
        splits.append(Split(x, y.astype(np.int64)))
    return Dataset(splits[0], splits[1], source)


def _to_uint8(x: np.ndarray, what: str) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    is_float = np.issubdtype(x.dtype, np.floating)
    if not (is_float or np.issubdtype(x.dtype, np.integer)):
        raise DojoError(f"{what} must hold numbers (dtype {x.dtype})")
    if not x.size:
        return x.astype(np.uint8)
    if is_float and not np.isfinite(x).all():
        raise DojoError(f"{what} holds NaN or infinite values")
    low, high = x.min(), x.max()
    if low < 0 or high > 255:
        raise DojoError(f"{what} has values outside 0-255 or 0-1 (min {low:g}, max {high:g}, dtype {x.dtype})")
    if is_float:
        return np.rint(x * 255 if high <= 1.0 else x).astype(np.uint8)  # floats in [0, 1] or [0, 255]
    return x.astype(np.uint8)


# --------------------------------------------------------------------------- entry point


def load_dataset(dataset: str, data: str | Path | None = None) -> Dataset:
    """MNIST or Fashion-MNIST from ``data`` (an .npz or an IDX folder), else Keras's loader."""
    if dataset not in DATASETS:
        raise DojoError(f"Unknown dataset. Received: {dataset!r}", hint="valid: " + ", ".join(DATASETS))
    if data is not None:
        path = Path(data)
        if not path.exists():
            raise DojoError(f"--data path does not exist: {path}")
        if path.is_dir():
            return load_idx_folder(path)
        if path.suffix == ".npz":
            return load_npz(path)
        raise DojoError(f"--data must be an .npz file or a folder of IDX files. Received: {path}")
    return _keras_download(dataset)


KERAS_DATA_HOST = ("storage.googleapis.com", 443)


def _keras_download(dataset: str) -> Dataset:
    from kerasdojo.backend import keras

    datasets = keras().datasets  # outside the try: a broken TensorFlow must not read as a cache miss
    module = {"mnist": "mnist", "fashion": "fashion_mnist"}[dataset]
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    hint = "pass --data with a mnist.npz or a folder of the four IDX files"
    if not any(cache.glob(f"{'mnist.npz' if dataset == 'mnist' else 'fashion-mnist'}")):
        # Keras downloads without a timeout: find out first, in bounded time, whether its server answers.
        try:
            socket.create_connection(KERAS_DATA_HOST, timeout=10).close()
        except OSError as exc:
            raise DojoError(
                f"{dataset} is not in Keras's cache ({cache}) and cannot be downloaded: {exc}", hint=hint
            ) from None
    try:
        (x_train, y_train), (x_test, y_test) = getattr(datasets, module).load_data()
    except Exception as exc:
        raise DojoError(
            f"Could not load {dataset} from Keras's cache ({cache}) or download it ({type(exc).__name__})", hint=hint
        ) from None
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return _dataset(arrays, f"keras.datasets.{module}")


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): ``fraction`` of each class goes to validation (at least one
    per class that has two or more samples; never a class's last training sample)."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * fraction))
        if fraction > 0 and n_val == 0 and len(idx) >= 2:
            n_val = 1
        n_val = min(n_val, len(idx) - 1)  # every class keeps a training sample
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))
