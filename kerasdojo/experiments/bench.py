"""``kerasdojo bench``: one agent on one env over many seeds, as ordinary runs in one folder.

Each seed is a normal run directory inside the experiment folder (``--out``), trained
by :func:`kerasdojo.training.session.start` in a worker process (``--workers``, each
with its share of the cores for TensorFlow's thread pools) or, with ``--ray``, as a
Ray task; each run directory records the node that trained it (``node.json``). Running
``bench`` again on the same folder skips the seeds that finished, resumes those with a
checkpoint and starts the rest. At the end: a table per seed, mean, IQM and 95%
bootstrap CI of the final evaluations, ``summary.json``, ``summary.md`` and ``curves.png``.
A cluster joins with the credentials the ``ray`` command uses (``RAY_AUTH_MODE``,
``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``); a refusal is one line, not Ray's warnings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue as queue_mod
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kerasdojo.errors import DojoError
from kerasdojo.experiments.ray_join import connect_ray
from kerasdojo.files import read_json

EXPERIMENT = "experiment.json"
NODE = "node.json"  # in each run directory: where the seed trained


@dataclasses.dataclass(frozen=True)
class BenchSpec:
    env_id: str
    agent: str
    seeds: tuple[int, ...]
    out: Path
    total_steps: int | None = None
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    native: bool = False
    eval_every: int = 10_000
    eval_episodes: int = 10
    save_every: int = 50_000
    workers: int = 0  # 0: as many as fit the cores

    def stored(self) -> dict[str, Any]:
        """What must match when a bench folder is reused."""
        return {
            "env_id": self.env_id,
            "agent": self.agent,
            "total_steps": self.total_steps,
            "overrides": self.overrides,
            "native": self.native,
            "eval_every": self.eval_every,
            "eval_episodes": self.eval_episodes,
        }


def parse_seeds(text: str) -> tuple[int, ...]:
    """``5`` (seeds 0-4) or a list ``0,3,7``."""
    try:
        if "," not in text:
            n = int(text)
            if n < 1:
                raise ValueError
            return tuple(range(n))
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise DojoError(f"--seeds takes a count (5) or a list of seeds (0,3,7). Received: {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise DojoError(f"--seeds needs distinct seeds >= 0. Received: {text!r}")
    return seeds


def default_workers(n_seeds: int) -> int:
    return max(1, min(n_seeds, os.cpu_count() or 1))


# --------------------------------------------------------------------------- one seed (in a worker)


def limit_threads(threads: int | None) -> None:
    """Give this worker process ``threads`` threads for TensorFlow (and OpenMP); call it before
    TensorFlow starts, so that K workers on C cores do not fight over them."""
    # Several workers may share a GPU: each takes memory as it needs it, not all of it at once.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    if not threads:
        return
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(threads)
    from kerasdojo import backend

    tf = backend.tf()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already ran ops in this process: keep its pools
        pass


def node_info(on_ray: bool) -> dict[str, Any]:
    """The machine this process runs on: in a Ray task, its Ray node id and IP address (two nodes on
    one machine share the IP, not the id); in a local worker, ``local``. The host name in both."""
    import socket

    host = socket.gethostname()
    if on_ray:
        import ray

        node_id, ip = ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()
        return {"node": node_id, "node_ip": ip, "host": host}
    return {"node": "local", "node_ip": None, "host": host}


def seed_run(out: Path, seed: int) -> Path | None:
    """The run directory of ``seed`` in an experiment folder, if there is one."""
    found = sorted(p for p in out.glob(f"*__s{seed}__*") if (p / "config.json").is_file())
    return found[-1] if found else None


def train_seed(job: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    """Train (or resume, or skip) one seed; return its run directory and what happened.
    ``progress`` is a queue that receives ``(seed, step, total, return, eval)`` now and then."""
    limit_threads(job.get("threads"))
    from kerasdojo.errors import Interrupted
    from kerasdojo.training.session import TrainSpec, resume, start

    out, seed = Path(job["out"]), int(job["seed"])
    existing = seed_run(out, seed)
    status = "trained"
    if existing is not None and finished(existing):
        return {"seed": seed, "run": str(existing), "status": "done before"}
    if existing is not None and any((existing / "checkpoints").glob("*.npz")):
        session = resume(existing)
        status = "resumed"
    else:
        if existing is not None:  # killed before its first checkpoint: nothing to keep
            shutil.rmtree(existing)
        spec = TrainSpec(
            job["env_id"],
            job["agent"],
            seed=seed,
            total_steps=job["total_steps"],
            overrides=job["overrides"],
            eval_every=job["eval_every"],
            eval_episodes=job["eval_episodes"],
            save_every=job["save_every"],
            native=job["native"],
        )
        session = start(spec, out)
    # Where this seed trains, for the summary's node column (the last node, when it resumed elsewhere).
    session.run.write_json(NODE, node_info(bool(job.get("ray"))))
    last = [0.0]

    def report(state: Any, ep_rew_mean: float) -> None:
        now = time.monotonic()
        if progress is not None and (now - last[0] > 0.5 or state.step >= state.total_steps):
            last[0] = now
            progress.put((seed, state.step, state.total_steps, ep_rew_mean, state.last_eval))

    try:
        session.train(report)
    except Interrupted:
        return {"seed": seed, "run": str(session.run.path), "status": "interrupted"}
    return {"seed": seed, "run": str(session.run.path), "status": status}


def read_marker(path: Path) -> dict[str, Any]:
    """A bench folder's ``experiment.json``: its settings, with the env, agent and seeds checked."""
    marker = read_json(path)
    ok = isinstance(marker, dict) and isinstance(marker.get("env_id"), str) and isinstance(marker.get("agent"), str)
    seeds = marker.get("seeds", []) if isinstance(marker, dict) else None
    if not ok or not isinstance(seeds, list) or not all(type(s) is int for s in seeds):
        raise DojoError(f"{path} is damaged: it needs env_id, agent and a list of integer seeds")
    return marker


