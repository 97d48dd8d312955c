"""The digits data: a folder of images plus a CSV of labels (``filename,label``), read with
imageio, each image turned into a 28x28 gray ``uint8`` digit.

Every reader validates what it reads and raises :class:`DojoError` naming the file (and
the CSV line) and what was expected.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kerasdojo.errors import DojoError
from kerasdojo.supervised.data import IMAGE_SIZE, Dataset, Split


def read_image(path: str | Path, where: str = "") -> np.ndarray:
    """Read an image with imageio and return it as 28x28 uint8 grayscale.

    Grayscale, RGB and RGBA (PNG, JPEG, ...) are accepted; colour is converted
    with ITU-R 601 luma weights, alpha is composited onto black. Images of
    another size are resized (area-averaged or bilinear).
    """
    import imageio.v3 as iio

    path = Path(path)
    prefix = f"{where}: " if where else ""
    if not _is_file(path):
        raise DojoError(f"{prefix}image not found: {path}")
    try:
        img = iio.imread(path)
    except Exception as exc:
        raise DojoError(f"{prefix}cannot decode image {path} ({type(exc).__name__})") from None
    return to_gray28(img, f"{prefix}image {path}")


def to_gray28(img: np.ndarray, what: str = "image") -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] in (1, 2, 3, 4):
        channels = img.shape[-1]
        f = img.astype(np.float32)
        if channels in (2, 4):  # grey+alpha or RGBA: composite onto black
            alpha = f[..., -1:] / (255.0 if img.dtype == np.uint8 else max(float(f[..., -1].max()), 1.0))
            f = f[..., :-1] * alpha
        if f.shape[-1] == 3:
            f = f @ np.array([0.299, 0.587, 0.114], np.float32)
        else:
            f = f[..., 0]
    elif img.ndim == 2:
        f = img.astype(np.float32)
    else:
        raise DojoError(f"{what} has shape {img.shape}; expected a grayscale, RGB or RGBA image")
    if f.shape[0] == 0 or f.shape[1] == 0:
        raise DojoError(f"{what} is empty (shape {img.shape})")
    if img.dtype == np.uint16:
        f = f / 257.0
    elif img.dtype != np.uint8 and f.size and f.max() <= 1.0:
        f = f * 255.0
    if f.shape != (IMAGE_SIZE, IMAGE_SIZE):
        f = _resize(f, IMAGE_SIZE)
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a 2-D float image (area-averaging first when shrinking a lot)."""
    h, w = img.shape
    fy, fx = max(h // size, 1), max(w // size, 1)
    if fy > 1 or fx > 1:
        h2, w2 = (h // fy) * fy, (w // fx) * fx
        img = img[:h2, :w2].reshape(h2 // fy, fy, w2 // fx, fx).mean(axis=(1, 3))
        h, w = img.shape
    ys = np.clip((np.arange(size) + 0.5) * h / size - 0.5, 0, h - 1)
    xs = np.clip((np.arange(size) + 0.5) * w / size - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bottom = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def read_csv(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV as ``(line number, row)``; the header must hold ``required``."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            missing = [c for c in required if c not in header]
            if missing:
                raise DojoError(
                    f"{path} lacks column(s) {', '.join(missing)}; found: {', '.join(header) or 'no header'}",
                    hint=f"the CSV needs a header line with {','.join(required)}",
                )
            rows = []
            for row in reader:
                extra = [v for v in row.pop(None, None) or [] if v.strip()]  # DictReader keeps surplus fields here
                if extra:
                    raise DojoError(
                        f"{path} line {reader.line_num} has more fields than the header "
                        f"({len(header)}): {', '.join(extra)}"
                    )
                clean = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
                rows.append((reader.line_num, clean))
            return rows
    except FileNotFoundError:
        raise DojoError(f"CSV file not found: {path}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DojoError(f"{path} is not a readable CSV file ({exc})") from None


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for a name the OS refuses (too long, say) rather than an OSError."""
    try:
        return path.is_file()
    except OSError:
        return False


def find_image(dirs: list[Path], name: str, where: str) -> Path:
    """The first of ``dirs`` holding ``name``; a one-line error naming ``where`` (CSV line) otherwise."""
    if len(name) > 255 or not name.isprintable():  # a damaged CSV: a quote left open, control bytes
        shown = name[:40] + ("..." if len(name) > 40 else "")
        raise DojoError(f"{where}: {shown!r} is not a file name")
    path = next((d / name for d in dirs if _is_file(d / name)), None)
    if path is None:
        raise DojoError(f"{where}: image {name} not found (looked in {', '.join(str(d) for d in dirs)})")
    return path


def image_dirs(root: Path, split: str, images: Path | None) -> list[Path]:
    """Where the images of ``split`` may be: --images, Images/<split>, images/<split>, beside the CSVs."""
    if images is not None:
        return [images / split, images]
    return [root / "Images" / split, root / "images" / split, root / "Images", root / "images", root]


def load_digits_folder(
    root: str | Path,
    images: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """The "identify the digits" layout: ``train.csv`` (filename,label), optional
    ``test.csv`` (filename), images under ``Images/train`` and ``Images/test``
    (or beside the CSVs, or under ``--images``)."""
    root = Path(root)
    if not root.is_dir():
        raise DojoError(f"--data must be a folder holding train.csv. Received: {root}")
    images_path = Path(images) if images is not None else None
    if images_path is not None and not images_path.is_dir():
        raise DojoError(f"--images folder does not exist: {images_path}")
    train_csv = root / "train.csv"
    if not train_csv.is_file():
        raise DojoError(f"{root} has no train.csv", hint="expected train.csv with columns filename,label")
    train_rows = read_csv(train_csv, ("filename", "label"))
    if not train_rows:
        raise DojoError(f"{train_csv} has no rows")
    test_csv = root / "test.csv"
    test_rows = read_csv(test_csv, ("filename",)) if test_csv.is_file() else []
    total = len(train_rows) + len(test_rows)
    done = 0

    def load(rows: list[tuple[int, dict[str, str]]], csv_path: Path, split: str, labelled: bool) -> Split:
        nonlocal done
        dirs = image_dirs(root, split, images_path)
        xs, ys, names = [], [], []
        for line, row in rows:
            where = f"{csv_path.name} line {line}"
            name = row["filename"]
            if not name:
                raise DojoError(f"{where}: empty filename")
            if labelled:
                label = row["label"]
                if not (len(label) == 1 and label in "0123456789"):
                    raise DojoError(f"{where}: label {label!r} is not a digit 0-9")
                value = int(label)
                ys.append(value)
            xs.append(read_image(find_image(dirs, name, where), where))
            names.append(name)
            done += 1
            if progress is not None and (done % 200 == 0 or done == total):
                progress(done, total)
        x = np.stack(xs) if xs else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        return Split(x, np.array(ys, np.int64) if labelled else None, names)

    train = load(train_rows, train_csv, "train", True)
    test = load(test_rows, test_csv, "test", False) if test_rows else None
    return Dataset(train, test, str(root))
