"""Joining a Ray cluster as the ``ray`` command does: the same ``RAY_AUTH_*`` variables (token
authentication, the default for local clusters since Ray 2.59), a bounded number of tries, Ray's
C++ warnings sent to a log file instead of the terminal, and one line that says what to set
when the cluster refuses kerasdojo. ``kerasdojo bench --ray`` and ``tune --ray`` join through
:func:`connect_ray`."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kerasdojo.errors import DojoError

# What a cluster with token authentication (Ray 2.52+; the default since 2.59) asks of every
# process that joins it, the ``ray`` command and kerasdojo alike.
AUTH_VARS = "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH, a file holding it)"
AUTH_HINT = f"set {AUTH_VARS} as on the cluster's nodes; `ray get-auth-token` on the head prints the token"
AUTH_WORDS = ("unauthenticated", "invalidauthtoken", "authentication token", "authenticationerror")


def ray_log() -> Path:
    """Where Ray's own messages go while kerasdojo joins a cluster: its C++ client writes a warning
    to the process's stderr on every refused attempt, a screenful before ray.init gives up."""
    import getpass
    import tempfile

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name (a container's bare uid)
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"kerasdojo-ray-{user}.log"


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """This process's file descriptor 2 into ``path`` (appended), restored afterwards: Ray's C++ code
    writes there directly, past Python's ``sys.stderr`` and its logging settings."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


# ray.init(address) tries the cluster's GCS once a second, RAY_gcs_server_port_wait_time_s times
# (20 by default in Ray 2.60): a refused token fails every try alike (measured: 20.1 s and 20
# warnings, then a ConnectionError). kerasdojo stops at 10 unless that variable says otherwise.
JOIN_TRIES = 10


@contextlib.contextmanager
def join_budget(tries: int = JOIN_TRIES) -> Iterator[None]:
    """Ray's connection attempts capped at ``tries`` (about a second each) while joining, unless
    the user set RAY_gcs_server_port_wait_time_s; the environment as it was afterwards."""
    var = "RAY_gcs_server_port_wait_time_s"
    if var in os.environ:
        yield
        return
    os.environ[var] = str(tries)
    try:
        yield
    finally:
        os.environ.pop(var, None)


def token_source() -> str:
    """Where Ray looks for the token now, in its order: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return f"RAY_AUTH_TOKEN_PATH={os.environ['RAY_AUTH_TOKEN_PATH']}"
    return "~/.ray/auth_token"


def _join_error(address: str, exc: BaseException, said: str, log: Path) -> DojoError:
    """The one line for a failed ray.init(address): refused credentials, a missing token, or else."""
    chain, e = [], exc
    while e is not None:
        chain.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__
    text = ("\n".join(chain) + "\n" + said).lower()
    where = f"Ray's messages: {log}"
    token_mode = os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
    if type(exc).__name__ == "AuthenticationError":  # Ray checks the local settings before it connects
        detail = str(getattr(exc, "message", exc)).strip()  # str() would add a paragraph of help
        if "no authentication token" in detail.lower():
            detail = "RAY_AUTH_MODE is 'token' but no Ray token is set"
        hint = "set RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH to a file holding the cluster's token "
        return DojoError(detail, hint=hint + "(`ray get-auth-token` on the head prints it)")
    if any(word in text for word in AUTH_WORDS):
        if token_mode:
            message = f"The Ray cluster at {address} refused kerasdojo's token (from {token_source()}; {where})"
        else:
            message = f"The Ray cluster at {address} asks for a token and kerasdojo sent none ({where})"
        return DojoError(message, hint=AUTH_HINT)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DojoError(f"Could not join the Ray cluster at {address}: {first} ({where})")


def connect_ray(address: str | None, timeout: float = 10.0) -> Any:
    """Start a local Ray (``address`` None or ``local``) or join a cluster (``auto``, ``HOST:PORT``,
    ``ray://HOST:PORT``) with the credentials the ``ray`` command would use (``RAY_AUTH_MODE``,
    ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``); a one-line DojoError within ``timeout`` seconds when
    nothing answers, and within about JOIN_TRIES seconds more when it refuses kerasdojo's credentials."""
    try:
        import ray
    except ImportError:
        raise DojoError("--ray needs Ray, which is not installed", hint="pip install 'kerasdojo[ray]'") from None
    if ray.is_initialized():
        return ray
    if address not in (None, "", "local", "auto"):
        import socket

        hostport = address.removeprefix("ray://")
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise DojoError(f"--ray takes auto, HOST:PORT or ray://HOST:PORT. Received: {address!r}")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                pass
        except OSError as exc:
            raise DojoError(
                f"No Ray cluster answers at {address} ({exc.strerror or exc})",
                hint="start one with: ray start --head (it prints the address), or drop the address for a local Ray",
            ) from None
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address in (None, "", "local"):
        try:
            ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise DojoError(f"Could not start a local Ray: {exc}".splitlines()[0]) from None
        return ray
    # Ray copies nothing to the cluster: its nodes need kerasdojo installed (see the Dockerfile).
    log = ray_log()
    offset = log.stat().st_size if log.is_file() else 0
    try:
        with stderr_to(log), join_budget():
            ray.init(address=address, **kwargs)
    except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, AuthenticationError ...
        with open(log, "rb") as fh:
            fh.seek(offset)
            said = fh.read().decode(errors="replace")
        raise _join_error(address, exc, said, log) from None
    return ray