def finished(run: Path) -> bool:
    """Whether the run's final evaluation (eval.json) is at its step budget."""
    from kerasdojo.runs import Run

    result = run / "eval.json"
    if not result.is_file():
        return False
    done, budget = read_json(result), Run.open(run).config.get("config")
    try:
        return int(done.get("step", 0)) >= int(budget["total_steps"])
    except (AttributeError, KeyError, TypeError, ValueError):
        raise DojoError(f"{run} is damaged: its eval.json or config.json lacks a step count") from None


# --------------------------------------------------------------------------- the driver


def prepare(spec: BenchSpec) -> None:
    """Check the spec and the folder before any worker starts (one-line errors)."""
    from kerasdojo.training.spec import TrainSpec, resolve_config

    # Everything train would refuse, refused now: unknown env/agent, bad --set, --native misuse.
    probe = TrainSpec(
        spec.env_id,
        spec.agent,
        total_steps=spec.total_steps,
        overrides=spec.overrides,
        eval_every=spec.eval_every,
        eval_episodes=spec.eval_episodes,
        save_every=spec.save_every,
        native=spec.native,
    )
    probe.check()
    resolve_config(spec.agent, spec.env_id, spec.overrides, spec.total_steps)
    from kerasdojo import envs as envs_mod
    from kerasdojo.agents import check_supported

    check_supported(spec.agent, spec.env_id, envs_mod.spaces_of(spec.env_id)[1])
    marker = spec.out / EXPERIMENT
    if marker.is_file():
        saved = read_marker(marker)
        mine = json.loads(json.dumps(spec.stored()))
        if {k: saved.get(k) for k in mine} != mine:
            diff = ", ".join(f"{k}: {saved.get(k)!r} there, {v!r} now" for k, v in mine.items() if saved.get(k) != v)
            hint = "use another --out, or the same settings"
            raise DojoError(f"{spec.out} holds a bench of different settings ({diff})", hint=hint)
    elif spec.out.exists() and any(spec.out.iterdir()):
        raise DojoError(f"{spec.out} exists and is not a bench folder", hint="pass a new or empty --out")
    spec.out.mkdir(parents=True, exist_ok=True)
    seeds = sorted(set(read_marker(marker).get("seeds", [])) | set(spec.seeds)) if marker.is_file() else []
    marker.write_text(json.dumps({**spec.stored(), "seeds": seeds or list(spec.seeds)}, indent=2))


