"""No traceback from any damaged input.

Every file kerasdojo reads (checkpoints, agent.npz, best_agent.npz, config.json,
progress.csv, eval.json, policy.keras, model.keras, the digits CSVs and images,
MNIST .npz and IDX files, TOML configs) and ``--set`` values are fed in damaged:
truncated, bit-flipped, random bytes, empty, not UTF-8, wrong keys, dtypes or
shapes, to the commands that read them (eval, resume, plot, train, supervised
mnist/digits/show/predict). Each case must end with exit 0 (a damaged checkpoint
falls back to the previous good one) or exit 2 and one ``Error: ...`` line on
stderr, never a traceback, and no checkpoint it did not damage is lost.

Everything goes through the CLI (``kerasdojo.cli.app``); the good inputs are made
once per module (a tiny CartPole PPO run, small digits and MNIST files), the
damaged copies deterministically from a seeded RNG per case. eval.json and
policy.keras are written for users and for ``bench``; eval and resume must not
trip over damaged ones.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from kerasdojo.cli import app
from tests.conftest import digit_images, write_digits_folder

runner = CliRunner()
Rng = np.random.Generator
CHECKPOINT = re.compile(r"^step_(\d+)\.npz$")
KEEP = 2  # checkpoints a run keeps: older good ones may be rotated out by newer ones

RL_FAST = ["--set", "n_steps=64", "--n-envs", "4", "--eval-episodes", "1", "-q"]  # the good run
TRAIN_TINY = ["--steps", "128", "--n-envs", "2", "--eval-episodes", "1", "-q"]  # train with a damaged config
FIT_FAST = ["--epochs", "1", "--batch-size", "64"]


# --------------------------------------------------------------------------- damage: raw bytes


def _flip(n: int) -> Callable[[bytes, Rng], bytes]:
    def damage(data: bytes, rng: Rng) -> bytes:
        out = bytearray(data)
        for pos, bit in zip(rng.integers(0, len(out), n), rng.integers(0, 8, n), strict=True):
            out[pos] ^= 1 << int(bit)
        return bytes(out)

    return damage


BYTES: dict[str, Callable[[bytes, Rng], bytes]] = {
    "empty": lambda d, r: b"",
    "one-byte": lambda d, r: d[:1],
    "cut-half": lambda d, r: d[: len(d) // 2],
    "cut-tail": lambda d, r: d[: max(len(d) - 7, 0)],
    "flip-1": _flip(1),
    "flip-16": _flip(16),
    "flip-256": _flip(256),
    "random": lambda d, r: r.bytes(len(d)),
    "random-short": lambda d, r: r.bytes(37),
    "zeros": lambda d, r: bytes(len(d)),
    "append-junk": lambda d, r: d + r.bytes(50),
    "prepend-junk": lambda d, r: r.bytes(50) + d,
}
FEW_BYTES = ("empty", "cut-half", "flip-16", "random", "append-junk")

# Text files besides: bytes that are not UTF-8, a NUL, a byte-order mark, a huge field.
TEXT: dict[str, Callable[[bytes, Rng], bytes]] = {
    "not-utf8": lambda d, r: d[: len(d) // 2] + b"\xff\xfe\x80\xc3" + d[len(d) // 2 :],
    "latin1": lambda d, r: d.decode("utf-8", "replace").encode("latin-1", "replace") + "é\n".encode("latin-1"),
    "nul": lambda d, r: d[: len(d) // 3] + b"\x00" + d[len(d) // 3 :],
    "bom": lambda d, r: b"\xef\xbb\xbf" + d,
    "utf16": lambda d, r: d.decode("utf-8", "replace").encode("utf-16"),
    "huge-field": lambda d, r: d + b"x" * 200_000 + b"\n",
}


# --------------------------------------------------------------------------- damage: .npz members


def _npz_bytes(arrays: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _meta(edit: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], None]:
    """An npz damage that edits the JSON ``__meta__`` member (``edit`` may return a replacement)."""

    def damage(arrays: dict[str, Any]) -> None:
        meta = json.loads(arrays["__meta__"].tobytes())
        new = edit(meta)
        text = json.dumps(meta if new is None else new)
        arrays["__meta__"] = np.frombuffer(text.encode(), np.uint8)

    return damage


def _set(key: str, value: Callable[[np.ndarray], Any]) -> Callable[[dict[str, Any]], None]:
    def damage(arrays: dict[str, Any]) -> None:
        arrays[key] = value(arrays[key])

    return damage


def _drop(prefix: str) -> Callable[[dict[str, Any]], None]:
    def damage(arrays: dict[str, Any]) -> None:
        for key in [k for k in arrays if k.startswith(prefix)]:
            del arrays[key]

    return damage


W = "net/policy/0"  # a weight every PPO agent has
AGENT_NPZ: dict[str, Callable[[dict[str, Any]], None]] = {
    "no-weight": _drop(W),
    "no-optimizer": _drop("opt/"),
    "no-meta": _drop("__meta__"),
    "meta-not-json": _set("__meta__", lambda a: np.frombuffer(b"\xff{not json", np.uint8)),
    "meta-list": _meta(lambda m: [1, 2, 3]),
    "meta-empty": _meta(lambda m: {}),
    "meta-2d": _set("__meta__", lambda a: a.reshape(1, -1)),
    "step-text": _meta(lambda m: m.update(step="1024x")),
    "step-null": _meta(lambda m: m.update(step=None)),
    "step-negative": _meta(lambda m: m.update(step=-5)),
    "step-huge": _meta(lambda m: m.update(step=1e300)),
    "rng-garbage": _meta(lambda m: m.update({"rng/numpy": "garbage"})),
    "rng-wrong-state": _meta(lambda m: m.update({"rng/numpy": {"bit_generator": "PCG64", "state": 5}})),
    "n-updates-text": _meta(lambda m: m.update(n_updates="x")),
    "best-eval-text": _meta(lambda m: m.update(best_eval="x")),
    "episodes-text": _meta(lambda m: m.update(episodes="x")),
    "train-seconds-list": _meta(lambda m: m.update(train_seconds=[1])),
    "weight-shape": _set(W, lambda a: a.T.copy()),
    "weight-scalar": _set(W, lambda a: np.float32(1.0)),
    "weight-empty": _set(W, lambda a: np.zeros((0,), np.float32)),
    "weight-text": _set(W, lambda a: a.astype(str)),
    "weight-bytes": _set(W, lambda a: a.astype("S8")),
    "weight-complex": _set(W, lambda a: a.astype(np.complex64)),
    "weight-bool": _set(W, lambda a: a > 0),
    "weight-float64": _set(W, lambda a: a.astype(np.float64)),
    "weight-int8": _set(W, lambda a: a.astype(np.int8)),
    "weight-nan": _set(W, lambda a: np.full_like(a, np.nan)),
    "weight-inf": _set(W, lambda a: np.full_like(a, np.inf)),
    "weight-object": _set(W, lambda a: np.array([object()], dtype=object)),
    "weight-record": _set(W, lambda a: np.zeros(a.shape, [("a", "f4"), ("b", "i4")])),
    "rng-tf-shape": _set("rng/tf", lambda a: np.zeros(5, np.int64)),
    "rng-tf-float": _set("rng/tf", lambda a: a.astype(np.float32) + 0.5),
    "opt-step-float": _set("opt/adam/0", lambda a: np.float64(1.5)),
    "opt-step-negative": _set("opt/adam/0", lambda a: np.int64(-3)),
    "norm-shape": _set("norm/obs_mean", lambda a: np.zeros(7)),
    "norm-negative-var": _set("norm/obs_var", lambda a: -np.ones_like(a)),
    "returns-2d": _set("episodes/returns", lambda a: np.zeros((3, 3))),
    "lengths-nan": _set("episodes/lengths", lambda a: np.full(4, np.nan)),
    "extra-key": lambda arrays: arrays.update({"zzz/unknown": np.arange(3)}),
}
RESUME_NPZ = (
    "no-weight",
    "meta-list",
    "step-text",
    "step-null",
    "rng-garbage",
    "best-eval-text",
    "episodes-text",
    "weight-text",
    "weight-nan",
    "opt-step-float",
    "norm-shape",
    "lengths-nan",
)


# --------------------------------------------------------------------------- damage: JSON, CSV, TOML


def _json(edit: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    """A JSON damage that edits the document in place (the others return a new document)."""

    def damage(data: dict[str, Any]) -> Any:
        edit(data)
        return data

    return damage


CONFIG_JSON: dict[str, Callable[[dict[str, Any]], Any]] = {
    "list": lambda c: [c],
    "null": lambda c: None,
    "string": lambda c: "config",
    "empty-object": lambda c: {},
    "no-kind": _json(lambda c: c.pop("kind")),
    "kind-supervised": _json(lambda c: c.update(kind="supervised")),
    "no-config": _json(lambda c: c.pop("config")),
    "config-list": _json(lambda c: c.update(config=[1, 2])),
    "config-null": _json(lambda c: c.update(config=None)),
    "config-unknown-key": _json(lambda c: c["config"].update(bogus=1)),
    "config-bad-type": _json(lambda c: c["config"].update(n_steps="abc")),
    "config-out-of-range": _json(lambda c: c["config"].update(n_steps=-64)),
    "config-net-arch": _json(lambda c: c["config"].update(net_arch={"a": 1})),
    "agent-unknown": _json(lambda c: c.update(agent="nope")),
    "agent-number": _json(lambda c: c.update(agent=5)),
    "env-unknown": _json(lambda c: c.update(env_id="NoSuchEnv-v0")),
    "env-null": _json(lambda c: c.update(env_id=None)),
    "seed-text": _json(lambda c: c.update(seed="zero")),
    "seed-float": _json(lambda c: c.update(seed=1.5)),
    "eval-episodes-zero": _json(lambda c: c.update(eval_episodes=0)),
    "eval-episodes-text": _json(lambda c: c.update(eval_episodes="ten")),
    "env-kwargs-list": _json(lambda c: c.update(env_kwargs=[1])),
    "env-kwargs-unknown": _json(lambda c: c.update(env_kwargs={"bogus": 1})),
    "native-text": _json(lambda c: c.update(native="yes")),
    "save-every-negative": _json(lambda c: c.update(save_every=-1)),
}
RESUME_JSON = ("list", "no-config", "config-bad-type", "agent-number", "seed-text", "env-kwargs-list")

EVAL_JSON: dict[str, Callable[[dict[str, Any]], Any]] = {
    "list": lambda c: [c],
    "no-step": _json(lambda c: c.pop("step")),
    "mean-text": _json(lambda c: c.update(mean_reward="x")),
}

PROGRESS_CSV: dict[str, Callable[[str], str]] = {
    "header-only": lambda t: t.splitlines()[0] + "\n",
    "no-header": lambda t: "\n".join(t.splitlines()[1:]) + "\n",
    "garbage-header": lambda t: "a,,b,a\n" + "\n".join(t.splitlines()[1:]) + "\n",
    "step-text": lambda t: t.replace("\n1024,", "\nabc,", 1),
    "cell-text": lambda t: t.rstrip("\n") + "x\n",
    "torn-row": lambda t: t + "1100,3.5",
    "extra-fields": lambda t: t.rstrip("\n") + ",9,9,9\n",
    "unclosed-quote": lambda t: t + '"1100,3\n',
    "blank-lines": lambda t: "\n\n" + t + "\n\n",
    "later-step": lambda t: t + t.splitlines()[1].replace("1024,", "5000,", 1) + "\n",
}

TRAIN_CSV: dict[str, Callable[[str], str]] = {
    "header-only": lambda t: "filename,label\n",
    "no-header": lambda t: "\n".join(t.splitlines()[1:]) + "\n",
    "wrong-columns": lambda t: t.replace("filename,label", "file,digit", 1),
    "label-text": lambda t: t.replace(",3\n", ",three\n", 1),
    "label-10": lambda t: t.replace(",3\n", ",10\n", 1),
    "label-negative": lambda t: t.replace(",3\n", ",-3\n", 1),
    "label-empty": lambda t: t.replace(",3\n", ",\n", 1),
    "filename-empty": lambda t: t.replace("\n3.png,", "\n,", 1),
    "filename-missing": lambda t: t.replace("\n3.png,", "\nnope.png,", 1),
    "filename-dir": lambda t: t.replace("\n3.png,", "\n.,", 1),
    "filename-outside": lambda t: t.replace("\n3.png,", "\n../../../../../../etc/hostname,", 1),
    "extra-field": lambda t: t.replace(",3\n", ",3,7\n", 1),
    "unclosed-quote": lambda t: t.replace("\n3.png,", '\n"3.png,', 1),
    "one-class": lambda t: "filename,label\n0.png,0\n",
}
TEST_CSV: dict[str, Callable[[str], str]] = {
    "wrong-column": lambda t: t.replace("filename", "name", 1),
    "filename-missing": lambda t: t + "nope.png\n",
    "header-only": lambda t: "filename\n",
}

TOML = """# a tiny PPO
n_steps = 32
n_epochs = 2
batch_size = 64
learning_rate = 0.001
net_arch = [16, 16]

