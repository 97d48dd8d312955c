"""A real two-node Ray cluster on this machine, started the way the README says.

``ray start --head`` with token authentication and a second ``ray start --address`` with its own
temporary directory, one CPU each; ``kerasdojo bench`` and ``kerasdojo tune`` join it with
``--ray ADDRESS``, both nodes train, and a driver without the token (or with a wrong one) gets one
line and exit 2. The commands run as subprocesses, not through CliRunner: Ray reads its
authentication settings once per process, and the test must see what reaches the terminal.

The token is generated into the test's own folder and handed over in environment variables, so
nothing depends on (or touches) the user's ``~/.ray``. Every Ray process the test starts is stopped
by its id, even when a test fails: ``ray stop`` would also stop any other Ray on this machine.
The fast tests at the end check the pieces without a cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

FAST = ["--steps", "1024", "--eval-every", "512", "--eval-episodes", "2", "-q"]
FAST_SET = ["--set", "n_steps=64", "--set", "batch_size=64", "--set", "n_epochs=2"]


def ray_command() -> str | None:
    """The ``ray`` of this interpreter's environment (a virtualenv need not be on PATH), else PATH's."""
    here = Path(sys.executable).parent / "ray"
    return str(here) if here.is_file() else shutil.which("ray")


@dataclass
class Cluster:
    address: str
    env: dict[str, str]  # what the README asks of every machine: RAY_AUTH_MODE=token and the token
    bare_env: dict[str, str]  # the same without any RAY_AUTH_* variable
    base: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(ray: str, args: list[str], env: dict[str, str], log: Path, procs: list) -> None:
    """``ray start ... --block`` in a session of its own (its processes share the group id), returning
    once it says the node runs."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [ray, "start", *args, "--block"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    procs.append(proc)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "Ray runtime started" in text:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"ray start {' '.join(args)} exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.3)
    raise RuntimeError(f"ray start {' '.join(args)} did not start in 120 s:\n{log.read_text()[-3000:]}")


