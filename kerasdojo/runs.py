"""A run directory: config.json, TensorBoard events, progress.csv, atomic checkpoints.

Layout::

    runs/<env>__<agent>__s<seed>__<YYYYmmdd-HHMMSS>/
        config.json      what was asked for, fully resolved
        events.out.*     TensorBoard scalars, text and images
        hparams/         the run's HParams entry (hyperparameters and final metrics)
        progress.csv     the same scalars as a table
        checkpoints/     step_000012345.npz, written atomically
        ...              whatever the task adds (agent, eval.json, metrics.json, videos)

This module knows nothing about algorithms.
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kerasdojo.errors import DojoError
from kerasdojo.events import EventWriter
from kerasdojo.files import (
    atomic_path,
    json_kind,
    load_arrays,
    read_json,
    remove_stale_temporaries,
    save_arrays,
    write_json,
)

CHECKPOINT_RE = re.compile(r"^step_(\d+)\.npz$")
STEP_KEY = "time/total_timesteps"
PROGRESS_HINT = "the run's TensorBoard events hold the same scalars; move the file aside to go on without it"


# --------------------------------------------------------------------------- progress.csv


class ProgressCSV:
    """Rows of scalars keyed by step; new columns rewrite the header (as SB3's CSV logger)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.columns: list[str] = []
        self.rows: list[dict[str, Any]] = []
        if self.path.exists():
            self.columns, self.rows = _read_csv(self.path)

    def truncate_after(self, step: int, key: str = STEP_KEY) -> None:
        """Keep only whole rows logged up to ``step``: a resume drops the work lost since its
        checkpoint, and a row torn by a kill in mid-write."""
        if not self.path.exists():
            return
        n = len(self.columns)
        self.rows = [r for r in self.rows if (s := _step_of(r, key, n)) is not None and s <= step]
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


def _step_of(row: Mapping[str, Any], key: str, n_columns: int) -> float | None:
    """The row's step, or None for a row a kill cut short (too few fields, or no step)."""
    if None in row or len(row) < n_columns or any(v is None for v in row.values()):
        return None
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        return None


def _fmt(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return value


def read_progress(path: str | Path) -> list[dict[str, str]]:
    """The rows of a progress.csv, every cell a number or empty. Rows a kill cut short (too few
    fields, or a last line with no line end) are skipped; other damage is a DojoError naming the row."""
    path = Path(path)
    columns, rows = _read_csv(path)
    if rows and not _ends_a_line(path):
        rows.pop()
    whole = []
    for i, row in enumerate(rows, 1):
        if None in row:
            n = len(columns) + len(row[None])
            raise DojoError(f"{path} is damaged: row {i} has {n} fields, its header {len(columns)}", hint=PROGRESS_HINT)
        if any(v is None for v in row.values()):
            continue
        bad = next((k for k, v in row.items() if v and not _is_number(v)), None)
        if bad is not None:
            raise DojoError(f"{path} is damaged: row {i} has {bad}={row[bad]!r}, not a number", hint=PROGRESS_HINT)
        whole.append(row)
    return whole


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Header and rows as ``csv.DictReader`` gives them (surplus fields under None, missing ones None)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            return list(reader.fieldnames or []), list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DojoError(f"{path} is damaged: not a readable CSV file ({exc})", hint=PROGRESS_HINT) from None


def _ends_a_line(path: Path) -> bool:
    """Whether the file's last line is whole (an empty file counts): a kill can cut it short."""
    with open(path, "rb") as fh:
        if fh.seek(0, 2) == 0:
            return True
        fh.seek(-1, 2)
        return fh.read(1) in (b"\n", b"\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
        config = self.read_json(self.CONFIG)
        if not isinstance(config, dict):
            raise DojoError(f"{self.path / self.CONFIG} is damaged: it holds {json_kind(config)}, not a JSON object")
        return config

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete what a killed process was writing when it died (never a finished file)."""
        return remove_stale_temporaries(self.path)

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

    def log(self, values: Mapping[str, float], step: int, step_key: str = STEP_KEY) -> None:
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

    def load_latest_checkpoint(
        self, warn: Callable[[str], None] | None = None, skip: tuple[str, ...] = ()
    ) -> tuple[Path, dict[str, np.ndarray], dict[str, Any]]:
        """The newest checkpoint that loads (without the arrays named ``skip*``). A damaged newer
        one (cut short on disk, zero bytes) is skipped with a one-line ``warn(message)``; when none
        loads, the error names the newest."""
        found = self.checkpoints()
        if not found:
            raise DojoError(
                f"{self.path} has no checkpoint to resume from", hint="start a new run with kerasdojo train"
            )
        first_error: DojoError | None = None
        for step, path in reversed(found):
            try:
                arrays, meta = load_arrays(path, skip)
                _check_meta(path, step, meta)
            except DojoError as exc:
                first_error = first_error or exc
                continue
            if first_error is not None and warn is not None:
                warn(f"Warning: {first_error.message}; using the previous checkpoint {path.name}")
            return path, arrays, meta
        assert first_error is not None
        if len(found) > 1:
            first_error.message += f" (and the {len(found) - 1} older checkpoint(s) too)"
        raise first_error


def _check_meta(path: Path, step: int, meta: Mapping[str, Any]) -> None:
    """A checkpoint's metadata names the step its file name says, and where the loop stood in
    numbers (training seconds, the best evaluation and its step, or none yet); anything else is damage."""
    saved = meta.get("step")
    if type(saved) is not int or saved != step:
        raise DojoError(
            f"Checkpoint {path} is corrupt: its metadata says step {saved!r}, its name {step}",
            hint="delete it to fall back to an earlier checkpoint",
        )
    for key, kinds, optional in (("train_seconds", (int, float), False), ("best_eval", (int, float), True)):
        value = meta.get(key, None if optional else 0.0)
        if not ((optional and value is None) or (isinstance(value, kinds) and not isinstance(value, bool))):
            raise DojoError(f"Checkpoint {path} is corrupt: its metadata {key} is {value!r}, not a number")
    best_step = meta.get("best_step")
    if best_step is not None and type(best_step) is not int:
        raise DojoError(f"Checkpoint {path} is corrupt: its metadata best_step is {best_step!r}, not a step")