[ppo]
gamma = 0.98
ent_coef = 0.0
"""
TOML_TEXT: dict[str, Callable[[str], str]] = {
    "unknown-key": lambda t: t + "bogus = 1\n",
    "int-text": lambda t: t.replace("n_steps = 32", 'n_steps = "abc"'),
    "int-float": lambda t: t.replace("n_steps = 32", "n_steps = 32.5"),
    "int-bool": lambda t: t.replace("n_steps = 32", "n_steps = true"),
    "int-date": lambda t: t.replace("n_steps = 32", "n_steps = 1979-05-27"),
    "int-array": lambda t: t.replace("n_steps = 32", "n_steps = [32]"),
    "int-table": lambda t: t.replace("n_steps = 32", "n_steps = {a = 1}"),
    "int-zero": lambda t: t.replace("n_steps = 32", "n_steps = 0"),
    "float-inf": lambda t: t.replace("learning_rate = 0.001", "learning_rate = inf"),
    "float-nan": lambda t: t.replace("learning_rate = 0.001", "learning_rate = nan"),
    "float-text": lambda t: t.replace("learning_rate = 0.001", 'learning_rate = "fast"'),
    "list-table": lambda t: t.replace("net_arch = [16, 16]", "net_arch = {a = 16}"),
    "list-nested": lambda t: t.replace("net_arch = [16, 16]", "net_arch = [[16], [16]]"),
    "list-text": lambda t: t.replace("net_arch = [16, 16]", 'net_arch = ["a", "b"]'),
    "nested-table": lambda t: t + "[ppo.deeper]\ngamma = 0.9\n",
    "duplicate-key": lambda t: "n_steps = 64\n" + t,
    "key-in-two-tables": lambda t: t + "n_epochs = 3\n",  # [ppo].n_epochs: flattened over the top level's
    "only-comment": lambda t: "# nothing\n",
}

SET_VALUES: dict[str, list[str]] = {
    "no-equals": ["n_steps"],
    "no-key": ["=64"],
    "empty-value": ["n_steps="],
    "int-text": ["n_steps=abc"],
    "int-overflow": ["n_steps=1e400"],
    "int-negative": ["n_steps=-64"],
    "int-hex": ["n_steps=0x40"],
    "float-nan": ["learning_rate=nan"],
    "float-inf": ["learning_rate=inf"],
    "float-negative": ["learning_rate=-1"],
    "float-text": ["learning_rate=1e-3x"],
    "list-open": ["net_arch=[64,"],
    "list-empty-item": ["net_arch=64,,64"],
    "list-text": ["net_arch=a,b"],
    "bool-text": ["normalize_obs=maybe"],
    "choice-unknown": ["activation=nope"],
    "unknown-key": ["nope=1"],
    "gamma-over": ["gamma=2"],
    "surrogates": ["n_steps=6\udcff\udcfe"],
    "control-chars": ["n_steps=\x00\x1b[31m"],
    "newline": ["learning_rate=0.001\nn_steps=3"],
}
SET_BASE = ["n_steps=32", "learning_rate=0.001", "net_arch=16,16", "gamma=0.98", "normalize_obs=false"]


def _set_bytes(name: str) -> Callable[[Rng], list[str]]:
    """``--set`` values whose bytes were damaged, decoded as Python decodes a non-UTF-8 argv."""

    def values(rng: Rng) -> list[str]:
        out = []
        for pair in SET_BASE:
            raw = BYTES[name](pair.encode(), rng).replace(b"\x00", b"")  # argv holds no NUL
            out.append(raw.decode("utf-8", "surrogateescape"))
        return out

    return values


MNIST_NPZ: dict[str, Callable[[dict[str, Any]], Any]] = {
    "no-x-test": lambda a: a.pop("x_test"),
    "train-empty": lambda a: a.update(x_train=a["x_train"][:0], y_train=a["y_train"][:0]),
    "test-empty": lambda a: a.update(x_test=a["x_test"][:0], y_test=a["y_test"][:0]),
    "one-image": lambda a: a.update(x_train=a["x_train"][:1], y_train=a["y_train"][:1]),
    "x-nan": lambda a: a.update(x_train=np.full(a["x_train"].shape, np.nan, np.float32)),
    "x-over-255": lambda a: a.update(x_train=a["x_train"].astype(np.float32) * 10),
    "x-negative": lambda a: a.update(x_train=a["x_train"].astype(np.int16) - 300),
    "x-text": lambda a: a.update(x_train=a["x_train"].astype(str)),
    "x-object": lambda a: a.update(x_train=np.array([object()] * 80, dtype=object)),
    "x-complex": lambda a: a.update(x_train=a["x_train"].astype(np.complex64)),
    "x-bool": lambda a: a.update(x_train=a["x_train"] > 128),
    "x-2d": lambda a: a.update(x_train=a["x_train"].reshape(80, -1)),
    "x-rgb": lambda a: a.update(x_train=np.repeat(a["x_train"][..., None], 3, axis=-1)),
    "x-channel": lambda a: a.update(x_train=a["x_train"][..., None]),
    "x-scalar": lambda a: a.update(x_train=np.uint8(3)),
    "x-unit-float": lambda a: a.update(x_train=a["x_train"].astype(np.float64) / 255),
    "y-float": lambda a: a.update(y_train=a["y_train"] + 0.5),
    "y-10": lambda a: a.update(y_train=np.full(80, 10)),
    "y-negative": lambda a: a.update(y_train=-a["y_train"] - 1),
    "y-short": lambda a: a.update(y_train=a["y_train"][:79]),
    "y-column": lambda a: a.update(y_train=a["y_train"][:, None]),
    "y-text": lambda a: a.update(y_train=a["y_train"].astype(str)),
    "y-uint8": lambda a: a.update(y_train=a["y_train"].astype(np.uint8)),
    "extra-key": lambda a: a.update(extra=np.arange(3)),
}


# --------------------------------------------------------------------------- applying a damage


def _edit_npz(path: Path, edit: Callable[[dict[str, Any]], Any]) -> None:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    edit(arrays)
    path.write_bytes(_npz_bytes(arrays))


def _edit_json(path: Path, edit: Callable[[Any], Any]) -> None:
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def _edit_text(path: Path, edit: Callable[[str], str]) -> None:
    path.write_bytes(edit(path.read_text()).encode())


def _png_size(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = b"IDAT" + zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", len(idat) - 4)
        + idat
        + struct.pack(">I", zlib.crc32(idat))
        + b"\0\0\0\0IEND\xaeB`\x82"
    )


def _write(write: Callable[[Path], None]) -> Callable[[Path, Rng], None]:
    """A damage that replaces the file with what ``write`` writes."""
    return lambda path, rng: write(path)


def _iio_write(array: np.ndarray, **kwargs: Any) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import imageio.v3 as iio

        path.write_bytes(iio.imwrite("<bytes>", array, **kwargs))

    return write


IMAGES: dict[str, Callable[[Path, Rng], None]] = {
    "huge-canvas": _write(lambda p: p.write_bytes(_png_size(60_000, 60_000))),
    "gif-frames": _write(_iio_write(np.zeros((3, 28, 28), np.uint8), extension=".gif")),
    "one-pixel": _write(_iio_write(np.full((1, 1), 200, np.uint8), extension=".png")),
    "uint16": _write(_iio_write(np.full((28, 28), 40_000, np.uint16), extension=".png")),
    "text-file": _write(lambda p: p.write_bytes(b"this is not an image\n")),
}


IDX: dict[str, Callable[[Path, Rng], None]] = {
    "labels-10": _write(lambda p: _write_idx(p, np.full(80, 10, np.uint8))),
    "labels-short": _write(lambda p: _write_idx(p, np.zeros(79, np.uint8))),
    "images-magic": _write(lambda p: _write_idx(p, np.zeros((80, 28, 28), np.uint8))),
    "dims-huge": _write(lambda p: p.write_bytes(b"\0\0\x08\x01\xff\xff\xff\xff" + bytes(80))),
}


def _write_idx(path: Path, array: np.ndarray) -> None:
    from kerasdojo.supervised.data import write_idx

    write_idx(path, array, gz=False)


def _table(target: str) -> dict[str, Callable[[Path, Rng], None]]:
    """The damages that apply to ``target``'s file, each as ``damage(path, rng)``."""
    raw = {k: (lambda p, r, f=f: p.write_bytes(f(p.read_bytes(), r))) for k, f in {**BYTES, **TEXT}.items()}

    def on(edit: Callable[[Path, Any], None], table: dict[str, Any]) -> dict[str, Callable[[Path, Rng], None]]:
        return {k: (lambda p, r, f=f: edit(p, f)) for k, f in table.items()}

    structured: dict[str, Any] = {
        "checkpoint": on(_edit_npz, AGENT_NPZ),
        "agent": on(_edit_npz, AGENT_NPZ),
        "best-agent": on(_edit_npz, AGENT_NPZ),
        "config": on(_edit_json, CONFIG_JSON),
        "model-config": on(_edit_json, CONFIG_JSON),
        "eval-json": on(_edit_json, EVAL_JSON),
        "progress": on(_edit_text, PROGRESS_CSV),
        "train-csv": on(_edit_text, TRAIN_CSV),
        "test-csv": on(_edit_text, TEST_CSV),
        "toml": on(_edit_text, TOML_TEXT),
        "mnist-npz": on(_edit_npz, MNIST_NPZ),
        "image": IMAGES,
        "idx-train-labels": IDX,
    }
    return {**raw, **structured.get(target, {})}


