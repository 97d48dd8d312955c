"""Start and resume training runs: the entry points of ``train`` and ``resume``.

:func:`start` makes a new run directory and :func:`resume` reopens one at its
newest good checkpoint; both return a :class:`Session`, whose
:meth:`Session.train` runs :func:`kerasdojo.training.loop.run` with the hooks of
:mod:`kerasdojo.training.hooks` and returns a :class:`TrainSummary`. The session is
the hooks' :class:`~kerasdojo.training.hooks.RunHandle`; they report back through the
loop's state. What a run is (:class:`TrainSpec`, :func:`open_run`) lives in
:mod:`kerasdojo.training.spec`, what a checkpoint holds in :mod:`kerasdojo.training.checkpoint`,
:func:`evaluate_run` (``kerasdojo eval``) in :mod:`kerasdojo.training.stored`.

Ctrl-C stops at the end of the current iteration: a checkpoint is written and
:class:`~kerasdojo.errors.Interrupted` names the resume command.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kerasdojo import __version__, backend
from kerasdojo import config as config_mod
from kerasdojo import envs as envs_mod
from kerasdojo.agents import check_supported, get
from kerasdojo.errors import DojoError, Interrupted
from kerasdojo.events import markdown_table, write_hparams
from kerasdojo.files import save_arrays
from kerasdojo.runs import Run
from kerasdojo.training import hooks, loop
from kerasdojo.training.checkpoint import load_checkpoint, restore_run, run_state
from kerasdojo.training.evaluation import MAX_EVAL_ENVS, EvalResult, evaluate
from kerasdojo.training.export import export_policy
from kerasdojo.training.recording import check_rgb_array, record_episode
from kerasdojo.training.spec import TrainSpec, build_agent, greedy_evaluation, open_run, resolve_config
from kerasdojo.training.stored import RunEvaluation, evaluate_run

EVAL_SEED_OFFSET = 10_000
LOG_INTERVAL = 1000
Warn = Callable[[str], None]
__all__ = ["RunEvaluation", "Session", "TrainSpec", "TrainSummary", "evaluate_run", "open_run", "resume", "start"]


@dataclasses.dataclass(frozen=True)
class TrainSummary:
    """What a finished session did."""

    run_dir: Path
    steps: int
    seconds: float  # training time of this session (evaluation excluded)
    train_seconds_total: float  # over all sessions of the run
    fps: float
    eval: EvalResult  # the final evaluation
    best_eval: float | None
    best_step: int | None
    policy: Path | None
    video: Path | None


class Session:
    """One training session over a run directory (new or resumed)."""

    def __init__(self, run: Run, spec: TrainSpec, cfg: Any, state: loop.LoopState) -> None:
        self.run, self.spec, self.cfg, self.state = run, spec, cfg, state
        seed = spec.seed
        backend.seed_everything(seed + state.step)
        if spec.native:
            from kerasdojo.envs.native.vector import NativeVecEnv

            self.env: Any = NativeVecEnv(
                spec.env_id,
                cfg.n_envs,
                seed=seed + state.step,
                normalize_obs=cfg.normalize_obs,
                normalize_reward=cfg.normalize_reward,
                gamma=getattr(cfg, "gamma", 0.99),
            )
            check_supported(spec.agent, spec.env_id, self.env.single_action_space)
            env = self.env
            self.agent = build_agent(spec.agent, cfg, env, seed, native=True)
        else:
            self.env = envs_mod.make_vec(
                spec.env_id,
                cfg.n_envs,
                seed=seed + state.step,
                env_kwargs=spec.env_kwargs,
                async_=spec.async_envs,
                normalize_obs=cfg.normalize_obs,
                normalize_reward=cfg.normalize_reward,
                gamma=getattr(cfg, "gamma", 0.99),
                atari_wrapper=cfg.atari_wrapper,
            )
            check_supported(spec.agent, spec.env_id, self.env.single_action_space)
            self.agent = build_agent(spec.agent, cfg, self.env, seed)
        self.eval_env = envs_mod.make_vec(
            spec.env_id,
            min(spec.eval_episodes, MAX_EVAL_ENVS),
            seed=self.eval_seed,
            env_kwargs=spec.env_kwargs,
            normalize_obs=cfg.normalize_obs,
            atari_wrapper=cfg.atari_wrapper,
            training=False,
        )
        self.eval_deterministic = greedy_evaluation(spec, cfg)
        self.title = f"{spec.agent} on {spec.env_id} (seed {seed}{', native' if spec.native else ''})"

    @property
    def eval_seed(self) -> int:
        return self.spec.seed + EVAL_SEED_OFFSET

    # ------------------------------------------------------------------ the hooks' RunHandle
    def loop_meta(self, state: loop.LoopState) -> dict[str, Any]:
        """Where the loop stands, for a checkpoint."""
        spec = self.spec
        return {
            "step": state.step,
            "train_seconds": state.train_seconds,
            "best_eval": state.best_eval,
            "best_step": state.best_step,
            "agent": spec.agent,
            "env_id": spec.env_id,
        }

    def save_agent(self, name: str, policy_name: str) -> Path | None:
        """The agent's full state (no replay data) and its exported policy network, side by side."""
        save_arrays(self.run.file(name), *run_state(self.agent, self.env, self.loop_meta(self.state), buffers=False))
        return export_policy(self.agent, self.env.normalizer, self.run.file(policy_name))

    def save_checkpoint(self, state: loop.LoopState) -> Path:
        return self.run.save_checkpoint(state.step, *run_state(self.agent, self.env, self.loop_meta(state)))

    def log(self, row: dict[str, float], step: int) -> None:
        self.run.log(row, step)

    def episode_stats(self) -> dict[str, float]:
        return self.env.stats()

    def episodes(self) -> int:
        return self.env.episodes

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, stop: Callable[[], bool] | None = None) -> EvalResult:
        self.eval_env.normalizer.load_state(self.env.normalizer.state())
        self.eval_env.normalizer.training = False
        episodes, det = self.spec.eval_episodes, self.eval_deterministic
        return EvalResult.of(*evaluate(self.agent, self.eval_env, episodes, self.eval_seed, det, stop=stop))

    def record(self, name: str) -> Path:
        norm = self.env.normalizer.state() if self.cfg.normalize_obs else None
        spec, path = self.spec, self.run.file(name)
        det, atari = self.eval_deterministic, self.cfg.atari_wrapper
        return record_episode(self.agent, spec.env_id, spec.env_kwargs, norm, self.eval_seed, path, det, atari)[0]

    def write_results(self, s: loop.LoopState, result: EvalResult) -> None:
        """eval.json and the run's HParams entry (hyperparameters and final metrics)."""
        how = {"step": s.step, "deterministic": self.eval_deterministic, "seed": self.eval_seed}
        best = {"best_mean_reward": s.best_eval, "best_step": s.best_step}
        # The math the networks ran in (precision=auto picks it per machine, so the config cannot say).
        used = {"precision": self.agent.precision}
        self.run.write_json("eval.json", {**result.stored(), **how, **best, **used})
        hparams = {"env_id": self.spec.env_id, "agent": self.spec.agent, "seed": self.spec.seed}
        hparams.update(config_mod.to_dict(self.cfg))
        hparams.update(used)
        metrics = {"eval/mean_reward": result.mean_reward, "eval/best_mean_reward": s.best_eval or result.mean_reward}
        if result.success_rate is not None:
            metrics["eval/success_rate"] = result.success_rate
        write_hparams(self.run.path, hparams, metrics, s.step)

    # ------------------------------------------------------------------ training
    def train(self, progress: hooks.ProgressCallback | None = None) -> TrainSummary:
        """Train to the step budget. Ctrl-C checkpoints and raises :class:`Interrupted`."""
        spec, state = self.spec, self.state
        chain: list[loop.Hook] = [
            hooks.EvalHook(self, spec.eval_every),
            hooks.InterruptHook(),
            hooks.LogHook(self, LOG_INTERVAL),
            hooks.CheckpointHook(self, spec.save_every),
        ]
        if spec.video:
            chain.append(hooks.VideoHook(self))
        if progress is not None:
            chain.append(hooks.ProgressHook(self, progress))
        try:
            if not loop.run(self.agent, self.env, state, chain):
                path = self.save_checkpoint(state)
                raise Interrupted(
                    f"Training interrupted at step {state.step:,}; checkpoint saved to {path}",
                    hint=f"continue with: kerasdojo resume {self.run.path}",
                )
        finally:
            self.env.close()
            self.eval_env.close()
            self.run.close()
        assert state.final_eval is not None, "the evaluation hook writes the final evaluation"
        return TrainSummary(
            run_dir=self.run.path,
            steps=state.step,
            seconds=state.session_seconds,
            train_seconds_total=state.train_seconds,
            fps=state.fps,
            eval=state.final_eval,
            best_eval=state.best_eval,
            best_step=state.best_step,
            policy=state.policy_path,
            video=state.video_path,
        )


