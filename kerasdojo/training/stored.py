"""``kerasdojo eval``: load an agent from a run directory alone and evaluate it (and
record it), without its replay memory."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from kerasdojo import backend
from kerasdojo import envs as envs_mod
from kerasdojo.errors import DojoError
from kerasdojo.files import load_arrays
from kerasdojo.training.checkpoint import load_agent_state, normalizer_arrays
from kerasdojo.training.evaluation import MAX_EVAL_ENVS, EvalResult, evaluate
from kerasdojo.training.recording import record_episode
from kerasdojo.training.spec import build_agent, greedy_evaluation, open_run

REPLAY = ("replay/",)  # what a checkpoint holds for training only


@dataclasses.dataclass(frozen=True)
class RunEvaluation:
    """What ``kerasdojo eval`` measured, and on which agent."""

    env_id: str
    agent: str
    source: str
    result: EvalResult
    video: Path | None = None
    deterministic: bool = True


def check_eval_options(episodes: int, video: Path | None, render: bool) -> None:
    """One-line errors for what ``kerasdojo eval`` is asked before anything loads."""
    if episodes < 1:
        raise DojoError(f"--episodes must be >= 1. Received: {episodes}")
    if video is not None:
        from kerasdojo.envs.video import check_video_path

        check_video_path(video)
    if render and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise DojoError("--render needs a display, and none is set", hint="record a file instead with --video out.gif")


def evaluate_run(
    run_dir: str | Path,
    episodes: int = 10,
    seed: int = 1000,
    video: Path | None = None,
    render: bool = False,
    deterministic: bool | None = None,
    best: bool = False,
    warn: Callable[[str], None] | None = None,
) -> RunEvaluation:
    """Load the agent from a run directory alone and evaluate it: the final agent, or the
    newest checkpoint when that is newer (a resumed run that was interrupted) or there is no
    final agent yet; with ``best``, the agent of the best evaluation during training.
    ``deterministic`` None: greedy actions, except on Atari games (sampled, as in training's
    evaluations)."""
    run, spec, cfg = open_run(run_dir)
    if deterministic is None:
        deterministic = greedy_evaluation(spec, cfg)
    check_eval_options(episodes, video, render)
    if best:
        origin, source = run.file("best_agent.npz"), "best agent"
        if not origin.is_file():
            raise DojoError(f"{run.path} has no best_agent.npz yet: it is written at the first evaluation")
        arrays, meta = load_arrays(origin, REPLAY)
    else:
        origin, source = run.file("agent.npz"), "final agent"
        arrays, meta = load_arrays(origin, REPLAY) if origin.is_file() else ({}, {})
        if type(meta.get("step", 0)) is not int:
            raise DojoError(f"{origin} is damaged: its metadata step is {meta['step']!r}, not a step count")
        checkpoints = run.checkpoints()
        if not arrays or (checkpoints and checkpoints[-1][0] > int(meta.get("step", 0))):
            origin, arrays, meta = run.load_latest_checkpoint(warn, REPLAY)  # a DojoError if none loads
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
        # An agent that only acts needs no replay memory (its acting_config), and the
        # checkpoint's replay arrays are never read.
        agent = build_agent(spec.agent, cfg, env, spec.seed, acting_only=True)
        meta = {k: v for k, v in meta.items() if not k.startswith(REPLAY)}
        load_agent_state(agent, arrays, meta, str(origin))
        norm = normalizer_arrays(arrays)
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
