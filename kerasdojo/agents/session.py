"""Start, resume and evaluate runs: the entry points of ``train``, ``resume`` and ``eval``.

:func:`start` makes a new run directory and :func:`resume` reopens one at its
newest good checkpoint; both return a :class:`Session`, whose
:meth:`Session.train` runs :func:`kerasdojo.agents.loop.run` with the hooks of
:mod:`kerasdojo.agents.hooks` and returns a :class:`TrainSummary`.
:func:`evaluate_run` loads an agent from a run directory alone.

Ctrl-C stops at the end of the current iteration: a checkpoint is written and
:class:`~kerasdojo.errors.Interrupted` names the resume command.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kerasdojo import __version__, backend
from kerasdojo import config as config_mod
from kerasdojo import envs as envs_mod
from kerasdojo.agents import check_supported, get, hooks, loop, presets
from kerasdojo.agents.evaluation import MAX_EVAL_ENVS, EvalResult, evaluate
from kerasdojo.agents.export import export_policy
from kerasdojo.agents.recording import check_rgb_array, record_episode
from kerasdojo.errors import DojoError, Interrupted
from kerasdojo.events import markdown_table, write_hparams
from kerasdojo.files import load_arrays, save_arrays
from kerasdojo.runs import Run

EVAL_SEED_OFFSET = 10_000
LOG_INTERVAL = 1000
Warn = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """What ``kerasdojo train`` was asked for (the agent's hyperparameters come from overrides)."""

    env_id: str
    agent: str = "ppo"
    seed: int = 0
    total_steps: int | None = None
    n_envs: int | None = None
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    async_envs: bool = False
    eval_every: int = 10_000
    eval_episodes: int = 10
    save_every: int = 50_000
    video: bool = False
    native: bool = False  # train on the TensorFlow-native env, compiled end to end

    # Resolved into the agent's config, so not stored with the spec in config.json.
    IN_CONFIG = ("overrides", "total_steps", "n_envs")

    def check(self) -> None:
        if self.native:
            from kerasdojo.agents.native import native_agent
            from kerasdojo.envs import native

            native.make(self.env_id)  # a DojoError naming the envs that have a twin
            native_agent(self.agent)
            if self.env_kwargs or self.async_envs:
                raise DojoError("--native takes neither --env-kwargs nor --async: the native envs are fixed twins")
        for name in ("eval_every", "save_every"):
            if getattr(self, name) < 0:
                raise DojoError(f"--{name.replace('_', '-')} must be >= 0. Received: {getattr(self, name)}")
        if self.eval_episodes < 1:
            raise DojoError(f"--eval-episodes must be >= 1. Received: {self.eval_episodes}")
        for flag, value in (("--steps", self.total_steps), ("--n-envs", self.n_envs)):
            if value is not None and value < 1:
                raise DojoError(f"{flag} must be >= 1. Received: {value}")

    def stored(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.IN_CONFIG}

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> TrainSpec:
        fields = [f for f in dataclasses.fields(cls) if f.name not in cls.IN_CONFIG]
        # Fields added later (native) take their defaults in runs made before them.
        return cls(**{f.name: data[f.name] for f in fields if f.name in data or f.default is dataclasses.MISSING})


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


@dataclasses.dataclass(frozen=True)
class RunEvaluation:
    """What ``kerasdojo eval`` measured, and on which agent."""

    env_id: str
    agent: str
    source: str
    result: EvalResult
    video: Path | None = None
    deterministic: bool = True


def resolve_config(
    agent: str, env_id: str, overrides: dict[str, Any], total_steps: int | None = None, n_envs: int | None = None
) -> Any:
    """defaults < preset for (agent, env) < --config / --set < --steps / --n-envs."""
    cls = get(agent).load().Config
    cfg = config_mod.apply(cls(), presets.preset(agent, env_id), source=f"the {agent} preset for {env_id}")
    cfg = config_mod.apply(cfg, overrides, source="--config/--set")
    flags = {k: v for k, v in (("total_steps", total_steps), ("n_envs", n_envs)) if v is not None}
    return config_mod.apply(cfg, flags, source="the command line")


def greedy_evaluation(spec: TrainSpec, cfg: Any) -> bool:
    """Whether a run is evaluated with greedy actions (sampled on Atari games, as RL Zoo)."""
    return spec.native or not envs_mod.samples_in_evaluation(spec.env_id, cfg.atari_wrapper)


def build_agent(agent: str, cfg: Any, env: Any, seed: int) -> Any:
    cls = get(agent).load()
    return cls(cfg, env.obs_shape, env.obs_dtype, env.single_action_space, seed)


class Session:
    """One training session over a run directory (new or resumed)."""

    def __init__(self, run: Run, spec: TrainSpec, cfg: Any, state: loop.LoopState) -> None:
        self.run, self.spec, self.cfg, self.state = run, spec, cfg, state
        seed = spec.seed
        backend.seed_everything(seed + state.step)
        if spec.native:
            from kerasdojo.agents.native import native_agent
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
            self.agent = native_agent(spec.agent)(cfg, env.obs_shape, env.obs_dtype, env.single_action_space, seed)
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
        self.policy_path: Path | None = None
        self.video_path: Path | None = None
        self.final_eval: EvalResult | None = None

    @property
    def eval_seed(self) -> int:
        return self.spec.seed + EVAL_SEED_OFFSET

    # ------------------------------------------------------------------ state
    def checkpoint_arrays(self, buffers: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, meta = self.agent.state(buffers)
        arrays.update({f"norm/{k}": v for k, v in self.env.normalizer.state().items()})
        arrays["episodes/returns"] = np.array(self.env.episode_returns, np.float64)
        arrays["episodes/lengths"] = np.array(self.env.episode_lengths, np.int64)
        s = self.state
        meta.update(
            step=s.step,
            train_seconds=s.train_seconds,
            best_eval=s.best_eval,
            best_step=s.best_step,
            agent=self.spec.agent,
            env_id=self.spec.env_id,
            kerasdojo=__version__,
            episodes=self.env.episodes,
        )
        return arrays, meta

    def restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any], source: str) -> None:
        self.agent.load_state(arrays, meta, source)
        norm = {k[5:]: v for k, v in arrays.items() if k.startswith("norm/")}
        if norm:
            self.env.normalizer.load_state(norm)
        self.env.episode_returns.extend(arrays.get("episodes/returns", np.zeros(0)).tolist())
        self.env.episode_lengths.extend(arrays.get("episodes/lengths", np.zeros(0)).astype(int).tolist())
        self.env.episodes = int(meta.get("episodes", 0))
        if norm:  # the first observations were scaled with blank statistics: start again with the saved ones
            self.env.reset(seed=self.spec.seed + self.state.step)

    def save_agent(self, name: str, policy_name: str) -> Path | None:
        """The agent's full state (no replay data) and its exported policy network, side by side."""
        save_arrays(self.run.file(name), *self.checkpoint_arrays(buffers=False))
        return export_policy(self.agent, self.env.normalizer, self.run.file(policy_name))

    def save_checkpoint(self) -> Path:
        arrays, meta = self.checkpoint_arrays()
        return self.run.save_checkpoint(self.state.step, arrays, meta)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, stop: Callable[[], bool] | None = None) -> EvalResult:
        self.eval_env.normalizer.load_state(self.env.normalizer.state())
        self.eval_env.normalizer.training = False
        episodes, det = self.spec.eval_episodes, self.eval_deterministic
        return EvalResult.of(*evaluate(self.agent, self.eval_env, episodes, self.eval_seed, det, stop=stop))

    def record(self, path: Path, seed: int | None = None) -> Path:
        norm = self.env.normalizer.state() if self.cfg.normalize_obs else None
        seed = self.eval_seed if seed is None else seed
        spec = self.spec
        det, atari = self.eval_deterministic, self.cfg.atari_wrapper
        return record_episode(self.agent, spec.env_id, spec.env_kwargs, norm, seed, path, det, atari)[0]

    def write_results(self, result: EvalResult) -> None:
        """eval.json and the run's HParams entry (hyperparameters and final metrics)."""
        self.final_eval = result
        s = self.state
        how = {"step": s.step, "deterministic": self.eval_deterministic, "seed": self.eval_seed}
        best = {"best_mean_reward": s.best_eval, "best_step": s.best_step}
        self.run.write_json("eval.json", {**dataclasses.asdict(result), **how, **best})
        hparams = {"env_id": self.spec.env_id, "agent": self.spec.agent, "seed": self.spec.seed}
        hparams.update(config_mod.to_dict(self.cfg))
        metrics = {"eval/mean_reward": result.mean_reward, "eval/best_mean_reward": s.best_eval or result.mean_reward}
        write_hparams(self.run.path, hparams, metrics, s.step)

    # ------------------------------------------------------------------ training
    def train(self, progress: hooks.ProgressCallback | None = None) -> TrainSummary:
        """Train to the step budget. Ctrl-C checkpoints and raises :class:`Interrupted`."""
        spec, state = self.spec, self.state
        chain: list[loop.Hook] = [
            hooks.EvalHook(self, spec.eval_every),
            hooks.LogHook(self, LOG_INTERVAL),
            hooks.CheckpointHook(self, spec.save_every),
        ]
        if spec.video:
            chain.append(hooks.VideoHook(self))
        if progress is not None:
            chain.append(hooks.ProgressHook(self, progress))
        chain.append(hooks.InterruptHook())
        try:
            if not loop.run(self.agent, self.env, state, chain):
                path = self.save_checkpoint()
                raise Interrupted(
                    f"Training interrupted at step {state.step:,}; checkpoint saved to {path}",
                    hint=f"continue with: kerasdojo resume {self.run.path}",
                )
        finally:
            self.env.close()
            self.eval_env.close()
            self.run.close()
        assert self.final_eval is not None, "the evaluation hook writes the final evaluation"
        return TrainSummary(
            run_dir=self.run.path,
            steps=state.step,
            seconds=state.session_seconds,
            train_seconds_total=state.train_seconds,
            fps=state.fps,
            eval=self.final_eval,
            best_eval=state.best_eval,
            best_step=state.best_step,
            policy=self.policy_path,
            video=self.video_path,
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


def open_run(run_dir: str | Path) -> tuple[Run, TrainSpec, Any]:
    """An RL run directory, its spec and its agent config."""
    run = Run.open(run_dir)
    config = run.config
    if config.get("kind") != "rl":
        raise DojoError(f"{run_dir} is not an RL training run (it is a {config.get('task', 'different')} run)")
    try:
        spec = TrainSpec.from_stored(config)
        cls = get(spec.agent).load().Config
        saved = dict(config["config"])
        saved.setdefault("precision", "float32")  # runs made before the setting computed in float32
        cfg = config_mod.from_dict(cls, saved, source=f"{run.path / Run.CONFIG}")
    except KeyError as exc:
        raise DojoError(f"{run.path / Run.CONFIG} lacks {exc}: not a complete kerasdojo run config") from None
    return run, spec, cfg


def load_checkpoint(run: Run, warn: Warn | None) -> tuple[Path, dict[str, np.ndarray], dict[str, Any]]:
    """The newest checkpoint that loads; damaged newer ones are set aside as ``*.damaged``."""
    path, arrays, meta = run.load_latest_checkpoint(warn)
    step = int(meta.get("step", 0))
    for later, damaged in run.checkpoints():
        if later > step:
            os.replace(damaged, damaged.with_name(damaged.name + ".damaged"))
    return path, arrays, meta


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
    session.restore(arrays, meta, str(path))
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


def evaluate_run(
    run_dir: str | Path,
    episodes: int = 10,
    seed: int = 1000,
    video: Path | None = None,
    render: bool = False,
    deterministic: bool | None = None,
    best: bool = False,
    warn: Warn | None = None,
) -> RunEvaluation:
    """Load the agent from a run directory alone and evaluate it: the final agent, or the
    newest checkpoint when that is newer (a resumed run that was interrupted) or there is no
    final agent yet; with ``best``, the agent of the best evaluation during training.
    ``deterministic`` None: greedy actions, except on Atari games (sampled, as in training's
    evaluations)."""
    run, spec, cfg = open_run(run_dir)
    if deterministic is None:
        deterministic = greedy_evaluation(spec, cfg)
    if episodes < 1:
        raise DojoError(f"--episodes must be >= 1. Received: {episodes}")
    if video is not None:
        from kerasdojo.envs.video import check_video_path

        check_video_path(video)
    if render and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise DojoError("--render needs a display, and none is set", hint="record a file instead with --video out.gif")
    if best:
        origin, source = run.file("best_agent.npz"), "best agent"
        if not origin.is_file():
            raise DojoError(f"{run.path} has no best_agent.npz yet: it is written at the first evaluation")
        arrays, meta = load_arrays(origin)
    else:
        origin, source = run.file("agent.npz"), "final agent"
        arrays, meta = load_arrays(origin) if origin.is_file() else ({}, {})
        checkpoints = run.checkpoints()
        if not arrays or (checkpoints and checkpoints[-1][0] > int(meta.get("step", 0))):
            origin, arrays, meta = run.load_latest_checkpoint(warn)  # a DojoError when none loads
            source = f"checkpoint at step {int(meta.get('step', 0)):,}"
    backend.seed_everything(seed)
    env = envs_mod.make_vec(
        spec.env_id,
        1 if render else min(episodes, MAX_EVAL_ENVS),
        seed=seed,
        env_kwargs=spec.env_kwargs,
        normalize_obs=cfg.normalize_obs,
        render_mode="human" if render else None,
        atari_wrapper=cfg.atari_wrapper,
        training=False,
    )
    try:
        agent = build_agent(spec.agent, cfg, env, spec.seed)
        agent.load_state(arrays, meta, str(origin))
        norm = {k[5:]: v for k, v in arrays.items() if k.startswith("norm/")}
        if norm:
            env.normalizer.load_state(norm)
        env.normalizer.training = False
        result = EvalResult.of(*evaluate(agent, env, episodes, seed, deterministic))
    finally:
        env.close()
    recorded = None
    if video is not None:
        state = env.normalizer.state() if cfg.normalize_obs else None
        recorded = record_episode(
            agent, spec.env_id, spec.env_kwargs, state, seed, Path(video), deterministic, atari=cfg.atari_wrapper
        )[0]
    return RunEvaluation(spec.env_id, spec.agent, source, result, recorded, deterministic)
