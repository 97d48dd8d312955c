"""``bench --native`` for PPO, DQN and SAC: every seed in one compiled program
(:mod:`kerasdojo.agents.seeds`, :mod:`~kerasdojo.agents.seeds_dqn`, :mod:`~kerasdojo.agents.seeds_sac`),
each seed written to its own run directory as a one-seed run writes it.

Each seed's run directory holds what ``train`` leaves: ``config.json``, ``progress.csv`` and
TensorBoard scalars (rollout/, train/, eval/, time/ tags), checkpoints, ``eval.json`` and the
HParams entry, ``agent.npz`` and ``policy.keras``, ``best_agent.npz`` and ``best_policy.keras``.
A seed's checkpoint is a plain agent state (so ``kerasdojo eval``, ``export`` and
``resume`` take the run as any other) plus the seed's env state and random-stream counters,
with which running ``bench`` again resumes the seeds exactly where they stopped. Seeds that
stopped at different steps resume as separate programs, one per step.

Evaluations run greedily on the native twin inside the program (every seed at once); the time
they take is not training time, as for the Gymnasium path's evaluations. A seed's best agent is
kept in memory when found and written with the next checkpoint (and at the end).
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kerasdojo import __version__, backend
from kerasdojo import config as config_mod
from kerasdojo.envs.normalization import Normalizer
from kerasdojo.envs.wrappers import EpisodeStats
from kerasdojo.errors import DojoError
from kerasdojo.events import markdown_table, write_hparams
from kerasdojo.experiments.bench import NODE, BenchSpec, finished, node_info, seed_run
from kerasdojo.files import save_arrays
from kerasdojo.runs import Run
from kerasdojo.training.checkpoint import load_checkpoint, run_state
from kerasdojo.training.evaluation import EvalResult
from kerasdojo.training.session import LOG_INTERVAL

EXTRA = "seeds/"  # the keys of a seed's checkpoint that only a batched resume reads
Progress = Callable[[tuple], None]


class SeedEpisodes(EpisodeStats):
    """One seed's finished training episodes, and what :func:`run_state` reads of an env."""

    def __init__(self, normalizer: Any) -> None:
        self.episode_returns: deque[float] = deque(maxlen=100)
        self.episode_lengths: deque[int] = deque(maxlen=100)
        self.episodes = 0
        self.normalizer = normalizer


class SeedRun:
    """One seed of the program: its run directory and where its training stands."""

    def __init__(self, seed: int, run: Run, normalizer: Any) -> None:
        self.seed, self.run = seed, run
        self.env = SeedEpisodes(normalizer)
        self.train_seconds = 0.0
        self.best_eval: float | None = None
        self.best_step: int | None = None
        self.best: Any = None  # a snapshot of the best agent not yet written to best_agent.npz
        self.last_eval: float | None = None
        self.row: dict[str, float] = {}


def check_batchable(agent: str, cfg: Any, env_id: str) -> str | None:
    """Why ``agent`` with ``cfg`` cannot train its seeds in one program on ``env_id`` (None: it can)."""
    if agent == "ppo":
        from kerasdojo.agents.seeds import ppo_unbatchable

        return ppo_unbatchable(cfg, env_id)
    if agent == "dqn":
        from kerasdojo.agents.seeds_dqn import dqn_unbatchable

        return dqn_unbatchable(cfg, env_id)
    if agent == "sac":
        from kerasdojo.agents.seeds_sac import sac_unbatchable

        return sac_unbatchable(cfg, env_id)
    return f"only ppo, dqn and sac batch their seeds so far, not {agent}"


def trainer_class(agent: str) -> Any:
    """The many-seeds trainer of ``agent``."""
    if agent == "dqn":
        from kerasdojo.agents.seeds_dqn import SeedsDQN

        return SeedsDQN
    if agent == "sac":
        from kerasdojo.agents.seeds_sac import SeedsSAC

        return SeedsSAC
    from kerasdojo.agents.seeds import SeedsPPO

    return SeedsPPO


