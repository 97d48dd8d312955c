"""A run directory: config.json, TensorBoard events, progress.csv, atomic checkpoints.

Layout (GUIDE.md)::

    runs/<env>__<agent>__s<seed>__<YYYYmmdd-HHMMSS>/
        config.json      what was asked for, fully resolved
        events.out.*     TensorBoard scalars, text and images
        progress.csv     the same scalars as a table
        checkpoints/     step_000012345.npz, written atomically
        ...              whatever the task adds (agent, eval.json, metrics.json, videos)

This module knows nothing about algorithms. Writing TensorBoard events needs no
TensorFlow: records are written with TensorBoard's own protobufs, so a NumPy
task can log curves without paying for the TensorFlow import.
"""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from kerasdojo.errors import DojoError

CHECKPOINT_RE = re.compile(r"^step_(\d+)\.npz$")
_UMASK = os.umask(0)
os.umask(_UMASK)


# --------------------------------------------------------------------------- atomic files


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    A crash (or SIGKILL) before the rename leaves the old file intact and only a
    ``.tmp-*`` file behind, never a half-written ``path``. ``suffix`` ends the
    temporary name, for writers that insist on an extension (Keras's ``.keras``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DojoError(f"Missing file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DojoError(f"{path} is not valid JSON ({exc})") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# --------------------------------------------------------------------------- checkpoints


def save_arrays(path: str | Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Save named arrays and a JSON ``meta`` dict as one ``.npz``, atomically."""
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload["__meta__"] = np.frombuffer(json.dumps(meta, default=_json_default).encode(), dtype=np.uint8)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **payload)


def load_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load what :func:`save_arrays` wrote; a damaged file is a :class:`DojoError`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    except FileNotFoundError:
        raise DojoError(f"Checkpoint not found: {path}") from None
    except Exception as exc:  # zipfile.BadZipFile, ValueError, KeyError, EOFError...
        raise DojoError(
            f"Checkpoint {path} is corrupt or unreadable ({type(exc).__name__}: {exc})",
            hint="delete it to fall back to an earlier checkpoint",
        ) from None
    return arrays, meta


# --------------------------------------------------------------------------- TensorBoard


class EventWriter:
    """A TensorBoard event-file writer that needs no TensorFlow.

    The file is created on first use and closed by :meth:`close`; tags follow
    TensorBoard's plugin conventions (scalars, text, images).
    """

    def __init__(self, logdir: str | Path) -> None:
        self.logdir = Path(logdir)
        self._file: IO[bytes] | None = None
        self._writer: Any = None
        self._last_flush = 0.0

    def _ensure(self) -> Any:
        if self._writer is None:
            from tensorboard.compat.proto import event_pb2
            from tensorboard.summary.writer.record_writer import RecordWriter

            self.logdir.mkdir(parents=True, exist_ok=True)
            name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}.kerasdojo"
            self._file = open(self.logdir / name, "wb")
            self._writer = RecordWriter(self._file)
            self._event_pb2 = event_pb2
            self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        return self._writer

    def _write(self, event: Any) -> None:
        self._writer.write(event.SerializeToString())
        now = time.monotonic()
        if now - self._last_flush > 2.0:
            self.flush()
            self._last_flush = now

    def _summary(self, step: int, value: Any) -> None:
        from tensorboard.compat.proto import summary_pb2

        self._ensure()
        event = self._event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary_pb2.Summary(value=[value]))
        self._write(event)

    def scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboard.compat.proto import summary_pb2

        self._summary(step, summary_pb2.Summary.Value(tag=tag, simple_value=float(value)))

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        for tag, value in values.items():
            self.scalar(tag, value, step)

    def text(self, tag: str, markdown: str, step: int = 0) -> None:
        from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2

        tensor = tensor_pb2.TensorProto(
            dtype=7,  # DT_STRING
            string_val=[markdown.encode()],
            tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[]),
        )
        metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text"))
        self._summary(step, summary_pb2.Summary.Value(tag=tag, metadata=metadata, tensor=tensor))

    def image(self, tag: str, image: np.ndarray, step: int = 0) -> None:
        """Log an HxW or HxWxC uint8 image (PNG-encoded)."""
        import imageio.v3 as iio
        from tensorboard.compat.proto import summary_pb2

        image = np.asarray(image)
        if image.dtype != np.uint8:
            image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        png = iio.imwrite("<bytes>", image, extension=".png")
        h, w = image.shape[:2]
        channels = 1 if image.ndim == 2 else image.shape[2]
        img = summary_pb2.Summary.Image(height=h, width=w, colorspace=channels, encoded_image_string=png)
        self._summary(step, summary_pb2.Summary.Value(tag=tag, image=img))

    def session_start(self, step: int) -> None:
        """Mark a restart after ``step``: TensorBoard then drops events logged after ``step`` by the
        previous session (a run killed after its last checkpoint), so the curve stays continuous."""
        from tensorboard.compat.proto import event_pb2

        self._ensure()
        log = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
        # TensorBoard purges events at steps >= the START event's step.
        self._write(event_pb2.Event(wall_time=time.time(), step=int(step) + 1, session_log=log))

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None


def markdown_table(rows: list[tuple[str, str]], header: tuple[str, str] = ("key", "value")) -> str:
    lines = [f"|{header[0]}|{header[1]}|", "|-|-|"]
    lines += [f"|{k}|{v}|" for k, v in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- progress.csv


class ProgressCSV:
    """Rows of scalars keyed by step; new columns rewrite the header (as SB3's CSV logger)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.columns: list[str] = []
        self.rows: list[dict[str, Any]] = []
        if self.path.exists():
            with open(self.path, newline="") as fh:
                reader = csv.DictReader(fh)
                self.columns = list(reader.fieldnames or [])
                self.rows = list(reader)

    def truncate_after(self, step: int, key: str = "time/total_timesteps") -> None:
        """Drop rows logged after ``step`` (work lost since the checkpoint a resume starts from)."""
        kept = [r for r in self.rows if not r.get(key) or float(r[key]) <= step]
        if len(kept) != len(self.rows):
            self.rows = kept
            self._rewrite()

    def append(self, row: Mapping[str, Any]) -> None:
        new = [k for k in row if k not in self.columns]
        row = {k: _fmt(v) for k, v in row.items()}
        self.rows.append(row)
        if new or not self.path.exists():
            self.columns += new
            self._rewrite()
        else:
            with open(self.path, "a", newline="") as fh:
                csv.DictWriter(fh, self.columns).writerow(row)

    def _rewrite(self) -> None:
        with atomic_path(self.path) as tmp:
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, self.columns)
                writer.writeheader()
                writer.writerows(self.rows)


def _fmt(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return value


# --------------------------------------------------------------------------- run directory


def run_name(*parts: str, when: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    safe = [re.sub(r"[^A-Za-z0-9_.-]+", "-", p).strip("-") for p in parts]
    return "__".join([*safe, stamp])


class Run:
    """One run directory. Create a new one with :meth:`create`, reopen with :meth:`open`."""

    CONFIG = "config.json"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer: EventWriter | None = None
        self._csv: ProgressCSV | None = None

    @classmethod
    def create(cls, parent: str | Path, *parts: str) -> Run:
        """Make a new, never-before-used directory under ``parent``."""
        parent = Path(parent)
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DojoError(f"Cannot create the runs folder {parent}: {exc.strerror}") from None
        base = run_name(*parts)
        for i in range(1000):
            path = parent / (base if i == 0 else f"{base}-{i}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return cls(path)
        raise DojoError(f"Could not find a free run directory name under {parent}")

    @classmethod
    def open(cls, path: str | Path, kind: str = "run") -> Run:
        path = Path(path)
        if not path.is_dir():
            raise DojoError(f"Not a directory: {path}", hint=f"pass a {kind} directory, such as runs/<name>")
        if not (path / cls.CONFIG).is_file():
            raise DojoError(f"{path} is not a kerasdojo run: it has no {cls.CONFIG}")
        return cls(path)

    # files ------------------------------------------------------------------
    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, data: Any) -> Path:
        write_json(self.path / name, data)
        return self.path / name

    def read_json(self, name: str) -> Any:
        return read_json(self.path / name)

    @property
    def config(self) -> dict[str, Any]:
        return self.read_json(self.CONFIG)

    # logging ----------------------------------------------------------------
    @property
    def writer(self) -> EventWriter:
        if self._writer is None:
            self._writer = EventWriter(self.path)
        return self._writer

    @property
    def progress(self) -> ProgressCSV:
        if self._csv is None:
            self._csv = ProgressCSV(self.path / "progress.csv")
        return self._csv

    def log(self, values: Mapping[str, float], step: int, step_key: str = "time/total_timesteps") -> None:
        """Write scalars to TensorBoard and one row to progress.csv."""
        self.writer.scalars(values, step)
        self.progress.append({step_key: int(step), **values})

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    # checkpoints ------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of each checkpoint, oldest first."""
        if not self.checkpoint_dir.is_dir():
            return []
        found = []
        for p in self.checkpoint_dir.iterdir():
            m = CHECKPOINT_RE.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def save_checkpoint(
        self, step: int, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], keep: int = 2
    ) -> Path:
        path = self.checkpoint_dir / f"step_{step:012d}.npz"
        save_arrays(path, arrays, meta)
        for _, old in self.checkpoints()[:-keep]:
            old.unlink(missing_ok=True)
        return path

    def load_latest_checkpoint(self) -> tuple[Path, dict[str, np.ndarray], dict[str, Any]]:
        """The newest checkpoint; a corrupt newest one is an error naming it."""
        found = self.checkpoints()
        if not found:
            raise DojoError(
                f"{self.path} has no checkpoint to resume from", hint="start a new run with kerasdojo train"
            )
        path = found[-1][1]
        arrays, meta = load_arrays(path)
        return path, arrays, meta


def read_progress(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