def stop_nodes(procs: list, base: Path) -> list[int]:
    """SIGTERM each ``ray start --block`` group (the head stops in about 3 s; the second node's
    ``ray start`` outlived 30 s in a trial), SIGKILL the groups 5 s later, then any process whose
    command line names this test's folder. Returns the pids of the latter (none in trials)."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(proc.poll() is None for proc in procs):
        time.sleep(0.2)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    stray = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(ProcessLookupError, PermissionError, FileNotFoundError):
                if str(base) in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    os.kill(int(entry.name), signal.SIGKILL)
                    stray.append(int(entry.name))
    return stray


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    ray = ray_command()
    if ray is None:
        pytest.skip("the ray command is not installed (pip install 'kerasdojo[ray]')")
    # A short folder: Ray's socket paths under --temp-dir must stay within 107 characters.
    base = Path(tempfile.mkdtemp(prefix="kdray-", dir="/tmp"))
    procs: list[subprocess.Popen] = []
    try:
        bare = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        bare["PATH"] = f"{Path(ray).parent}{os.pathsep}{bare.get('PATH', '')}"
        # The README's first step, `ray get-auth-token --generate`, with HOME here: the token file
        # lands in this folder, not in the user's ~/.ray.
        made = subprocess.run(
            [ray, "get-auth-token", "--generate"], env={**bare, "HOME": str(base)}, capture_output=True, text=True
        )
        token_file = base / ".ray" / "auth_token"
        assert made.returncode == 0 and token_file.read_text().strip() == made.stdout.strip(), made.stderr
        env = {**bare, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)}
        port = free_port()
        common = ["--num-cpus", "1", "--disable-usage-stats"]
        head = ["--head", "--port", str(port), "--temp-dir", str(base / "head"), "--include-dashboard", "false"]
        start_node(ray, head + common, env, base / "head.log", procs)
        # The second node on the same machine: its own temporary folder and its own agent ports.
        second = ["--address", f"127.0.0.1:{port}", "--temp-dir", str(base / "node2")]
        ports = ["--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port())]
        start_node(ray, second + ports + common, env, base / "node2.log", procs)
        yield Cluster(f"127.0.0.1:{port}", env, bare, base)
    finally:
        stop_nodes(procs, base)
        shutil.rmtree(base, ignore_errors=True)


def kerasdojo(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kerasdojo", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_bench_and_tune_train_on_both_nodes(cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    args = ["bench", "CartPole-v1", "--agent", "ppo", "--seeds", "2", "--ray", cluster.address, "--out", str(out)]
    done = kerasdojo(args + FAST + FAST_SET, cluster.env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    seeds = json.loads((out / "summary.json").read_text())["seeds"]
    assert all(r["finished"] for r in seeds)
    nodes = {r["node"] for r in seeds}
    assert len(nodes) == 2 and "local" not in nodes and all(r["node_ip"] for r in seeds), seeds
    assert "| node |" in (out / "summary.md").read_text()
    study = tmp_path / "study"
    args = ["tune", "CartPole-v1", "--trials", "2", "--workers", "2", "--ray", cluster.address, "--out", str(study)]
    done = kerasdojo(args + FAST + ["--set", "n_envs=2"], cluster.env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (study / "best.toml").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("credentials", ["none", "wrong"])
def test_a_driver_without_the_token_gets_one_line(cluster: Cluster, tmp_path: Path, credentials: str) -> None:
    env = dict(cluster.bare_env)
    if credentials == "wrong":  # and Ray's own cap on connection attempts, which kerasdojo keeps when set
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64, RAY_gcs_server_port_wait_time_s="3")
    out = tmp_path / "bench"
    t0 = time.monotonic()
    done = kerasdojo(["bench", "CartPole-v1", "--seeds", "1", "--ray", cluster.address, "--out", str(out)], env, 120)
    elapsed = time.monotonic() - t0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    expected = "refused kerasdojo's token" if credentials == "wrong" else "asks for a token and kerasdojo sent none"
    assert expected in lines[0] and "RAY_AUTH_MODE=token" in lines[0] and "RAY_AUTH_TOKEN_PATH" in lines[0]
    assert elapsed < (25 if credentials == "none" else 15), elapsed  # about 10 tries (3 when capped) of a second
    assert not out.exists()


# --------------------------------------------------------------------------- without a cluster


def test_stderr_to_catches_what_is_written_to_fd_2_and_restores_it(tmp_path: Path) -> None:
    from kerasdojo.experiments.ray_join import stderr_to

    log = tmp_path / "ray.log"
    before = os.fstat(2).st_ino
    with stderr_to(log):
        os.write(2, b"gcs_client.cc:210: Unauthenticated\n")  # as Ray's C++ code writes, past sys.stderr
    assert "Unauthenticated" in log.read_text() and os.fstat(2).st_ino == before


def test_join_errors_name_the_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kerasdojo.experiments.ray_join import _join_error

    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    log = tmp_path / "ray.log"
    # What ray.init(address) raised after its tries (Ray 2.60): a ConnectionError over a RuntimeError.
    refused = ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379")
    refused.__cause__ = RuntimeError("Failed to connect to GCS. ... InvalidAuthToken: Authentication token is missing")
    said = "gcs_client.cc:210: Failed to get cluster ID from GCS server: Unauthenticated: RPC error: InvalidAuthToken"
    line = _join_error("10.0.0.1:6379", refused, said, log).one_line()
    assert "asks for a token and kerasdojo sent none" in line and str(log) in line and "RAY_AUTH_TOKEN_PATH" in line
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/run/secrets/ray_token")
    line = _join_error("10.0.0.1:6379", refused, said, log).one_line()
    assert "refused kerasdojo's token (from RAY_AUTH_TOKEN_PATH=/run/secrets/ray_token" in line
    other = _join_error("10.0.0.1:6379", ConnectionError("Failed to connect"), "", log).one_line()
    assert "Could not join the Ray cluster at 10.0.0.1:6379: Failed to connect" in other
    exceptions = pytest.importorskip("ray.exceptions")
    missing = exceptions.AuthenticationError("Token authentication is enabled but no authentication token was found")
    line = _join_error("10.0.0.1:6379", missing, "", log).one_line()
    assert "RAY_AUTH_MODE is 'token' but no Ray token is set" in line and "ray get-auth-token" in line
    assert "\n" not in line and "docs.ray.io" not in line  # not Ray's paragraph of help


def test_summary_names_each_seeds_node() -> None:
    from kerasdojo.experiments.summary import node_label, summary_markdown

    ray_row = {"node": "9435fdb1" + "0" * 48, "node_ip": "10.0.0.2", "host": "b"}
    assert node_label(ray_row) == "10.0.0.2 9435fdb1"
    assert node_label({"node": "local", "node_ip": None}) == "local" and node_label({"node": None}) == "-"
    row = {"seed": 0, "finished": True, "final_eval": 500.0, "best_eval": 500.0, "steps_to_threshold": 8192}
    row.update(steps=100_000, steps_per_s=9000.0, **ray_row)
    aggregate = {"seeds_finished": 1, "mean": 500.0, "std": 0.0, "iqm": 500.0, "iqm_ci95": [500.0, 500.0]}
    aggregate.update(reached_threshold=1, threshold=475.0)
    text = summary_markdown({"agent": "ppo", "env_id": "CartPole-v1", "seeds": [row], "aggregate": aggregate})
    assert "| node |" in text and "| 10.0.0.2 9435fdb1 |" in text
