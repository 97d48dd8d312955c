"""Frozen-dataclass configs: typed fields with one-line help, overrides and JSON.

Every config is a frozen dataclass whose fields are declared with :func:`option`,
which records a one-line help text and the valid range. Values arrive from four
places, later ones winning::

    dataclass defaults < preset for (agent, env) < --config FILE (TOML) < --set key=value

:func:`apply` takes a mapping of overrides (already-typed values from a preset or
a TOML file, or strings from ``--set``), checks every key and value, and returns
a new config. Unknown keys and ill-typed or out-of-range values raise
:class:`DojoError` naming the key and listing the valid ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from kerasdojo.errors import DojoError

C = TypeVar("C")

# The one vocabulary of booleans on the command line, for --set and --env-kwargs alike.
BOOLEANS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def option(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    choices: Iterable[str] | None = None,
) -> Any:
    """A config field: its default, a one-line help text and its valid range.

    ``low``/``high`` bound numbers (``low_open`` excludes ``low`` itself);
    ``choices`` restricts strings.
    """
    meta = {
        "help": help,
        "low": low,
        "high": high,
        "low_open": low_open,
        "choices": tuple(choices) if choices is not None else None,
    }
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for sequence defaults: configs are frozen")
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """One config field as ``kerasdojo agents NAME`` shows it."""

    name: str
    type: Any
    default: Any
    help: str

    @property
    def type_name(self) -> str:
        origin, args = typing.get_origin(self.type), typing.get_args(self.type)
        if origin is tuple:
            return f"{args[0].__name__} list" if args else "list"
        return getattr(self.type, "__name__", str(self.type))

    @staticmethod
    def shown(value: Any) -> str:
        """A value as it is written on the command line (``--set key=<this>``)."""
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, tuple):
            return ",".join(str(v) for v in value)
        return str(value)


def describe(cls_or_cfg: Any) -> list[FieldInfo]:
    """Name, type, default and help of each field (the help names the valid range or choices)."""
    cls = cls_or_cfg if isinstance(cls_or_cfg, type) else type(cls_or_cfg)
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        help_ = meta.get("help", "")
        if meta.get("choices"):
            help_ += " One of: " + ", ".join(meta["choices"]) + "."
        low, high = meta.get("low"), meta.get("high")
        if low is not None or high is not None:
            bounds = []
            if low is not None:
                bounds.append(f"{'>' if meta.get('low_open') else '>='} {low:g}")
            if high is not None:
                bounds.append(f"<= {high:g}")
            help_ += " Range: " + ", ".join(bounds) + "."
        out.append(FieldInfo(f.name, hints[f.name], f.default, help_))
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def from_dict(cls: type[C], data: Mapping[str, Any], source: str = "config") -> C:
    """Build a config from a dict (as written by :func:`to_dict`), checking it fully."""
    return apply(cls(), data, source=source)  # type: ignore[call-arg]


def apply(cfg: C, overrides: Mapping[str, Any], source: str = "--set") -> C:
    """Return ``cfg`` with ``overrides`` applied; strings are parsed to the field's type."""
    if not overrides:
        return cfg
    fields = {f.name: f for f in dataclasses.fields(cfg)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(type(cfg))
    changes = {}
    for key, raw in overrides.items():
        if key not in fields:
            raise unknown_key_error(key, list(fields), source, kind=_kind(cfg))
        value = coerce(key, hints[key], raw, source)
        check_range(key, value, fields[key].metadata, source)
        changes[key] = value
    return dataclasses.replace(cfg, **changes)  # type: ignore[type-var]


def validate(cfg: Any, source: str = "config") -> None:
    """Check every field of ``cfg`` against its declared range (for defaults and presets)."""
    for f in dataclasses.fields(cfg):
        check_range(f.name, getattr(cfg, f.name), f.metadata, source)


def _kind(cfg: Any) -> str:
    return getattr(cfg, "kind", type(cfg).__name__)


# Names users bring from other libraries, and ours.
ALIASES = {"lr": "learning_rate", "n_timesteps": "total_steps", "steps": "total_steps", "num_envs": "n_envs"}


def unknown_key_error(key: str, valid: list[str], source: str, kind: str = "config") -> DojoError:
    close = [ALIASES[key]] if ALIASES.get(key) in valid else difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    hint += "valid keys: " + ", ".join(sorted(valid))
    return DojoError(f"Unknown key '{key}' in {source} for {kind}", hint=hint)


def parse_pairs(pairs: Iterable[str], flag: str = "--set") -> dict[str, str]:
    """``["a=1", "b-c=x"]`` -> ``{"a": "1", "b_c": "x"}``: the one ``key=value`` parser, for
    ``--set`` and ``--env-kwargs``. Dashes in keys become underscores; a pair without ``=``
    or without a key is an error naming the flag."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DojoError(f"Expected key=value. Received: {flag} {pair!r}", hint=f"for example {flag} gamma=0.99")
        out[key.replace("-", "_")] = value.strip()
    return out


def literal(raw: str) -> Any:
    """A command-line value with no declared type (``--env-kwargs``): a boolean word
    (true/false, yes/no, on/off), none/null, a JSON number, list or object, else the string."""
    text = raw.strip()
    lowered = text.lower()
    if lowered in BOOLEANS:
        return BOOLEANS[lowered]
    if lowered in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_kwargs(pairs: Iterable[str], flag: str = "--env-kwargs") -> dict[str, Any]:
    """``key=value`` pairs with untyped values, read by :func:`literal`."""
    return {key: literal(value) for key, value in parse_pairs(pairs, flag).items()}


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a flat TOML table of overrides (``[agent]``-style tables are flattened)."""
    path = Path(path)
    if not path.is_file():
        raise DojoError(f"Config file not found: {path}")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DojoError(f"Config file {path} is not valid TOML: {exc}") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def coerce(key: str, annotation: Any, raw: Any, source: str = "--set") -> Any:
    """Turn ``raw`` (a string from the command line, or a value from TOML/JSON) into ``annotation``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("none", "null", "")):
            return None
        return coerce(key, non_none[0], raw, source)
    if origin is tuple:
        item_type = args[0] if args else str
        items = _split_sequence(raw)
        if items is None:
            raise _type_error(key, raw, "a list such as 64,64", source)
        return tuple(coerce(key, item_type, item, source) for item in items)
    if annotation is bool:
        value = literal(raw) if isinstance(raw, str) else raw
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
        raise _type_error(key, raw, "true or false (yes/no, on/off, 1/0)", source)
    if annotation is int:
        if isinstance(raw, bool):
            raise _type_error(key, raw, "an integer", source)
        if isinstance(raw, int):
            return raw
        try:
            number = float(raw.replace("_", "")) if isinstance(raw, str) else float(raw)
        except (TypeError, ValueError):
            raise _type_error(key, raw, "an integer", source) from None
        if not math.isfinite(number) or number != int(number):
            raise _type_error(key, raw, "an integer", source)
        return int(number)
    if annotation is float:
        if isinstance(raw, bool):
            raise _type_error(key, raw, "a number", source)
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise _type_error(key, raw, "a number", source) from None
        if math.isnan(number):
            raise _type_error(key, raw, "a number", source)
        return number
    if annotation is str:
        if not isinstance(raw, str):
            raise _type_error(key, raw, "a string", source)
        return raw
    raise TypeError(f"unsupported config type {annotation!r} for {key}")


def _split_sequence(raw: Any) -> list[Any] | None:
    if isinstance(raw, (list, tuple)):
        return list(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("[") or text.startswith("("):
            if text[-1] != {"[": "]", "(": ")"}[text[0]]:
                return None
            try:
                parsed = json.loads("[" + text[1:-1] + "]")
            except json.JSONDecodeError:
                return None
            return list(parsed)
        if not text:
            return []
        return [part.strip() for part in text.split(",") if part.strip()]
    return None


def _type_error(key: str, raw: Any, expected: str, source: str) -> DojoError:
    return DojoError(f"Invalid value for {key} in {source}: expected {expected}. Received: {key}={raw!r}")


def check_range(key: str, value: Any, meta: Mapping[str, Any], source: str = "config") -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise DojoError(
            f"Invalid value for {key} in {source}. Received: {key}={value!r}",
            hint="valid values: " + ", ".join(map(str, choices)),
        )
    low, high = meta.get("low"), meta.get("high")
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if v is None or isinstance(v, (str, bool)):
            continue
        if low is not None and (v < low or (meta.get("low_open") and v == low)):
            bound = f"> {low}" if meta.get("low_open") else f">= {low}"
            raise DojoError(f"Invalid value for {key} in {source}: must be {bound}. Received: {key}={value!r}")
        if high is not None and v > high:
            raise DojoError(f"Invalid value for {key} in {source}: must be <= {high}. Received: {key}={value!r}")


def table(cfg: Any) -> list[tuple[str, str]]:
    """``(key, value)`` rows for printing or for TensorBoard's text tab."""
    return [(f.name, json.dumps(v) if not isinstance(v, str) else v) for f, v in _items(cfg)]


def _items(cfg: Any) -> list[tuple[dataclasses.Field[Any], Any]]:
    return [(f, getattr(cfg, f.name)) for f in dataclasses.fields(cfg)]
