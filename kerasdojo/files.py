"""Files that are never half-written: atomic replace, JSON, NumPy archives and Keras models.

Every module that writes something a user keeps (runs, agents, supervised tasks,
videos) writes it through here: to a temporary name beside the target, then one
``os.replace``. A crash or SIGKILL leaves the old file intact and at most a
``.NAME.tmp-*`` file behind, which :func:`remove_stale_temporaries` clears.
This module knows nothing of kerasdojo's other parts.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from kerasdojo.errors import DojoError

TMP_MARK = ".tmp-"
NUMERIC_KINDS = "biuf"  # what save_arrays stores: booleans, integers, floats (never text, objects, records)


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    ``suffix`` ends the temporary name, for writers that insist on an extension
    (Keras's ``.keras``). The temporary file is created with the process umask,
    like any file ``open`` makes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}{TMP_MARK}{secrets.token_hex(4)}{suffix}"
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete ``.NAME.tmp-*`` files that a killed process left in ``folder`` and its subfolders."""
    removed = []
    for tmp in Path(folder).rglob(f".*{TMP_MARK}*"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=json_default) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DojoError(f"Missing file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DojoError(f"{path} is not valid JSON ({exc})") from None


def json_kind(value: Any) -> str:
    """What a JSON document is, in JSON's words (for "... is an array, not an object")."""
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def is_zip(path: str | Path) -> bool:
    """Whether ``path`` begins as a zip archive (an .npz, a .keras model) does: an empty,
    garbled or overwritten file does not (NumPy would take it for pickled data)."""
    with open(path, "rb") as fh:
        return fh.read(2) == b"PK"


def save_arrays(path: str | Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Save named arrays and a JSON ``meta`` dict as one ``.npz``, atomically."""
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload["__meta__"] = np.frombuffer(json.dumps(meta, default=json_default).encode(), dtype=np.uint8)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **payload)


def load_arrays(path: str | Path, skip: tuple[str, ...] = ()) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load what :func:`save_arrays` wrote; a damaged file is a :class:`DojoError`. Arrays whose
    names start with one of ``skip`` are not read (``npz`` members load one at a time)."""
    path = Path(path)
    try:
        if not is_zip(path):
            raise ValueError("not a zip archive, as an .npz is")
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if not (skip and k.startswith(skip))}
        meta = json.loads(arrays.pop("__meta__").tobytes().decode())
        if not isinstance(meta, dict):
            raise ValueError(f"its metadata is {json_kind(meta)}, not an object")
        for key, value in arrays.items():
            if value.dtype.kind not in NUMERIC_KINDS:
                raise ValueError(f"{key} holds {value.dtype} values, not numbers")
    except FileNotFoundError:
        raise DojoError(f"Checkpoint not found: {path}") from None
    except Exception as exc:  # zipfile.BadZipFile, ValueError, KeyError, EOFError...
        raise DojoError(
            f"Checkpoint {path} is corrupt or unreadable ({type(exc).__name__}: {exc})",
            hint="delete it to fall back to an earlier checkpoint",
        ) from None
    return arrays, meta


def save_keras_model(model: Any, path: str | Path) -> Path:
    """``model.save`` to ``path`` (``.keras``), atomically: plain ``keras.models.load_model`` reads it."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    return Path(path)