# --------------------------------------------------------------------------- entry points


def start(spec: TrainSpec, runs_dir: str | Path = "runs") -> Session:
    """Validate everything, then create the run directory and the session."""
    spec.check()
    agent_cls = get(spec.agent).load()
    cfg = resolve_config(spec.agent, spec.env_id, spec.overrides, spec.total_steps, spec.n_envs)
    if not agent_cls.supports_normalization and (cfg.normalize_obs or cfg.normalize_reward):
        raise DojoError(
            f"{spec.agent} does not support normalize_obs/normalize_reward: its replay buffer would mix "
            "observations scaled by different statistics",
            hint="leave them false, or use ppo",
        )
    _, action_space = envs_mod.spaces_of(spec.env_id, spec.env_kwargs)  # unknown ids, extras, kwargs
    check_supported(spec.agent, spec.env_id, action_space)
    if spec.video:
        check_rgb_array(spec.env_id, spec.env_kwargs)
    run = Run.create(runs_dir, spec.env_id.replace("/", "-").replace(":", "-"), spec.agent, f"s{spec.seed}")
    stored = spec.stored()
    run.write_json(Run.CONFIG, {"kind": "rl", "kerasdojo": __version__, **stored, "config": config_mod.to_dict(cfg)})
    rows = [(k, str(v)) for k, v in stored.items()] + config_mod.table(cfg)
    run.writer.text("hyperparameters", markdown_table(rows, ("parameter", "value")))
    try:
        return Session(run, spec, cfg, loop.LoopState(step=0, total_steps=cfg.total_steps))
    except BaseException:  # nothing trained yet: leave no run directory behind
        run.close()
        shutil.rmtree(run.path, ignore_errors=True)
        raise