def run_local(
    spec: BenchSpec, jobs: list[dict[str, Any]], on_progress: Callable[[tuple], None] | None
) -> list[dict[str, Any]]:
    """Jobs in a pool of worker processes (spawned: each starts its own TensorFlow)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    workers = spec.workers or default_workers(len(jobs))
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = mp.get_context("spawn")
    with contextlib.ExitStack() as stack:
        # Progress travels through a queue of a manager process, only when someone watches.
        q = stack.enter_context(ctx.Manager()).Queue() if on_progress is not None else None
        results: list[dict[str, Any]] = []
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(train_seed, {**job, "threads": threads}, q) for job in jobs]
            pending = set(futures)
            try:
                while pending:
                    _drain(q, on_progress)
                    done = {f for f in pending if f.done()}
                    pending -= done
                    for f in done:
                        results.append(f.result())  # a worker's error: cancel the queued seeds, report it
                    time.sleep(0.1)
            except KeyboardInterrupt:
                # The running seeds got the Ctrl-C too and checkpoint; the queued ones never start.
                for f in pending:
                    f.cancel()
                for f in pending:
                    if not f.cancelled():
                        try:
                            results.append(f.result())
                        except BaseException:  # noqa: BLE001 - a worker stopped outright keeps its checkpoint
                            pass
                done_seeds = {r["seed"] for r in results}
                results += [
                    {"seed": j["seed"], "run": None, "status": "interrupted"}
                    for j in jobs
                    if j["seed"] not in done_seeds
                ]
            except BaseException:
                for f in pending:
                    f.cancel()
                raise
        _drain(q, on_progress)
    return results


def _drain(q: Any, on_progress: Callable[[tuple], None] | None) -> None:
    if q is None or on_progress is None:
        return
    while True:
        try:
            on_progress(q.get_nowait())
        except queue_mod.Empty:
            return


def jobs_of(spec: BenchSpec) -> list[dict[str, Any]]:
    base = {
        "out": str(spec.out.resolve()),  # Ray workers run in other working directories
        "env_id": spec.env_id,
        "agent": spec.agent,
        "total_steps": spec.total_steps,
        "overrides": spec.overrides,
        "eval_every": spec.eval_every,
        "eval_episodes": spec.eval_episodes,
        "save_every": spec.save_every,
        "native": spec.native,
    }
    return [{**base, "seed": seed} for seed in spec.seeds]


# --------------------------------------------------------------------------- Ray


def run_ray(
    jobs: list[dict[str, Any]], address: str | None, on_progress: Callable[[tuple], None] | None
) -> list[dict[str, Any]]:
    """Each job a Ray task of one CPU (TensorFlow limited to one thread in it)."""
    ray = connect_ray(address)
    q = None
    if on_progress is not None:  # a queue actor, only when someone watches
        from ray.util.queue import Queue

        q = Queue()

    def drain() -> None:
        while q is not None and on_progress is not None and not q.empty():
            on_progress(q.get_nowait())

    task = ray.remote(num_cpus=1)(train_seed)
    pending = [task.remote({**job, "threads": 1, "ray": True}, q) for job in jobs]
    results: list[dict[str, Any]] = []
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=len(pending), timeout=0.2)
            results.extend(ray.get(done))
            drain()
        drain()
    finally:
        if q is not None:
            q.shutdown()
        if address in (None, "", "local"):
            ray.shutdown()
    return results
