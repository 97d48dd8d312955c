from __future__ import annotations

import json
import os

import numpy as np
import pytest

from kerasdojo import events, files, runs
from kerasdojo.errors import DojoError


def read_events(path):
    """Scalars, texts and images in event files below ``path`` (read with TensorBoard's loader)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def image_tags(path) -> set[str]:
    """Tags of the image summaries below ``path`` (tensor summaries of the images plugin)."""
    acc = read_events(path)
    return {t for t in acc.Tags()["tensors"] if acc.SummaryMetadata(t).plugin_data.plugin_name == "images"}


def scalars(path, tag) -> list[tuple[int, float]]:
    """(step, value) of a scalar tag, whether written as a simple value (kerasdojo's
    writer) or as a tensor (tf.summary, used by Keras's TensorBoard callback)."""
    from tensorboard.util import tensor_util

    acc = read_events(path)
    if tag in acc.Tags()["scalars"]:
        return [(e.step, e.value) for e in acc.Scalars(tag)]
    return [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]


def test_create_never_reuses_a_directory(tmp_path) -> None:
    a = runs.Run.create(tmp_path, "CartPole-v1", "ppo", "s0")
    b = runs.Run.create(tmp_path, "CartPole-v1", "ppo", "s0")
    assert a.path != b.path and a.path.is_dir() and b.path.is_dir()
    assert a.path.name.startswith("CartPole-v1__ppo__s0__")


def test_open_rejects_non_runs(tmp_path) -> None:
    with pytest.raises(DojoError, match="Not a directory"):
        runs.Run.open(tmp_path / "nope")
    with pytest.raises(DojoError, match="no config.json"):
        runs.Run.open(tmp_path)


def test_atomic_path_keeps_old_file_on_failure(tmp_path) -> None:
    target = tmp_path / "data.json"
    files.write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with files.atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("crash")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_event_writer_scalars_text_images(tmp_path) -> None:
    writer = events.EventWriter(tmp_path)
    for step in range(5):
        writer.scalar("rollout/ep_rew_mean", step * 2.0, step)
    writer.text("hyperparameters", "|a|b|\n|-|-|\n|x|1|")
    writer.image("samples", np.arange(28 * 28, dtype=np.uint8).reshape(28, 28))
    writer.close()
    acc = read_events(tmp_path)
    values = [(e.step, e.value) for e in acc.Scalars("rollout/ep_rew_mean")]
    assert values == [(i, i * 2.0) for i in range(5)]
    # Images as tensor summaries (what TensorBoard's default loader reads): [width, height, PNG].
    assert {"hyperparameters", "samples"} <= set(acc.Tags()["tensors"])
    (event,) = acc.Tensors("samples")
    width, height, png = event.tensor_proto.string_val
    assert (width, height) == (b"28", b"28")
    import imageio.v3 as iio

    assert iio.imread(png).tolist() == np.arange(28 * 28, dtype=np.uint8).reshape(28, 28).tolist()


def test_event_writer_needs_no_tensorflow() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tempfile; from kerasdojo.events import EventWriter; "
        "w = EventWriter(tempfile.mkdtemp()); w.scalar('a', 1.0, 0); w.close(); "
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_progress_csv_adds_columns_and_truncates(tmp_path) -> None:
    csv_path = tmp_path / "progress.csv"
    log = runs.ProgressCSV(csv_path)
    log.append({"time/total_timesteps": 100, "a": 1.0})
    log.append({"time/total_timesteps": 200, "a": 2.0, "b": 5.0})
    log.append({"time/total_timesteps": 300, "a": 3.0})
    rows = runs.read_progress(csv_path)
    assert [r["b"] for r in rows] == ["", "5", ""]
    again = runs.ProgressCSV(csv_path)
    again.truncate_after(200)
    assert [r["time/total_timesteps"] for r in runs.read_progress(csv_path)] == ["100", "200"]


def test_checkpoints_round_trip_keep_last_and_detect_corruption(tmp_path) -> None:
    run = runs.Run.create(tmp_path, "x")
    for step in (10, 20, 30):
        run.save_checkpoint(step, {"w": np.full(3, step)}, {"step": step}, keep=2)
    assert [s for s, _ in run.checkpoints()] == [20, 30]
    path, arrays, meta = run.load_latest_checkpoint()
    assert meta["step"] == 30 and arrays["w"].tolist() == [30, 30, 30]
    path.write_bytes(path.read_bytes()[:40])  # cut short on disk
    warnings: list[str] = []
    _, arrays, meta = run.load_latest_checkpoint(warnings.append)  # falls back to the previous one
    assert meta["step"] == 20 and len(warnings) == 1 and "step_000000000030.npz" in warnings[0]
    run.checkpoints()[0][1].write_bytes(b"")  # zero bytes: now none is good
    with pytest.raises(DojoError, match="corrupt") as err:
        run.load_latest_checkpoint()
    assert "older checkpoint" in err.value.one_line()


def test_a_checkpoint_loads_without_the_arrays_it_is_told_to_skip(tmp_path, monkeypatch) -> None:
    run = runs.Run.create(tmp_path, "x")
    run.save_checkpoint(5, {"net/w": np.ones(3), "replay/obs": np.ones((100, 4))}, {"step": 5}, keep=2)
    read: list[str] = []
    real_load = np.load

    class Recording:  # what np.load's NpzFile hands out, member by member
        def __init__(self, *args, **kwargs):
            self.npz = real_load(*args, **kwargs)
            self.files = self.npz.files

        def __getitem__(self, key):
            read.append(key)
            return self.npz[key]

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.npz.close()

    monkeypatch.setattr(files.np, "load", Recording)
    _, arrays, meta = run.load_latest_checkpoint(skip=("replay/",))
    assert sorted(arrays) == ["net/w"] and meta["step"] == 5
    assert not any(k.startswith("replay/") for k in read)  # never decompressed


def test_no_checkpoint_is_a_clear_error(tmp_path) -> None:
    run = runs.Run.create(tmp_path, "x")
    with pytest.raises(DojoError, match="no checkpoint"):
        run.load_latest_checkpoint()


def test_session_start_drops_orphaned_steps(tmp_path) -> None:
    """After a resume from step 20, values logged at steps 21-30 by the killed session vanish."""
    import time

    first = events.EventWriter(tmp_path)
    for step in (10, 20, 30):
        first.scalar("x", step, step)
    first.close()
    time.sleep(0.01)
    second = events.EventWriter(tmp_path)
    second.session_start(20)
    second.scalar("x", 25.0, 25)
    second.close()
    assert [e.step for e in read_events(tmp_path).Scalars("x")] == [10, 20, 25]
