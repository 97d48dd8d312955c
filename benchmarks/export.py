"""Exported policies: file size and single-observation latency in each runtime.

Three models: CartPole-v1 PPO (a 64-64 MLP), an Atari Nature-CNN policy (PPO on
ALE/Breakout-v5: 4 stacked uint8 84x84 frames) and the MNIST CNN. Each is trained briefly
(the weights do not change the cost), exported with ``kerasdojo export`` to every format
(each export checked in its runtime on 1,000 observations), then called 1,000 times on one
observation (after 50 warm-up calls) through:

* Keras: ``policy.keras`` loaded and called, ``model(x)``;
* tf.function: the same model in a compiled ``tf.function`` with a fixed input signature;
* SavedModel: ``tf.saved_model.load`` and its ``serving_default`` signature;
* ONNX Runtime: ``InferenceSession.run`` (CPU provider, default threads);
* LiteRT: the interpreter's signature runner (XNNPACK, default threads).

Median and 99th percentile in milliseconds; sizes on disk (a SavedModel: its folder).

    python benchmarks/export.py              # all three, into RESULTS.md
    python benchmarks/export.py --cases cartpole --no-write
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA, machine, markdown_table, today, update_section, versions  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
CALLS, WARMUP = 1000, 50
CASES = ("cartpole", "atari", "mnist")


def make_run(case: str, root: Path) -> Path:
    """A short run of each kind (its policy's shape is the preset's)."""
    if case == "mnist":
        from kerasdojo.supervised import mnist

        npz = SHARED_DATA / "mnist" / "mnist.npz"
        data = str(npz) if npz.is_file() else None
        if data is None:  # small synthetic IDX files, never a download
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from tests.conftest import write_idx_folder

            root.mkdir(parents=True, exist_ok=True)
            data = str(write_idx_folder(root / "idx", 1000, 200))
        cfg = mnist.MnistConfig(model="cnn", data=data, epochs=1, limit=2000)
        return mnist.run(cfg, root, quiet=True)[0].path
    from kerasdojo.training.session import TrainSpec, start

    env_id, steps, kwargs = {
        "cartpole": ("CartPole-v1", 2048, {}),
        "atari": ("ALE/Breakout-v5", 1024, {"max_num_frames_per_episode": 4000}),
    }[case]
    spec = TrainSpec(
        env_id, "ppo", seed=0, total_steps=steps, eval_every=0, eval_episodes=1, save_every=0, env_kwargs=kwargs
    )
    session = start(spec, root)
    session.train()
    return session.run.path


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def timed(call, x) -> tuple[float, float]:
    import numpy as np

    for _ in range(WARMUP):
        call(x)
    times = np.empty(CALLS)
    for i in range(CALLS):
        t = time.perf_counter()
        call(x)
        times[i] = time.perf_counter() - t
    return float(np.median(times) * 1e3), float(np.percentile(times, 99) * 1e3)


def measure(case: str, root: Path) -> list[list[str]]:
    import keras
    import numpy as np

    from kerasdojo import portable
    from kerasdojo.training.exported import export_run
    from kerasdojo.training.policy_actor import keras_forward

    run = make_run(case, root / case)
    source = run / ("model.keras" if case == "mnist" else "policy.keras")
    model = keras.models.load_model(source)
    specs = portable.input_specs(model)
    rng = np.random.default_rng(0)
    one = {
        name: (rng.integers(0, 256, (1, *shape[1:])) if dtype == "uint8" else rng.random((1, *shape[1:]))).astype(dtype)
        for name, (shape, dtype) in specs.items()
    }
    x = one[portable.SINGLE_INPUT]
    rows = []
    keras_ms = timed(lambda v: model(v, training=False), x)
    kb = f"{size(source) / 1e3:,.1f}"
    rows.append([case, "policy.keras, Keras call", kb, *(f"{t:.3f}" for t in keras_ms)])
    rows.append([case, "policy.keras, tf.function", kb, *(f"{t:.3f}" for t in timed(keras_forward(model), one))])
    for fmt in portable.FORMATS:
        done = export_run(run, fmt, out=root / f"{case}{portable.SUFFIX[fmt]}")
        runtime = portable.load(done.path)
        if fmt == "litert":  # the runner, fed as a user feeds it
            runner = runtime.runner
            call = lambda v, r=runner: r(obs=v)  # noqa: E731
        elif fmt == "onnx":
            session = runtime.session
            call = lambda v, s=session: s.run(None, {"obs": v})  # noqa: E731
        else:
            serve = runtime.serve
            call = lambda v, s=serve: s(obs=v)  # noqa: E731
        median, p99 = timed(call, x)
        label = {"saved_model": "SavedModel, serving_default", "onnx": "ONNX Runtime", "litert": "LiteRT runner"}[fmt]
        rows.append(
            [
                case,
                f"{label} (max diff {done.max_error:.1e})",
                f"{done.bytes / 1e3:,.1f}",
                f"{median:.3f}",
                f"{p99:.3f}",
            ]
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            rows += measure(case, Path(tmp))
    table = markdown_table(["model", "how it is called", "size (KB)", "median (ms)", "p99 (ms)"], rows)
    body = (
        "## Exported policies: size and latency (`benchmarks/export.py`)\n\n"
        f"{today()}; {machine()}; "
        f"{versions('tensorflow', 'keras', 'onnxruntime', 'tf2onnx', 'ai_edge_litert')}.\n"
        f"One observation per call, {CALLS:,} calls after {WARMUP} warm-up calls, one process, nothing else "
        "running.\n\n" + table
    )
    print(body)
    if not args.no_write:
        update_section("export", body)


if __name__ == "__main__":
    main()