# --------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    """One damaged input and the command that reads it."""

    target: str  # which file (or --set)
    damage: str  # which damage
    command: str  # which command reads it

    @property
    def id(self) -> str:
        return f"{self.target}/{self.damage}/{self.command}"


RL_FILES = {
    "checkpoint": ["checkpoints/step_000000001024.npz"],
    "older-checkpoint": ["checkpoints/step_000000000768.npz"],
    "both-checkpoints": ["checkpoints/step_000000001024.npz", "checkpoints/step_000000000768.npz"],
    "agent": ["agent.npz"],
    "best-agent": ["best_agent.npz"],
    "config": ["config.json"],
    "progress": ["progress.csv"],
    "eval-json": ["eval.json"],
    "policy": ["policy.keras"],
}
IDX_FILES = {
    "idx-train-images": "train-images-idx3-ubyte.gz",
    "idx-train-labels": "train-labels-idx1-ubyte",
    "idx-test-images": "t10k-images-idx3-ubyte",
    "idx-test-labels": "t10k-labels-idx1-ubyte.gz",
}
TEXT_BYTES = {**BYTES, **TEXT}


def _cases() -> list[Case]:
    cases: list[Case] = []

    def add(target: str, damages: Any, *commands: str) -> None:
        cases.extend(Case(target, d, c) for d in damages for c in commands)

    # A run with no final agent: eval reads the newest checkpoint that loads. resume falls back
    # past a damaged checkpoint to the previous good one.
    add("checkpoint", BYTES, "eval-checkpoint")
    add("checkpoint", FEW_BYTES, "resume")
    add("checkpoint", AGENT_NPZ, "eval-checkpoint")
    add("checkpoint", RESUME_NPZ, "resume")
    add("both-checkpoints", ("empty", "flip-16", "random"), "eval-checkpoint", "resume")
    add("older-checkpoint", ("cut-half", "random"), "resume")
    add("agent", BYTES, "eval")
    add("agent", AGENT_NPZ, "eval")
    add("best-agent", BYTES, "eval-best")
    add("best-agent", ("no-weight", "meta-list", "step-text", "weight-text", "weight-shape"), "eval-best")
    add("config", TEXT_BYTES, "eval")
    add("config", (*FEW_BYTES, "not-utf8"), "resume")
    add("config", CONFIG_JSON, "eval")
    add("config", RESUME_JSON, "resume")
    add("progress", {**TEXT_BYTES, **PROGRESS_CSV}, "plot")
    # progress/not-utf8/resume and mnist-npz/train-empty/mnist are the two tracebacks the issue reported.
    add("progress", (*FEW_BYTES, "not-utf8", "huge-field", "torn-row", "step-text", "garbage-header"), "resume")
    add("eval-json", ("empty", "random", "not-utf8", *EVAL_JSON), "eval")
    add("eval-json", ("random",), "resume")
    add("policy", ("empty", "cut-half", "random"), "eval")
    add("policy", ("random",), "resume")
    add("model", BYTES, "predict")
    add("model-config", ("empty", "random", "not-utf8", "list", "empty-object"), "predict")
    add("train-csv", {**TEXT_BYTES, **TRAIN_CSV}, "show-digits")
    add("train-csv", ("flip-16", "not-utf8", "label-text", "filename-missing", "one-class"), "digits")
    add("test-csv", (*FEW_BYTES, "not-utf8", *TEST_CSV), "digits")
    add("image", {**BYTES, **IMAGES}, "show-digits")
    add("image", ("cut-half", "random", "one-pixel"), "predict")
    add("image", ("cut-half", "flip-16"), "digits")
    add("mnist-npz", BYTES, "show-mnist")
    add("mnist-npz", MNIST_NPZ, "show-mnist")  # the same loader as training, without the training
    add("mnist-npz", ("train-empty", "test-empty", "x-nan", "x-channel"), "mnist")
    for target in IDX_FILES:
        add(target, ("empty", "one-byte", "cut-half", "flip-1", "flip-16", "random"), "show-mnist")
    add("idx-train-labels", IDX, "mnist")
    add("toml", {**TEXT_BYTES, **TOML_TEXT}, "train")
    add("set", SET_VALUES, "train")
    add("set", [f"bytes-{n}" for n in ("cut-half", "flip-1", "flip-16", "random-short", "append-junk")], "train")
    return cases


