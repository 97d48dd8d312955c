"""The supervised commands end to end through the CLI (CliRunner), on data the tests write."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from kerasdojo.cli import app
from tests.test_runs import image_tags, scalars

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("impl", ["numpy", "keras"])
def test_xor_learns_all_four(runs_dir, impl) -> None:
    result = invoke("supervised", "xor", "--impl", impl, "--runs-dir", str(runs_dir))
    assert result.exit_code == 0, result.output
    assert "4/4 correct" in result.output
    run = next(runs_dir.iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["correct"] == 4
    probs = np.array(metrics["probabilities"])
    assert (probs[[0, 3]] < 0.1).all() and (probs[[1, 2]] > 0.9).all()
    losses = [v for _, v in scalars(run / "train", "epoch_loss")]
    assert len(losses) >= 10 and losses[-1] < losses[0] / 10


def test_xor_numpy_imports_no_tensorflow(tmp_path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from kerasdojo.supervised import xor; "
        f"r, res = xor.run(xor.XorConfig(impl='numpy'), runs_dir={str(tmp_path)!r}); "
        "print(res.correct, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["4", "False"]


def test_xor_is_repeatable(runs_dir) -> None:
    for _ in range(2):
        assert invoke("supervised", "xor", "--impl", "numpy", "--runs-dir", str(runs_dir)).exit_code == 0
    a, b = sorted(runs_dir.iterdir())
    assert json.loads((a / "metrics.json").read_text()) == json.loads((b / "metrics.json").read_text())


def test_mnist_from_idx_folder_writes_a_full_run(runs_dir, idx_folder) -> None:
    import keras

    result = invoke(
        "supervised",
        "mnist",
        "--data",
        str(idx_folder),
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--runs-dir",
        str(runs_dir),
    )
    assert result.exit_code == 0, result.output
    run = next(runs_dir.iterdir())
    assert run.name.startswith("mnist__mlp__s0__")
    assert {"config.json", "metrics.json", "model.keras", "train", "validation"} <= {p.name for p in run.iterdir()}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.5  # synthetic classes are easy; chance is 0.1
    assert np.array(metrics["confusion_matrix"]).sum() == 200
    model = keras.models.load_model(run / "model.keras")
    assert model.output_shape == (None, 10)
    train_curve = scalars(run / "train", "epoch_loss")
    val_curve = scalars(run / "validation", "epoch_accuracy")
    assert len(train_curve) == 3 and len(val_curve) == 3
    images = image_tags(run)
    assert "test/samples" in images and "test/confusion_matrix" in images


def test_mnist_cnn_and_limit(runs_dir, idx_folder) -> None:
    result = invoke(
        "supervised",
        "mnist",
        "--model",
        "cnn",
        "--data",
        str(idx_folder),
        "--epochs",
        "1",
        "--limit",
        "100",
        "--val-split",
        "0.2",
        "--runs-dir",
        str(runs_dir),
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((next(runs_dir.iterdir()) / "metrics.json").read_text())
    assert metrics["train_samples"] == 80 and metrics["val_samples"] == 20


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--epochs", "0"], "--epochs must be positive. Received: 0"),
        (["--batch-size", "-5"], "--batch-size must be positive"),
        (["--data", "/nonexistent/mnist.npz"], "--data path does not exist"),
        (["--model", "rnn"], "Invalid value for '--model"),
    ],
)
def test_mnist_bad_input_is_one_line_exit_2(runs_dir, args, fragment) -> None:
    result = invoke("supervised", "mnist", *args, "--runs-dir", str(runs_dir))
    assert result.exit_code == 2
    assert fragment in result.output
    assert "Traceback" not in result.output
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_mnist_bad_npz_leaves_no_run(runs_dir, tmp_path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((2, 28, 28), np.uint8))
    result = invoke("supervised", "mnist", "--data", str(bad), "--runs-dir", str(runs_dir))
    assert result.exit_code == 2 and "missing key" in result.output
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_digits_trains_predicts_and_shows(runs_dir, digits_folder, tmp_path) -> None:
    result = invoke("supervised", "digits", "--data", str(digits_folder), "--epochs", "8", "--runs-dir", str(runs_dir))
    assert result.exit_code == 0, result.output
    run = next(runs_dir.iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val_samples"] == 30 and metrics["val_accuracy"] > 0.5
    with open(run / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 40 and rows[0]["filename"] == "300.png"
    assert all(row["label"] in set("0123456789") for row in rows)

    image = digits_folder / "Images" / "train" / "0.png"
    result = invoke("supervised", "predict", str(run), str(image))
    assert result.exit_code == 0, result.output
    assert result.output.split("\t")[0].endswith("0.png")

    out = tmp_path / "digit.png"
    result = invoke("supervised", "show", "digits", "--data", str(digits_folder), "--index", "0", "--out", str(out))
    assert result.exit_code == 0, result.output
    import imageio.v3 as iio

    label = (digits_folder / "train.csv").read_text().splitlines()[1].split(",")[1]
    assert f"label {label}" in result.output and iio.imread(out).shape == (280, 280)


def test_digits_bad_label_names_line(runs_dir, digits_folder) -> None:
    lines = (digits_folder / "train.csv").read_text().splitlines()
    lines[5] = lines[5].split(",")[0] + ",11"
    (digits_folder / "train.csv").write_text("\n".join(lines) + "\n")
    result = invoke("supervised", "digits", "--data", str(digits_folder), "--runs-dir", str(runs_dir))
    assert result.exit_code == 2
    assert "train.csv line 6: label '11' is not a digit 0-9" in result.output


def test_show_mnist_npz(tmp_path) -> None:
    from tests.conftest import digit_images

    x, y = digit_images(20)
    npz = tmp_path / "m.npz"
    np.savez(npz, x_train=x, y_train=y, x_test=x, y_test=y)
    out = tmp_path / "s.png"
    result = invoke(
        "supervised", "show", "mnist", "--data", str(npz), "--index", "4", "--out", str(out), "--scale", "4"
    )
    assert result.exit_code == 0, result.output
    assert f"label {y[4]}" in result.output
    import imageio.v3 as iio

    np.testing.assert_array_equal(iio.imread(out)[::4, ::4], x[4])
    bad = invoke("supervised", "show", "mnist", "--data", str(npz), "--index", "99")
    assert bad.exit_code == 2 and "out of range" in bad.output


def test_predict_rejects_non_supervised_runs(tmp_path) -> None:
    result = invoke("supervised", "predict", str(tmp_path), str(tmp_path / "x.png"))
    assert result.exit_code == 2 and "no config.json" in result.output


@pytest.mark.slow
def test_mnist_cnn_real_data_5000_images(runs_dir, mnist_npz) -> None:
    """Learning test: the CNN on 5,000 real MNIST images, 2 epochs -> test accuracy above 0.93.
    (Seen here: 0.948. The MLP saturates near 0.93 on 5,000 images; with only 2 epochs a constant
    learning rate beats the default cosine decay, 0.925.)"""
    result = invoke(
        "supervised",
        "mnist",
        "--model",
        "cnn",
        "--data",
        str(mnist_npz),
        "--limit",
        "5000",
        "--epochs",
        "2",
        "--lr-schedule",
        "constant",
        "--runs-dir",
        str(runs_dir),
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((next(runs_dir.iterdir()) / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.93, metrics
