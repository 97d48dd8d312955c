"""TensorFlow start-up in one place: quiet logs, the Keras backend, seeding, devices.

Call :func:`tf` instead of ``import tensorflow`` anywhere in kerasdojo: it sets the
environment first, so Keras picks the TensorFlow backend and TensorFlow's C++
start-up noise stays hidden unless ``KERASDOJO_DEBUG=1``.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kerasdojo.errors import DojoError


def debug() -> bool:
    return os.environ.get("KERASDOJO_DEBUG", "") not in ("", "0")


def tf() -> Any:
    """Import and return TensorFlow with Keras 3 on the TensorFlow backend."""
    backend = os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if backend != "tensorflow":
        raise DojoError(
            f"kerasdojo needs the TensorFlow backend of Keras. Received: KERAS_BACKEND={backend}",
            hint="unset KERAS_BACKEND or set it to tensorflow",
        )
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    _persistent_xla_cache()
    if debug():
        import tensorflow

        return tensorflow
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # TensorFlow's C++ start-up lines (oneDNN, CUDA stubs) are written through absl
    # before its log level applies, so silence file descriptor 2 for the import.
    with _quiet_stderr():
        import tensorflow
    tensorflow.get_logger().setLevel("ERROR")
    tensorflow.autograph.set_verbosity(0)
    return tensorflow


def _persistent_xla_cache() -> None:
    """Keep XLA's compiled programs on disk (``~/.cache/kerasdojo/xla``), so the next run of the
    same program loads it instead of compiling (figures: benchmarks/RESULTS.md).
    ``KERASDOJO_XLA_CACHE=0`` (or false/no/off) turns it off, ``=DIR`` moves it; a cache directory already in
    ``TF_XLA_FLAGS`` wins. Must run before TensorFlow is imported."""
    setting = os.environ.get("KERASDOJO_XLA_CACHE", "")
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if setting.lower() in ("0", "false", "no", "off") or "tf_xla_persistent_cache_directory" in flags:
        return
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    default = os.path.join(cache_home, "kerasdojo", "xla")
    path = default if setting.lower() in ("", "1", "true", "yes", "on") else setting
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:  # a read-only home: compile every time
        return
    os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={path}".strip()


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (some test runners): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def keras() -> Any:
    tf()
    import keras as _keras

    return _keras


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy, TensorFlow and Keras; optionally make TF ops deterministic."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    keras().utils.set_random_seed(seed)
    if deterministic:
        tf().config.experimental.enable_op_determinism()


def devices() -> list[dict[str, Any]]:
    """The devices TensorFlow sees: name, type and, for GPUs, model, compute capability and memory."""
    t = tf()
    out: list[dict[str, Any]] = []
    for dev in t.config.list_physical_devices():
        entry: dict[str, Any] = {"name": dev.name, "type": dev.device_type}
        if dev.device_type == "GPU":
            try:
                details = t.config.experimental.get_device_details(dev)
                entry["model"] = details.get("device_name", "")
                cc = details.get("compute_capability")
                if cc:
                    entry["compute_capability"] = ".".join(str(x) for x in cc)
            except Exception:  # details are best effort
                pass
        out.append(entry)
    gpus = [e for e in out if e["type"] == "GPU"]
    for entry, (name, total) in zip(gpus, _nvidia_smi(), strict=False):
        entry.setdefault("model", name)
        entry["memory_total_mib"] = total
    return out


def _nvidia_smi() -> list[tuple[str, int]]:
    """(name, total MiB) per NVIDIA GPU, from nvidia-smi when it is installed (TF does not report totals)."""
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        text = subprocess.run(
            [exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    out = []
    for line in text.strip().splitlines():
        name, _, mem = line.rpartition(",")
        if mem.strip().isdigit():
            out.append((name.strip(), int(mem)))
    return out


def native_bfloat16() -> tuple[bool, str]:
    """Whether the device the networks run on does bfloat16 math natively, and why: every GPU
    TensorFlow sees has compute capability 8.0 or more (Ampere on), or, with no GPU, the CPU
    has AVX512_BF16 or AMX-BF16 (where oneDNN's bfloat16 convolutions beat float32's).
    Elsewhere bfloat16 is emulated and slower than float32."""
    gpus = [d for d in devices() if d["type"] == "GPU"]
    if gpus:
        ok = all(float(d.get("compute_capability", "0")) >= 8.0 for d in gpus)
        return ok, "the GPU does bfloat16 natively" if ok else "the GPU has no native bfloat16"
    flags = _cpu_flags()
    found = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    if found:
        return True, f"the CPU has {found[0].upper()}"
    return False, "the CPU has no native bfloat16"


def _cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()