CASES = _cases()


def _params() -> list[Any]:
    """Every case; three of four are ``slow``, so ``-m "not slow"`` runs every fourth and the full run all."""
    return [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if i % 4 else []) for i, c in enumerate(CASES)]


# --------------------------------------------------------------------------- the good inputs


@dataclass(frozen=True)
class Inputs:
    """Good inputs, made once: never modified, each case works on copies."""

    rl_run: Path
    digits: Path
    mnist_npz: Path
    idx: Path
    supervised_run: Path
    image: Path


def _invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Inputs:

    from kerasdojo.supervised.data import write_idx

    root = tmp_path_factory.mktemp("good")
    result = _invoke(
        "train", "CartPole-v1", "--steps", "1024", "--save-every", "256", *RL_FAST, "--runs-dir", str(root / "rl")
    )
    assert result.exit_code == 0, result.output
    (rl_run,) = (root / "rl").iterdir()
    assert len(list((rl_run / "checkpoints").glob("step_*.npz"))) == 2

    digits = write_digits_folder(root / "digits", 50, 10, seed=3, gray_too=True)

    xm, ym = digit_images(100, seed=4)
    mnist_npz = root / "mnist.npz"
    np.savez(mnist_npz, x_train=xm[:80], y_train=ym[:80], x_test=xm[80:], y_test=ym[80:])
    idx = root / "idx"
    idx.mkdir()
    write_idx(idx / "train-images-idx3-ubyte.gz", xm[:80])
    write_idx(idx / "train-labels-idx1-ubyte", ym[:80].astype(np.uint8))
    write_idx(idx / "t10k-images-idx3-ubyte", xm[80:])
    write_idx(idx / "t10k-labels-idx1-ubyte.gz", ym[80:].astype(np.uint8))

    result = _invoke("supervised", "digits", "--data", str(digits), *FIT_FAST, "--runs-dir", str(root / "sup"))
    assert result.exit_code == 0, result.output
    (supervised_run,) = (root / "sup").iterdir()
    return Inputs(rl_run, digits, mnist_npz, idx, supervised_run, digits / "Images" / "train" / "3.png")


