"""The training harness shared by all agents: runs, evaluation, checkpoints, resume.

:func:`start` makes a new run and :func:`resume` reopens one; both return a
:class:`Session` whose :meth:`Session.train` loops ``agent.learn`` until the
step budget is spent, logging SB3-named scalars to TensorBoard and
progress.csv, evaluating every ``eval_every`` steps on separate envs,
checkpointing every ``save_every`` steps, and finishing with a final
evaluation (``eval.json``), the agent (``agent.npz``) and its policy network
(``policy.keras``, loadable by plain Keras). The agent of the best evaluation
is kept beside it (``best_agent.npz``, ``best_policy.keras``), as SB3's
EvalCallback keeps ``best_model``.

Ctrl-C asks the loop to stop at the end of the current iteration: it writes a
checkpoint and raises :class:`~kerasdojo.errors.Interrupted` with the resume
command. Checkpoints are written to a temporary name and renamed, so a killed
run keeps its last one intact.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kerasdojo import __version__, backend
from kerasdojo import config as config_mod
from kerasdojo import envs as envs_mod
from kerasdojo.agents import check_supported, get, presets
from kerasdojo.errors import DojoError, Interrupted
from kerasdojo.runs import Run, load_arrays, markdown_table

EVAL_SEED_OFFSET = 10_000
MAX_EVAL_ENVS = 16
EVAL_MAX_EPISODE_STEPS = 100_000
LOG_INTERVAL = 1000


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


def resolve_config(
    agent: str, env_id: str, overrides: dict[str, Any], total_steps: int | None = None, n_envs: int | None = None
) -> Any:
    """defaults < preset for (agent, env) < --config / --set < --steps / --n-envs."""
    cls = get(agent).load().Config
    cfg = config_mod.apply(cls(), presets.preset(agent, env_id), source=f"the {agent} preset for {env_id}")
    cfg = config_mod.apply(cfg, overrides, source="--config/--set")
    flags = {k: v for k, v in (("total_steps", total_steps), ("n_envs", n_envs)) if v is not None}
    return config_mod.apply(cfg, flags, source="the command line")


def build_agent(agent: str, cfg: Any, env: Any, seed: int) -> Any:
    cls = get(agent).load()
    return cls(cfg, env.obs_shape, env.obs_dtype, env.single_action_space, seed)


def make_train_env(spec: dict[str, Any], cfg: Any, seed: int) -> Any:
    return envs_mod.make_vec(
        spec["env_id"],
        cfg.n_envs,
        seed=seed,
        env_kwargs=spec["env_kwargs"],
        async_=spec["async_envs"],
        normalize_obs=cfg.normalize_obs,
        normalize_reward=cfg.normalize_reward,
        gamma=getattr(cfg, "gamma", 0.99),
    )


def make_eval_env(spec: dict[str, Any], cfg: Any, episodes: int, seed: int) -> Any:
    return envs_mod.make_vec(
        spec["env_id"],
        min(episodes, MAX_EVAL_ENVS),
        seed=seed,
        env_kwargs=spec["env_kwargs"],
        normalize_obs=cfg.normalize_obs,
    )


def evaluate(
    agent: Any, env: Any, episodes: int, seed: int, deterministic: bool = True, stop: Callable[[], bool] | None = None
) -> tuple[list[float], list[int]]:
    """Run exactly ``episodes`` episodes spread over the envs of ``env``; returns and lengths.

    The env is reset with ``seed`` first, so every evaluation of a run starts
    from the same initial states. Rewards are the env's own (no normalisation).
    """
    obs = env.reset(seed=seed)
    n = env.num_envs
    quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
    counts = np.zeros(n, np.int64)
    ep_return, ep_length = np.zeros(n), np.zeros(n, np.int64)
    returns: list[float] = []
    lengths: list[int] = []
    while (counts < quota).any():
        if stop is not None and stop():
            break
        obs, reward, terminated, truncated, was_reset = env.step(agent.act(obs, deterministic))
        valid = ~was_reset
        ep_return += reward * valid
        ep_length += valid
        # An env without a time limit might never end an episode: count it as ended at the cap.
        done = np.logical_or(terminated, truncated) | (ep_length >= EVAL_MAX_EPISODE_STEPS)
        for i in np.flatnonzero(done & (counts < quota)):
            returns.append(float(ep_return[i]))
            lengths.append(int(ep_length[i]))
            counts[i] += 1
        ep_return[done] = 0.0
        ep_length[done] = 0
    return returns, lengths


def eval_summary(returns: list[float], lengths: list[int]) -> dict[str, float]:
    return {
        "mean_reward": float(np.mean(returns)) if returns else float("nan"),
        "std_reward": float(np.std(returns)) if returns else float("nan"),
        "mean_ep_length": float(np.mean(lengths)) if lengths else float("nan"),
        "episodes": len(returns),
    }


def export_policy(agent: Any, normalizer: Any, path: Path) -> Path | None:
    """Save the policy network as ``.keras``, with observation normalisation built in."""
    from kerasdojo.supervised.fit import save_model

    model = agent.policy_model()
    if model is None:
        return None
    keras = backend.keras()
    layers: list[Any] = []
    if normalizer.norm_obs:
        rms, clip = normalizer.obs_rms, normalizer.clip
        layers += [
            keras.layers.Normalization(
                axis=tuple(range(-rms.mean.ndim, 0)) if rms.mean.ndim > 1 else -1,
                mean=rms.mean.astype(np.float32),
                variance=(rms.var + normalizer.epsilon).astype(np.float32),
                name="obs_norm",
            ),
            # clip(x, -c, c) from built-in layers: ReLU(max=2c)(x + c) - c
            keras.layers.Rescaling(1.0, offset=clip, name="clip_shift"),
            keras.layers.ReLU(max_value=2 * clip, name="clip"),
            keras.layers.Rescaling(1.0, offset=-clip, name="clip_unshift"),
        ]
    export = keras.Sequential([keras.Input(model.input_shape[1:]), *layers, *model.layers], name="policy")
    save_model(export, path)
    return path


def record_episode(
    agent: Any, spec: dict[str, Any], cfg: Any, normalizer: Any, seed: int, path: Path, deterministic: bool = True
) -> tuple[Path, float]:
    """Play one episode with frames rendered as rgb_array and write them to ``path``."""
    from kerasdojo.envs.video import check_video_path, write_video

    path = check_video_path(path)
    env = envs_mod.make_vec(
        spec["env_id"], 1, env_kwargs=spec["env_kwargs"], normalize_obs=cfg.normalize_obs, render_mode="rgb_array"
    )
    env.normalizer.load_state(normalizer.state())
    env.normalizer.training = False
    try:
        obs = env.reset(seed=seed)
        frames = [env.render_frame()]
        total = 0.0
        while True:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs, deterministic))
            total += float(reward[0])
            frames.append(env.render_frame())
            if terminated[0] or truncated[0] or len(frames) > 5000:
                break
        fps = env.metadata_fps()
    finally:
        env.close()
    write_video(path, frames, fps)
    return path, total


class Session:
    """One training session over a run directory (new or resumed)."""

    def __init__(self, run: Run, spec: dict[str, Any], cfg: Any, state: dict[str, Any] | None = None) -> None:
        self.run = run
        self.spec = spec
        self.cfg = cfg
        self.state = state or {"step": 0, "train_seconds": 0.0}
        self.start_step = int(self.state["step"])
        self.total_steps = int(cfg.total_steps)
        seed = int(spec["seed"])
        backend.seed_everything(seed + self.start_step)
        self.env = make_train_env(spec, cfg, seed + self.start_step)
        check_supported(spec["agent"], spec["env_id"], self.env.single_action_space)
        self.agent = build_agent(spec["agent"], cfg, self.env, seed)
        self.eval_env = make_eval_env(spec, cfg, spec["eval_episodes"], seed + EVAL_SEED_OFFSET)
        self._stop = False
        self.title = f"{spec['agent']} on {spec['env_id']} (seed {seed})"

    # ------------------------------------------------------------------ state
    def _checkpoint_arrays(self, buffers: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, meta = self.agent.state(buffers)
        arrays.update({f"norm/{k}": v for k, v in self.env.normalizer.state().items()})
        arrays["episodes/returns"] = np.array(self.env.episode_returns, np.float64)
        arrays["episodes/lengths"] = np.array(self.env.episode_lengths, np.int64)
        meta.update(self.state)
        meta.update(
            agent=self.spec["agent"], env_id=self.spec["env_id"], kerasdojo=__version__, episodes=self.env.episodes
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
            self.env.reset(seed=int(self.spec["seed"]) + self.start_step)

    def _save_agent(self, name: str, policy_name: str) -> Path | None:
        """The agent's full state and its exported policy network, side by side in the run."""
        from kerasdojo.runs import save_arrays

        arrays, meta = self._checkpoint_arrays(buffers=False)  # a saved agent needs no replay buffer
        save_arrays(self.run.file(name), arrays, meta)
        return export_policy(self.agent, self.env.normalizer, self.run.file(policy_name))

    def save_checkpoint(self) -> Path:
        arrays, meta = self._checkpoint_arrays()
        return self.run.save_checkpoint(int(self.state["step"]), arrays, meta)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, stop: Callable[[], bool] | None = None) -> dict[str, float]:
        self.eval_env.normalizer.load_state(self.env.normalizer.state())
        self.eval_env.normalizer.training = False
        returns, lengths = evaluate(
            self.agent, self.eval_env, self.spec["eval_episodes"], int(self.spec["seed"]) + EVAL_SEED_OFFSET, stop=stop
        )
        return eval_summary(returns, lengths)

    # ------------------------------------------------------------------ the loop
    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._stop:  # second Ctrl-C: stop now, keeping the last checkpoint
            raise KeyboardInterrupt
        self._stop = True

    def train(self, callback: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Train to ``total_steps``; returns a summary. Ctrl-C checkpoints and raises Interrupted."""
        spec, run, agent, env = self.spec, self.run, self.agent, self.env
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self._on_sigint) if in_main else None
        step = int(self.state["step"])
        eval_every, save_every = int(spec["eval_every"]), int(spec["save_every"])
        next_eval = (step // eval_every + 1) * eval_every if eval_every else None
        next_save = (step // save_every + 1) * save_every if save_every else None
        last_log = step
        session_seconds = 0.0
        last_callback = 0.0
        latest: dict[str, float] = {}
        last_eval: float | None = None
        try:
            agent.begin(env)
            while step < self.total_steps:
                # Training time: the whole iteration (collection, update, logging) except evaluation.
                t0 = time.perf_counter()
                eval_seconds = 0.0
                n, metrics = agent.learn(env, step, self.total_steps)
                elapsed = time.perf_counter() - t0
                session_seconds += elapsed
                self.state["train_seconds"] += elapsed
                step += n
                self.state["step"] = step
                latest.update(metrics)
                fps = (step - self.start_step) / max(session_seconds, 1e-9)
                row: dict[str, float] = {}
                if step - last_log >= LOG_INTERVAL or step >= self.total_steps:
                    row.update(env.stats())
                    row.update(latest)
                    last_log = step
                if next_eval is not None and step >= next_eval and step < self.total_steps:  # _finish evaluates last
                    next_eval = (step // eval_every + 1) * eval_every
                    t_eval = time.perf_counter()
                    result = self.evaluate(stop=lambda: self._stop)
                    if not self._stop:  # a Ctrl-C during the evaluation leaves too few episodes to report
                        last_eval = result["mean_reward"]
                        if last_eval > self.state.get("best_eval", -np.inf):
                            self.state.update(best_eval=last_eval, best_step=step)
                            self._save_agent("best_agent.npz", "best_policy.keras")
                        row.update({f"eval/{k}": result[k] for k in ("mean_reward", "std_reward", "mean_ep_length")})
                    eval_seconds = time.perf_counter() - t_eval
                if row:
                    row.update(
                        {
                            "time/fps": fps,
                            "time/train_seconds": self.state["train_seconds"],
                            "time/episodes": float(env.episodes),
                        }
                    )
                    run.log(row, step)
                if next_save is not None and step >= next_save:
                    self.save_checkpoint()
                    next_save = (step // save_every + 1) * save_every
                now = time.monotonic()
                if callback is not None and (now - last_callback > 0.25 or step >= self.total_steps):
                    last_callback = now
                    callback(
                        step,
                        {"fps": fps, "ep_rew_mean": env.stats()["rollout/ep_rew_mean"], "eval_mean_reward": last_eval},
                    )
                rest = time.perf_counter() - t0 - elapsed - eval_seconds  # logging, checkpoints, progress bar
                session_seconds += rest
                self.state["train_seconds"] += rest
                if self._stop:
                    path = self.save_checkpoint()
                    run.close()
                    raise Interrupted(
                        f"Training interrupted at step {step:,}; checkpoint saved to {path}",
                        hint=f"continue with: kerasdojo resume {run.path}",
                    )
            return self._finish(step, session_seconds)
        finally:
            if in_main and previous is not None:
                signal.signal(signal.SIGINT, previous)
            env.close()
            self.eval_env.close()
            run.close()

    def _finish(self, step: int, session_seconds: float) -> dict[str, Any]:
        """Final evaluation, checkpoint, agent files and eval.json; then the video, if asked for."""
        run, spec = self.run, self.spec
        result = self.evaluate()
        row = {f"eval/{k}": result[k] for k in ("mean_reward", "std_reward", "mean_ep_length")}
        row.update(
            {
                "time/fps": (step - self.start_step) / max(session_seconds, 1e-9),
                "time/train_seconds": self.state["train_seconds"],
                "time/episodes": float(self.env.episodes),
            }
        )
        run.log(row, step)
        if result["mean_reward"] > self.state.get("best_eval", -np.inf):
            self.state.update(best_eval=result["mean_reward"], best_step=step)
            self._save_agent("best_agent.npz", "best_policy.keras")
        self.save_checkpoint()
        policy = self._save_agent("agent.npz", "policy.keras")
        seed = int(spec["seed"]) + EVAL_SEED_OFFSET
        best = {"best_mean_reward": self.state.get("best_eval"), "best_step": self.state.get("best_step")}
        run.write_json("eval.json", {**result, "step": step, "deterministic": True, "seed": seed, **best})
        summary: dict[str, Any] = {
            "steps": step,
            "seconds": session_seconds,
            "train_seconds_total": self.state["train_seconds"],
            "fps": (step - self.start_step) / max(session_seconds, 1e-9),
            "eval": result,
            "best_eval": best["best_mean_reward"],
            "best_step": best["best_step"],
            "policy": str(policy) if policy else None,
        }
        if spec.get("video"):
            path, _ = record_episode(
                self.agent, spec, self.cfg, self.env.normalizer, seed, run.file("videos/final.gif")
            )
            summary["video"] = str(path)
        return summary


# --------------------------------------------------------------------------- entry points


def _check_spec(spec: TrainSpec) -> None:
    for name in ("eval_every", "save_every"):
        if getattr(spec, name) < 0:
            raise DojoError(f"--{name.replace('_', '-')} must be >= 0. Received: {getattr(spec, name)}")
    if spec.eval_episodes < 1:
        raise DojoError(f"--eval-episodes must be >= 1. Received: {spec.eval_episodes}")
    if spec.total_steps is not None and spec.total_steps < 1:
        raise DojoError(f"--steps must be >= 1. Received: {spec.total_steps}")
    if spec.n_envs is not None and spec.n_envs < 1:
        raise DojoError(f"--n-envs must be >= 1. Received: {spec.n_envs}")


def start(spec: TrainSpec, runs_dir: str | Path = "runs") -> Session:
    """Validate everything, then create the run directory and the session."""
    _check_spec(spec)
    get(spec.agent)
    cfg = resolve_config(spec.agent, spec.env_id, spec.overrides, spec.total_steps, spec.n_envs)
    agent_cls = get(spec.agent).load()
    if not agent_cls.supports_normalization and (cfg.normalize_obs or cfg.normalize_reward):
        raise DojoError(
            f"{spec.agent} does not support normalize_obs/normalize_reward: its replay buffer would mix "
            "observations scaled by different statistics",
            hint="leave them false, or use ppo",
        )
    probe = envs_mod.make_vec(spec.env_id, 1, env_kwargs=spec.env_kwargs)  # unknown ids, extras, kwargs
    try:
        check_supported(spec.agent, spec.env_id, probe.single_action_space)
    finally:
        probe.close()
    if spec.video:
        check_rgb_array(spec.env_id, spec.env_kwargs)
    spec_dict = {k: v for k, v in dataclasses.asdict(spec).items() if k not in ("overrides", "total_steps", "n_envs")}
    run = Run.create(runs_dir, spec.env_id.replace("/", "-").replace(":", "-"), spec.agent, f"s{spec.seed}")
    config = {"kind": "rl", "kerasdojo": __version__, **spec_dict, "config": config_mod.to_dict(cfg)}
    run.write_json(Run.CONFIG, config)
    rows = [(k, str(v)) for k, v in spec_dict.items()] + config_mod.table(cfg)
    run.writer.text("hyperparameters", markdown_table(rows, ("parameter", "value")))
    try:
        return Session(run, spec_dict, cfg)
    except BaseException:  # nothing trained yet: leave no run directory behind
        run.close()
        shutil.rmtree(run.path, ignore_errors=True)
        raise


def check_rgb_array(env_id: str, env_kwargs: dict[str, Any]) -> None:
    """Fail before training when --video cannot be honoured."""
    env = envs_mod.make_env(env_id, env_kwargs)
    try:
        modes = env.metadata.get("render_modes", [])
    finally:
        env.close()
    if "rgb_array" not in modes:
        raise DojoError(
            f"{env_id} cannot render frames (its render modes: {', '.join(modes) or 'none'})",
            hint="train without --video",
        )


def _open_rl_run(run_dir: str | Path) -> tuple[Run, dict[str, Any], Any]:
    run = Run.open(run_dir)
    config = run.config
    if config.get("kind") != "rl":
        raise DojoError(f"{run_dir} is not an RL training run (it is a {config.get('task', 'different')} run)")
    try:
        cls = get(config["agent"]).load().Config
        cfg = config_mod.from_dict(cls, config["config"], source=f"{run.path / Run.CONFIG}")
        spec = {
            k: config[k]
            for k in (
                "env_id",
                "agent",
                "seed",
                "env_kwargs",
                "async_envs",
                "eval_every",
                "eval_episodes",
                "save_every",
                "video",
            )
        }
    except KeyError as exc:
        raise DojoError(f"{run.path / Run.CONFIG} lacks {exc}: not a complete kerasdojo run config") from None
    return run, spec, cfg


def resume(run_dir: str | Path, total_steps: int | None = None) -> Session:
    """Reopen a run at its newest checkpoint; ``total_steps`` may raise its budget."""
    run, spec, cfg = _open_rl_run(run_dir)
    path, arrays, meta = run.load_latest_checkpoint()
    step = int(meta.get("step", 0))
    if total_steps is not None:
        if total_steps < 1:
            raise DojoError(f"--steps must be >= 1. Received: {total_steps}")
        cfg = dataclasses.replace(cfg, total_steps=total_steps)
    if step >= cfg.total_steps:
        raise DojoError(
            f"{run.path} already reached {step:,} of its {cfg.total_steps:,} steps",
            hint="pass --steps with a larger total to train further",
        )
    state = {"step": step, "train_seconds": float(meta.get("train_seconds", 0.0))}
    if meta.get("best_eval") is not None:
        state.update(best_eval=float(meta["best_eval"]), best_step=int(meta["best_step"]))
    session = Session(run, spec, cfg, state)
    session.restore(arrays, meta, str(path))
    # Only now that the checkpoint loaded: record the new budget and cut what came after it.
    config = run.config
    config["config"] = config_mod.to_dict(cfg)
    run.write_json(Run.CONFIG, config)
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
    deterministic: bool = True,
    best: bool = False,
) -> dict[str, Any]:
    """Load the agent from a run directory alone and evaluate it: the final agent, or the
    newest checkpoint when that is newer (a resumed run that was interrupted) or there is no
    final agent yet; with ``best``, the agent of the best evaluation during training."""
    run, spec, cfg = _open_rl_run(run_dir)
    if episodes < 1:
        raise DojoError(f"--episodes must be >= 1. Received: {episodes}")
    if video is not None:
        from kerasdojo.envs.video import check_video_path

        check_video_path(video)
    if render:
        import os

        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise DojoError(
                "--render needs a display, and none is set", hint="record a file instead with --video out.gif"
            )
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
            origin, arrays, meta = run.load_latest_checkpoint()  # a DojoError when there is none
            source = f"checkpoint at step {int(meta.get('step', 0)):,}"
    backend.seed_everything(seed)
    env = envs_mod.make_vec(
        spec["env_id"],
        1 if render else min(episodes, MAX_EVAL_ENVS),
        seed=seed,
        env_kwargs=spec["env_kwargs"],
        normalize_obs=cfg.normalize_obs,
        render_mode="human" if render else None,
    )
    try:
        agent = build_agent(spec["agent"], cfg, env, int(spec["seed"]))
        agent.load_state(arrays, meta, str(origin))
        norm = {k[5:]: v for k, v in arrays.items() if k.startswith("norm/")}
        if norm:
            env.normalizer.load_state(norm)
        env.normalizer.training = False
        returns, lengths = evaluate(agent, env, episodes, seed, deterministic)
    finally:
        env.close()
    result: dict[str, Any] = {
        "env_id": spec["env_id"],
        "agent": spec["agent"],
        "source": source,
        **eval_summary(returns, lengths),
    }
    if video is not None:
        path, _ = record_episode(agent, spec, cfg, env.normalizer, seed, Path(video), deterministic)
        result["video"] = str(path)
    return result