def resume(run_dir: str | Path, total_steps: int | None = None, warn: Warn | None = None) -> Session:
    """Reopen a run at its newest good checkpoint; ``total_steps`` may raise its budget."""
    run, spec, cfg = open_run(run_dir)
    if total_steps is not None and total_steps < 1:
        raise DojoError(f"--steps must be >= 1. Received: {total_steps}")
    path, arrays, meta = load_checkpoint(run, warn)
    step = int(meta.get("step", 0))
    if total_steps is not None:
        cfg = dataclasses.replace(cfg, total_steps=total_steps)
    if step >= cfg.total_steps:
        raise DojoError(
            f"{run.path} already reached {step:,} of its {cfg.total_steps:,} steps",
            hint="pass --steps with a larger total to train further",
        )
    state = loop.LoopState(
        step=step,
        total_steps=cfg.total_steps,
        start_step=step,
        train_seconds=float(meta.get("train_seconds", 0.0)),
        best_eval=meta.get("best_eval"),
        best_step=meta.get("best_step"),
    )
    session = Session(run, spec, cfg, state)
    if restore_run(session.agent, session.env, arrays, meta, str(path)):
        # The first observations were scaled with blank statistics: start again with the saved ones.
        session.env.reset(seed=spec.seed + step)
    # Only now that the checkpoint loaded: record the new budget, cut what came after it, and
    # clear what a killed process was writing.
    config = run.config
    config["config"] = config_mod.to_dict(cfg)
    run.write_json(Run.CONFIG, config)
    run.remove_stale_temporaries()
    run.progress.truncate_after(step)
    run.writer.session_start(step)
    session.title = f"resuming {session.title} at step {step:,}"
    return session