# --------------------------------------------------------------------------- running one case


def _prepare(case: Case, good: Inputs, tmp: Path, rng: Rng) -> tuple[list[str], Path | None]:
    """Copy the good input, damage it, and return the command line (and the checkpoint folder to watch)."""
    damage = _table(case.target).get(case.damage)
    runs = str(tmp / "runs")
    if case.target in RL_FILES:
        run = tmp / "run"
        shutil.copytree(good.rl_run, run)
        if case.command == "eval-checkpoint":
            (run / "agent.npz").unlink()  # a run killed before it finished: eval reads its checkpoints
        for name in RL_FILES[case.target]:
            assert damage is not None, case.id
            damage(run / name, rng)
        args = {
            "eval": ["eval", str(run), "--episodes", "1"],
            "eval-checkpoint": ["eval", str(run), "--episodes", "1"],
            "eval-best": ["eval", str(run), "--episodes", "1", "--best"],
            "resume": ["resume", str(run), "--steps", "1280", "-q"],
            "plot": ["plot", str(run), "--out", str(tmp / "curves.png")],
        }[case.command]
        return args, run / "checkpoints"
    if case.target == "set":
        if case.damage.startswith("bytes-"):
            values = _set_bytes(case.damage[len("bytes-") :])(rng)
        else:
            values = SET_VALUES[case.damage]
        sets = [arg for value in ["batch_size=64", "n_epochs=2", *values] for arg in ("--set", value)]
        return ["train", "CartPole-v1", *sets, *TRAIN_TINY, "--runs-dir", runs], None
    assert damage is not None, case.id
    if case.target == "toml":
        path = tmp / "ppo.toml"
        path.write_text(TOML)
        damage(path, rng)
        return ["train", "CartPole-v1", "--config", str(path), *TRAIN_TINY, "--runs-dir", runs], None
    if case.target in ("model", "model-config"):
        run = tmp / "supervised"
        shutil.copytree(good.supervised_run, run)
        damage(run / ("model.keras" if case.target == "model" else "config.json"), rng)
        return ["supervised", "predict", str(run), str(good.image)], None
    if case.target in ("train-csv", "test-csv", "image"):
        folder = tmp / "digits"
        shutil.copytree(good.digits, folder)
        path = {"train-csv": "train.csv", "test-csv": "test.csv", "image": "Images/train/3.png"}[case.target]
        damage(folder / path, rng)
        return {
            "show-digits": ["supervised", "show", "digits", "--data", str(folder), "-i", "3", "-o", str(tmp / "s.png")],
            "digits": ["supervised", "digits", "--data", str(folder), *FIT_FAST, "--runs-dir", runs],
            "predict": ["supervised", "predict", str(good.supervised_run), str(folder / path)],
        }[case.command], None
    if case.target == "mnist-npz":
        data = tmp / "mnist.npz"
        shutil.copy(good.mnist_npz, data)
    else:
        data = tmp / "idx"
        shutil.copytree(good.idx, data)
    damage(data if case.target == "mnist-npz" else data / IDX_FILES[case.target], rng)
    return {
        "show-mnist": ["supervised", "show", "mnist", "--data", str(data), "-o", str(tmp / "s.png")],
        "mnist": ["supervised", "mnist", "--data", str(data), *FIT_FAST, "--runs-dir", runs],
    }[case.command], None