def share_cores() -> None:
    """PPO's policy and value networks are independent branches of each gradient step: two
    inter-op threads run them side by side, each op with half the cores. On 2 cores (one thread
    per op) an iteration of 16 seeds took 59 ms against 70-78 ms with TensorFlow's default pools
    (RESULTS.md, "Many seeds"). Left alone when the environment sets the pools, or once
    TensorFlow has started them."""
    if os.environ.get("TF_NUM_INTRAOP_THREADS") or os.environ.get("TF_NUM_INTEROP_THREADS"):
        return
    tf = backend.tf()
    try:
        tf.config.threading.set_inter_op_parallelism_threads(2)
        tf.config.threading.set_intra_op_parallelism_threads(max(1, (os.cpu_count() or 1) // 2))
    except RuntimeError:  # TensorFlow already ran ops in this process: keep its pools
        pass


def train_batched(spec: BenchSpec, seeds: tuple[int, ...], on_progress: Progress | None = None) -> list[dict[str, Any]]:
    """Train ``seeds`` (or resume them, or skip the finished ones) in one program per starting step."""
    from kerasdojo.training.spec import resolve_config

    if spec.agent == "ppo":  # DQN's and SAC's updates are XLA calls, whose matrix products use the intra-op threads
        share_cores()

    cfg = resolve_config(spec.agent, spec.env_id, spec.overrides, spec.total_steps)
    results: list[dict[str, Any]] = []
    # Seeds resume together when they stopped at the same step; fresh seeds form their own group.
    groups: dict[tuple[int, bool], list[tuple[int, Path | None, Any]]] = {}
    for seed in seeds:
        existing = seed_run(spec.out, seed)
        if existing is not None and finished(existing):
            results.append({"seed": seed, "run": str(existing), "status": "done before"})
            continue
        if existing is not None and any((existing / "checkpoints").glob("*.npz")):
            _, arrays, meta = load_checkpoint(Run.open(existing), None)
            if f"{EXTRA}state" not in arrays:
                raise DojoError(
                    f"{existing} was trained one program per seed: its checkpoint holds no batched state",
                    hint=f"continue it with: kerasdojo resume {existing}",
                )
            groups.setdefault((int(meta.get("step", 0)), True), []).append((seed, existing, (arrays, meta)))
        else:
            if existing is not None:  # killed before its first checkpoint: nothing to keep
                shutil.rmtree(existing)
            groups.setdefault((0, False), []).append((seed, None, None))
    stop = _StopFlag()  # one Ctrl-C stops every group: the running one checkpoints, the rest never start
    try:
        for key in sorted(groups):
            if stop.set:
                results += [{"seed": m[0], "run": None, "status": "interrupted"} for m in groups[key]]
                continue
            try:
                results += Program(spec, cfg, key[0], groups[key]).train(on_progress, stop)
            except KeyboardInterrupt:  # a second Ctrl-C: stop at once, keeping the last checkpoints
                stop.set = True
                results += [{"seed": m[0], "run": None, "status": "interrupted"} for m in groups[key]]
    finally:
        stop.restore()
    return results


class Program:
    """One compiled program over seeds that start at the same step."""

    def __init__(self, spec: BenchSpec, cfg: Any, step: int, members: list[tuple[int, Path | None, Any]]) -> None:
        from kerasdojo.envs.native.vector import NativeVecEnv
        from kerasdojo.training.spec import build_agent

        self.spec, self.cfg, self.step = spec, cfg, step
        seeds = [m[0] for m in members]
        self.trainer = trainer_class(spec.agent)(cfg, spec.env_id, seeds, spec.eval_episodes)
        # A one-seed agent and env of the same shapes: the format of each seed's saved state.
        self.template_env = NativeVecEnv(spec.env_id, cfg.n_envs, seed=0)
        self.template = build_agent(spec.agent, cfg, self.template_env, 0)
        obs_shape, gamma = self.template_env.obs_shape, getattr(cfg, "gamma", 0.99)
        self.seeds: list[SeedRun] = []
        saved = []
        for seed, path, state in members:
            run = self._open(seed, path, step)
            # The seed's own statistics (filled from the program before each save): checkpoints and policy.keras.
            member = SeedRun(seed, run, Normalizer(obs_shape, cfg.normalize_obs, cfg.normalize_reward, gamma))
            if state is not None:
                arrays, meta = state
                member.train_seconds = float(meta.get("train_seconds", 0.0))
                member.best_eval, member.best_step = meta.get("best_eval"), meta.get("best_step")
                member.env.episode_returns.extend(np.asarray(arrays.get("episodes/returns", [])).tolist())
                member.env.episode_lengths.extend(np.asarray(arrays.get("episodes/lengths", [])).astype(int).tolist())
                member.env.episodes = int(meta.get("episodes", 0))
                saved.append(state)
            self.seeds.append(member)
        if saved:
            self.trainer.load_seeds(saved, int(saved[0][1].get("n_updates", 0)))

    def _open(self, seed: int, path: Path | None, step: int) -> Run:
        from kerasdojo.training.spec import TrainSpec

        spec = self.spec
        if path is not None:
            run = Run.open(path)
            run.remove_stale_temporaries()
            run.progress.truncate_after(step)
            run.writer.session_start(step)
            return run
        one = TrainSpec(
            spec.env_id,
            spec.agent,
            seed=seed,
            total_steps=spec.total_steps,
            overrides=spec.overrides,
            eval_every=spec.eval_every,
            eval_episodes=spec.eval_episodes,
            save_every=spec.save_every,
            native=True,
        )
        run = Run.create(spec.out, spec.env_id.replace("/", "-").replace(":", "-"), spec.agent, f"s{seed}")
        stored = one.stored()
        config = {"kind": "rl", "kerasdojo": __version__, **stored, "config": config_mod.to_dict(self.cfg)}
        run.write_json(Run.CONFIG, {**config, "batched": True})
        rows = [(k, str(v)) for k, v in stored.items()] + config_mod.table(self.cfg)
        run.writer.text("hyperparameters", markdown_table(rows, ("parameter", "value")))
        return run

    # ------------------------------------------------------------------ the loop
    def train(self, on_progress: Progress | None, stop: _StopFlag) -> list[dict[str, Any]]:
        spec, total = self.spec, self.cfg.total_steps
        next_log = self.step + LOG_INTERVAL
        next_eval = (self.step // spec.eval_every + 1) * spec.eval_every
        next_save = (self.step // spec.save_every + 1) * spec.save_every
        start, session = self.step, 0.0
        last_report = 0.0
        try:
            while self.step < total and not stop.set:
                t0 = time.perf_counter()
                steps, metrics, episodes = self.trainer.iterate(self.step, total)
                self.step += steps
                self._record(episodes)
                trained = any(key.startswith("train/") for key in metrics)  # off-policy: once learning starts
                for k, member in enumerate(self.seeds):
                    member.row.update({key: float(v[k]) for key, v in metrics.items()})
                    if trained:
                        member.row["train/n_updates"] = float(self.trainer.n_updates)
                session += self._timed(time.perf_counter() - t0)
                evaluated = self.step >= next_eval and self.step < total
                if evaluated:
                    next_eval = (self.step // spec.eval_every + 1) * spec.eval_every
                    self._evaluate()
                if self.step < total and (evaluated or self.step >= next_log):
                    next_log = self.step + LOG_INTERVAL
                    self._log(start, session)
                if self.step >= next_save and self.step < total:
                    next_save = (self.step // spec.save_every + 1) * spec.save_every
                    t_save = time.perf_counter()
                    self._save_checkpoints()
                    session += self._timed(time.perf_counter() - t_save)
                now = time.monotonic()
                if on_progress is not None and (now - last_report > 0.5 or self.step >= total):
                    last_report = now
                    self._report(on_progress)
            if self.step < total:
                self._save_checkpoints()
                return [self._result(m, "interrupted") for m in self.seeds]
            self._finish(start, session)
            if on_progress is not None:
                self._report(on_progress)
            return [self._result(m, "trained") for m in self.seeds]
        finally:
            for member in self.seeds:
                member.run.close()

    def _timed(self, seconds: float) -> float:
        for member in self.seeds:
            member.train_seconds += seconds
        return seconds

    def _record(self, episodes: dict[str, np.ndarray]) -> None:
        done = episodes["done"]  # (steps, seeds, envs)
        for t, k, e in zip(*np.nonzero(done), strict=True):
            env = self.seeds[k].env
            env.episode_returns.append(float(episodes["ep_return"][t, k, e]))
            env.episode_lengths.append(int(episodes["ep_length"][t, k, e]))
            env.episodes += 1

    def _evaluate(self) -> list[EvalResult]:
        returns, lengths = self.trainer.evaluate()
        results = []
        for k, member in enumerate(self.seeds):
            result = EvalResult.of(returns[k].tolist(), lengths[k].tolist())
            member.row.update(result.scalars())
            member.last_eval = result.mean_reward
            if member.best_eval is None or result.mean_reward > member.best_eval:
                member.best_eval, member.best_step = result.mean_reward, self.step
                member.best = self.trainer.snapshot(k)  # written with the next checkpoint
            results.append(result)
        return results

    def _log(self, start: int, session: float) -> None:
        fps = (self.step - start) / max(session, 1e-9)
        for member in self.seeds:
            row = {**member.env.stats(), **member.row}
            row.update({"time/fps": fps, "time/train_seconds": member.train_seconds})
            row["time/episodes"] = float(member.env.episodes)
            member.run.log(row, self.step)
            member.row = {}

    def _report(self, on_progress: Progress) -> None:
        for member in self.seeds:
            stats = member.env.stats()["rollout/ep_rew_mean"]
            on_progress((member.seed, self.step, self.cfg.total_steps, stats, member.last_eval))

    def _finish(self, start: int, session: float) -> None:
        results = self._evaluate()
        self._log(start, session)
        self._save_checkpoints()
        for k, (member, result) in enumerate(zip(self.seeds, results, strict=True)):
            self._save_agent(k, "agent.npz", "policy.keras")
            best = {"best_mean_reward": member.best_eval, "best_step": member.best_step}
            how = {"step": self.step, "deterministic": True, "evaluated_on": "native twin", "precision": "float32"}
            member.run.write_json("eval.json", {**result.stored(), **how, **best})
            hparams = {"env_id": self.spec.env_id, "agent": self.spec.agent, "seed": member.seed}
            hparams.update(config_mod.to_dict(self.cfg))
            metrics = {"eval/mean_reward": result.mean_reward, "eval/best_mean_reward": member.best_eval}
            write_hparams(member.run.path, hparams, metrics, self.step)
            member.run.write_json(NODE, node_info(False))

    # ------------------------------------------------------------------ each seed's files
    def _seed_state(
        self, k: int, buffers: bool = True, snapshot: Any = None, step: int | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Seed ``k`` as a plain agent state (with its env and streams under ``seeds/``), as it
        is now or as ``snapshot`` took it at ``step``."""
        member, at = self.seeds[k], step or self.step
        self.trainer.to_agent(k, self.template, snapshot)
        stats = self.trainer.normalizer_state(k, snapshot)
        if stats is not None:
            member.env.normalizer.load_state(stats)
        # The one-seed agent's own generators, seeded by this seed and step: what a one-program-per-seed
        # resume (kerasdojo resume) samples with. The batched program draws from its streams instead.
        self.template.tf_rng.reset_from_seed(member.seed * 1_000_003 + at)
        self.template.rng = np.random.default_rng([member.seed, at])
        meta = {"step": at, "train_seconds": member.train_seconds, "best_eval": member.best_eval}
        meta.update({"best_step": member.best_step, "agent": self.spec.agent, "env_id": self.spec.env_id})
        arrays, out_meta = run_state(self.template, member.env, meta, buffers)
        if snapshot is None:  # the envs and streams as they are now (a best agent's snapshot has none)
            arrays.update({EXTRA + key: v for key, v in self.trainer.seed_extra(k).items()})
        out_meta["n_updates"] = self.trainer.n_updates
        return arrays, out_meta

    def _save_checkpoints(self) -> None:
        """A checkpoint of every seed, and the best agents found since the last one."""
        for k, member in enumerate(self.seeds):
            if member.best is not None:
                self._save_agent(k, "best_agent.npz", "best_policy.keras", member.best, member.best_step)
                member.best = None
            member.run.save_checkpoint(self.step, *self._seed_state(k))

    def _save_agent(self, k: int, name: str, policy_name: str, snapshot: Any = None, step: int | None = None) -> None:
        from kerasdojo.training.export import export_policy

        run = self.seeds[k].run
        save_arrays(run.file(name), *self._seed_state(k, False, snapshot, step))
        export_policy(self.template, self.seeds[k].env.normalizer, run.file(policy_name))  # as _seed_state left it

    def _result(self, member: SeedRun, status: str) -> dict[str, Any]:
        return {"seed": member.seed, "run": str(member.run.path), "status": status}


class _StopFlag:
    """Ctrl-C asks the program to stop after its iteration (checkpoints follow); twice stops at once."""

    def __init__(self) -> None:
        self.set = False
        self.previous: Any = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum: int, frame: Any) -> None:
        if self.set:
            raise KeyboardInterrupt
        self.set = True

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None


__all__ = ["train_batched"]
