"""``kerasdojo tensorboard``: start TensorBoard on a runs folder and print its URL."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from kerasdojo.errors import DojoError


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("" if host == "0.0.0.0" else host, port))
        except OSError:
            return False
    return True


def command(logdir: Path, port: int, host: str) -> list[str]:
    args = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--port", str(port)]
    args += ["--bind_all"] if host == "0.0.0.0" else ["--host", host]
    return args


def serve(logdir: Path, port: int, host: str, echo: Callable[[str], None] = print) -> int:
    """Run TensorBoard in the foreground until it exits or Ctrl-C; returns its exit code."""
    if logdir.exists() and not logdir.is_dir():
        raise DojoError(f"--logdir is not a folder: {logdir}")
    if not port_free(host, port):
        raise DojoError(f"Port {port} on {host} is already in use", hint=f"try --port {port + 1}")
    if not logdir.exists():
        echo(f"{logdir} does not exist yet: TensorBoard will show runs as they appear there.")
        logdir.mkdir(parents=True, exist_ok=True)
    shown = "localhost" if host in ("0.0.0.0", "127.0.0.1") else host
    proc = subprocess.Popen(command(logdir, port, host))
    echo(f"TensorBoard on {logdir}: http://{shown}:{port}/  (Ctrl-C to stop)")
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        time.sleep(0.1)
        return 0
