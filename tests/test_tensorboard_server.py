"""What TensorBoard shows, asked of a real server through its HTTP data API.

The server is started as ``kerasdojo tensorboard`` starts it (its default, fast
data loader), on a free port of 127.0.0.1, and stopped at the end.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kerasdojo import tensorboard
from kerasdojo.cli import app

runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(base: str, path: str, body: dict | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-XSRF-Protected": "1"} if body is not None else {}
    with urllib.request.urlopen(urllib.request.Request(base + path, data=data, headers=headers), timeout=10) as r:
        raw = r.read()
    return raw if path.startswith("/data/plugin/images/individualImage") else json.loads(raw)


@pytest.fixture
def logdir(tmp_path, idx_folder) -> Path:
    runs = tmp_path / "runs"
    rl = ["train", "CartPole-v1", "--agent", "ppo", "--steps", "1024", "--runs-dir", str(runs), "-q"]
    rl += ["--set", "n_steps=64", "--set", "n_epochs=1", "--eval-every", "512", "--eval-episodes", "2"]
    sup = ["supervised", "mnist", "--data", str(idx_folder), "--epochs", "1", "--limit", "200"]
    for args in (rl, [*sup, "--runs-dir", str(runs)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    return runs


def test_tensorboard_shows_scalars_text_images_and_hparams(logdir) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        tensorboard.command(logdir, port, "127.0.0.1"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, images = time.monotonic() + 90, {}
        while time.monotonic() < deadline:  # the server starts, then loads the event files
            try:
                images = _get(base, "/data/plugin/images/tags")
                scalars = _get(base, "/data/plugin/scalars/tags")
                # The run itself (not its hparams/ sub-run, which also has eval/ scalars) must be loaded.
                if images and any(
                    "/" not in run and "time/fps" in tags and "eval/mean_reward" in tags
                    for run, tags in scalars.items()
                ):
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(1)
        rl_run = next(run for run in scalars if run.startswith("CartPole-v1__ppo") and "/" not in run)
        assert {"rollout/ep_rew_mean", "eval/mean_reward", "train/value_loss", "time/fps"} <= set(scalars[rl_run])
        mnist_run = next(run for run in images if run.startswith("mnist__mlp"))
        assert {"test/samples", "test/confusion_matrix"} <= set(images[mnist_run])
        assert any(run.endswith("/train") and "epoch_loss" in tags for run, tags in scalars.items())

        listing = _get(base, f"/data/plugin/images/images?run={mnist_run}&tag=test/confusion_matrix&sample=0")
        png = _get(base, "/data/plugin/images/individualImage?" + listing[0]["query"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"

        texts = _get(base, "/data/plugin/text/tags")
        assert "hyperparameters" in texts[rl_run] and "config" in texts[mnist_run]

        experiment = _get(base, "/data/plugin/hparams/experiment", {"experimentName": ""})
        hparams = {h["name"] for h in experiment["hparamInfos"]}
        assert {"agent", "env_id", "learning_rate", "n_steps", "task", "epochs", "lr"} <= hparams
        metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
        assert {"eval/mean_reward", "test_accuracy"} <= metrics
        groups = _get(
            base,
            "/data/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
                "colParams": [],
                "startIndex": 0,
                "sliceSize": 100,
            },
        )
        assert groups["totalSize"] == 2  # one row in the HParams table per run
        values = {m["name"]["tag"]: m["value"] for g in groups["sessionGroups"] for m in g.get("metricValues", [])}
        assert "eval/mean_reward" in values and 0 <= values["test_accuracy"] <= 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