def _untouched_checkpoints(case: Case, checkpoints: Path | None) -> dict[int, bytes]:
    """The checkpoints this case did not damage (step -> bytes): none of them may be lost."""
    damaged = {Path(name).name for name in RL_FILES.get(case.target, [])}
    found = sorted(checkpoints.iterdir()) if checkpoints is not None else []
    return {int(m.group(1)): p.read_bytes() for p in found if (m := CHECKPOINT.match(p.name)) and p.name not in damaged}


@pytest.mark.parametrize("case", _params())
def test_damaged_input_ends_in_one_line_or_success(case: Case, good: Inputs, tmp_path: Path) -> None:
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    args, checkpoints = _prepare(case, good, tmp_path, rng)
    before = _untouched_checkpoints(case, checkpoints)

    result = runner.invoke(app, args)

    crash = ""
    if result.exc_info is not None and not isinstance(result.exception, SystemExit):
        where = traceback.extract_tb(result.exc_info[2])[-1]
        crash = f"{result.exception!r} at {where.filename}:{where.lineno}\n"
        crash += "".join(traceback.format_exception(*result.exc_info))
    assert result.exit_code in (0, 2), f"exit {result.exit_code}: {crash}\n{result.output}"
    assert "Traceback" not in result.output, result.output
    if case.target in ("checkpoint", "older-checkpoint") and case.damage in BYTES:
        assert result.exit_code == 0, f"a good checkpoint is left: expected a fall back\n{result.output}"
    if result.exit_code == 2:  # the CLI's form: one line on stderr, "Error: message (hint)"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), f"not one Error line:\n{result.stderr}"
    if checkpoints is not None:
        now = {int(m.group(1)): p for p in checkpoints.iterdir() if (m := CHECKPOINT.match(p.name))}
        for step, data in before.items():
            if step in now:
                assert now[step].read_bytes() == data, f"good checkpoint {step} was changed"
            else:  # rotated out: only by newer checkpoints
                assert sum(s > step for s in now) >= KEEP, f"good checkpoint {step} was lost: {sorted(now)}"


def test_case_table() -> None:
    """At least 200 distinct cases."""
    ids = {c.id for c in CASES}
    assert len(CASES) >= 200 and len(ids) == len(CASES)
