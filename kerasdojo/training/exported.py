"""``kerasdojo export`` and ``kerasdojo eval --policy``: a run's ``policy.keras`` (or a supervised
run's ``model.keras``) exported to a SavedModel, ONNX or LiteRT file, checked in that format's own
runtime before it is kept, and played on the run's environment through that runtime.

The check: the exported file and the Keras model, on the same observations (1,000 collected
from the run's environment by the policy itself, a quarter of the actions random, or the
supervised run's test images), give outputs within ``TOLERANCE`` of each other (relative to
values above 1) and the same greedy actions or labels (an action the reference itself ranks
within the tolerance of the best counts as a tie, not a difference). A file that fails is
deleted, never left beside the run as if it were good."""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from kerasdojo import backend, portable
from kerasdojo import envs as envs_mod
from kerasdojo.errors import DojoError
from kerasdojo.files import is_zip
from kerasdojo.runs import Run
from kerasdojo.training.evaluation import MAX_EVAL_ENVS, EvalResult, evaluate
from kerasdojo.training.policy_actor import PolicyActor, decisions, feed, keras_forward
from kerasdojo.training.recording import record_episode
from kerasdojo.training.spec import greedy_evaluation, open_run
from kerasdojo.training.stored import RunEvaluation, check_eval_options

TOLERANCE = 1e-4
CHECK_OBSERVATIONS = 1000
EXPLORE = 0.25  # share of random actions while collecting the check's observations
SUPERVISED = ("mnist", "digits", "xor")


@dataclasses.dataclass(frozen=True)
class Exported:
    """What ``kerasdojo export`` wrote and how it was checked."""

    path: Path
    fmt: str
    source: Path
    checked: int
    on: str
    max_error: float
    tolerance: float
    agreed: int
    ties: int
    bytes: int
    seconds: float


def random_actions(space: Any, n: int) -> np.ndarray:
    """``n`` actions drawn from (a seeded copy of) ``space``, as agents give them (0-based indices)."""
    drawn = np.stack([space.sample() for _ in range(n)])
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        drawn = drawn - np.asarray(space.start)
    return drawn


def collect_observations(spec: Any, cfg: Any, model: Any, n: int, seed: int) -> tuple[dict[str, np.ndarray], Any]:
    """``n`` observations of the run's environment as ``policy.keras`` takes them (raw: the model
    normalises them itself), visited by the policy's greedy actions and some random ones; and
    the env's action space."""
    env = envs_mod.make_vec(
        spec.env_id,
        min(8, n),
        seed=seed,
        env_kwargs=spec.env_kwargs,
        normalize_obs=False,
        atari_wrapper=cfg.atari_wrapper,
        training=False,
    )
    try:
        space = copy.deepcopy(env.single_action_space)
        space.seed(seed)
        rng = np.random.default_rng(seed)
        actor = PolicyActor(keras_forward(model), env.single_action_space)
        obs, seen, rows = env.reset(seed=seed), 0, []
        while seen < n:
            rows.append(feed(obs))
            seen += env.num_envs
            actions = actor.act(obs, True, env.action_mask)
            if env.action_mask is None:  # random actions where none is illegal
                explore = rng.random(env.num_envs) < EXPLORE
                actions[explore] = random_actions(space, env.num_envs)[explore]
            obs = env.step(actions)[0]
    finally:
        env.close()
    return {k: np.concatenate([r[k] for r in rows])[:n].copy() for k in rows[0]}, env.single_action_space


# --------------------------------------------------------------------------- export


def _load_keras(path: Path) -> Any:
    if not is_zip(path):
        raise DojoError(f"{path} is damaged: not a .keras (zip) file")
    keras = backend.keras()
    try:
        return keras.models.load_model(path)
    except Exception as exc:
        raise DojoError(f"{path} cannot be loaded ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None


def _source(run: Run, best: bool) -> tuple[Path, str]:
    """The Keras file to export from a run, and the run's kind ("rl" or a supervised task)."""
    config = run.config
    if config.get("kind") == "rl":
        if config.get("agent") == "random":
            raise DojoError(f"{run.path} was trained with the random agent: it has no policy network to export")
        name = "best_policy.keras" if best else "policy.keras"
        path = run.file(name)
        if not path.is_file():
            hint = "it is written at the first evaluation" if best else "kerasdojo resume RUN finishes the run"
            raise DojoError(f"{run.path} has no {name} yet", hint=hint)
        return path, "rl"
    task = config.get("task")
    if task not in SUPERVISED:
        raise DojoError(f"{run.path} is not a kerasdojo training run (config.json names no agent or task)")
    if best:
        raise DojoError("--best is for RL runs: a supervised run keeps one model.keras")
    path = run.file("model.keras")
    if not path.is_file():
        if task == "xor" and run.file("model_numpy.npz").is_file():
            raise DojoError(f"{run.path} is a NumPy XOR run: it has no Keras model", hint="kerasdojo xor --impl keras")
        raise DojoError(f"{run.path} has no model.keras: the run did not finish")
    return path, task


def default_out(source: Path, fmt: str) -> Path:
    return source.with_name(source.stem + portable.SUFFIX[fmt])


def _check_out(out: Path, fmt: str, force: bool, source: Path) -> None:
    """Refuse an --out that is not this format's, that exists (without --force), or whose
    replacement would destroy what is not an export: the run, its files, a folder above it, or
    a folder that is not a SavedModel."""
    want = {"onnx": ".onnx", "litert": ".tflite"}.get(fmt)
    if want and out.suffix != want:
        raise DojoError(f"A {fmt} file's name ends in {want}. Received: --out {out}")
    if not out.parent.is_dir():
        raise DojoError(f"The folder of --out does not exist: {out.parent}")
    target, run = out.resolve(), source.parent.resolve()
    if target in (source.resolve(), run, *run.parents):
        raise DojoError(f"--out {out} is the run, its Keras file or a folder above them: not replacing it")
    if not (out.exists() or out.is_symlink()):
        return
    if not force:
        raise DojoError(f"{out} exists", hint="--force replaces it")
    if out.is_dir() and not out.is_symlink() and not (out / "saved_model.pb").is_file():
        raise DojoError(f"{out} is a folder, not a SavedModel: not replacing it, even with --force")
    if fmt == "saved_model" and not out.is_dir():
        raise DojoError(f"{out} is a file and a SavedModel is a folder: not replacing it, even with --force")


RECURRENT_INPUT = "lstm_state"  # policy.keras of a recurrent agent (ppo_lstm) takes it beside the observation


def export_run(
    run_dir: str | Path,
    fmt: str,
    best: bool = False,
    out: Path | None = None,
    force: bool = False,
    n: int = CHECK_OBSERVATIONS,
    seed: int = 0,
) -> Exported:
    """Export a run's policy (or supervised model) to ``fmt``, check it in its runtime, keep it."""
    portable.check_format(fmt)
    portable.require(fmt)
    start = time.perf_counter()
    run = Run.open(run_dir)
    source, kind = _source(run, best)
    out = Path(out) if out is not None else default_out(source, fmt)
    _check_out(out, fmt, force, source)
    model = _load_keras(source)
    if RECURRENT_INPUT in [t.name for t in model.inputs]:
        raise DojoError(
            f"{source.name} is a recurrent policy (its LSTM state is an input beside the observation): "
            "kerasdojo export does not write those yet",
            hint="run policy.keras in Keras, carrying the state (README: Memory)",
        )
    if kind == "rl":
        run, spec, cfg = open_run(run.path)
        inputs, space = collect_observations(spec, cfg, model, n, seed)
        on = f"{len(next(iter(inputs.values()))):,} observations of {spec.env_id}"
    else:
        from kerasdojo.supervised.show import check_inputs

        images, on = check_inputs(run, n, seed)
        inputs, space = {portable.SINGLE_INPUT: images}, "labels"
    reference = portable.batched(keras_forward(model), inputs)
    reference = reference.reshape(len(reference), -1)
    if not np.isfinite(reference).all():
        raise DojoError(f"{source.name} itself computes NaN or infinity on {on}: nothing worth exporting")
    try:
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".kerasdojo-export-") as tmp:
            written = portable.write(model, fmt, Path(tmp) / out.name)
            got = _run_check(portable.load(written), inputs, fmt).reshape(reference.shape)
            error, agreed, ties = compare(reference, got, space, TOLERANCE)
            if not (error <= TOLERANCE and agreed == len(reference)):  # NaN outputs fail too
                raise DojoError(
                    f"The {fmt} export of {source.name} does not compute what it computes: on {on}, "
                    f"outputs differ by up to {error:.2g} (tolerance {TOLERANCE:g}), greedy choices differ on "
                    f"{len(reference) - agreed:,}; nothing was written"
                )
            portable.replace(written, out)
    except OSError as exc:
        raise DojoError(f"Cannot write {out}: {exc}") from None
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) if out.is_dir() else out.stat().st_size
    return Exported(
        out, fmt, source, len(reference), on, error, TOLERANCE, agreed, ties, size, time.perf_counter() - start
    )


def _run_check(runtime: portable.Runtime, inputs: dict[str, np.ndarray], fmt: str) -> np.ndarray:
    if set(runtime.inputs) != set(inputs):
        raise DojoError(f"The {fmt} file takes inputs {sorted(runtime.inputs)}, the model {sorted(inputs)}")
    try:
        return portable.batched(runtime, inputs)
    except Exception as exc:  # an op the runtime lacks (LiteRT without its TensorFlow ops, say)
        raise DojoError(f"{portable.RUNTIME[fmt]} cannot run the exported file: {portable.first_line(exc)}") from None


def compare(reference: np.ndarray, got: np.ndarray, space: Any, tolerance: float) -> tuple[float, int, int]:
    """The largest difference (relative above 1), how many rows choose the same greedy actions
    (every row for continuous outputs) and how many of those are ties within the tolerance."""
    error = float(np.max(np.abs(got - reference) / np.maximum(1.0, np.abs(reference)), initial=0.0))
    if not np.isfinite(got).all():
        error = float("nan")
    ref, mine = decisions(reference, space), decisions(got, space)
    if ref is None or mine is None:
        return error, len(reference), 0
    differ = ref[0] != mine[0]
    tie = differ & (ref[1] <= tolerance * np.maximum(1.0, np.abs(reference).max(1, keepdims=True)))
    return error, int((~(differ & ~tie)).all(1).sum()), int(tie.any(1).sum())


# --------------------------------------------------------------------------- eval --policy


def evaluate_policy_file(
    run_dir: str | Path,
    policy: Path,
    episodes: int = 10,
    seed: int = 1000,
    video: Path | None = None,
    render: bool = False,
    deterministic: bool | None = None,
) -> RunEvaluation:
    """Play an exported policy through its own runtime on the run's environment."""
    run, spec, cfg = open_run(run_dir)
    check_eval_options(episodes, video, render)
    runtime = portable.load(policy)
    env = envs_mod.make_vec(
        spec.env_id,
        1 if render else min(episodes, MAX_EVAL_ENVS),
        seed=seed,
        env_kwargs=spec.env_kwargs,
        render_mode="human" if render else None,
        atari_wrapper=cfg.atari_wrapper,
        training=False,
    )
    try:
        _check_fits(runtime, env, policy, spec.env_id)
        space = env.single_action_space
        epsilon = float(getattr(cfg, "exploration_final_eps", 0.0))
        actor = PolicyActor(runtime, space, spec.agent, epsilon, bool(getattr(cfg, "use_masks", True)))
        if deterministic is False and not actor.samples:
            raise DojoError(
                f"--stochastic with --policy: a {spec.agent} policy on {type(space).__name__} actions exports no "
                "distribution to sample from",
                hint="drop --stochastic (greedy actions), or evaluate the run itself: kerasdojo eval RUN --stochastic",
            )
        if deterministic is None:  # sampled where the run's own evaluations sample (Atari), if it can
            deterministic = greedy_evaluation(spec, cfg) or not actor.samples
        result = EvalResult.of(*evaluate(actor, env, episodes, seed, deterministic))
    finally:
        env.close()
    recorded = None
    if video is not None:
        recorded = record_episode(
            actor, spec.env_id, spec.env_kwargs, None, seed, Path(video), deterministic, atari=cfg.atari_wrapper
        )[0]
    source = f"{Path(policy).name} in {portable.RUNTIME[runtime.fmt]}"
    return RunEvaluation(spec.env_id, spec.agent, source, result, recorded, deterministic)


def _check_fits(runtime: portable.Runtime, env: Any, policy: Path, env_id: str) -> None:
    """The exported file takes the env's observations and returns one output per action choice."""
    obs_spec = env.obs_spec
    wants = {leaf.name: tuple(leaf.shape) for leaf in obs_spec.leaves}
    if not obs_spec.nested:
        wants = {portable.SINGLE_INPUT: tuple(obs_spec.leaves[0].shape)}
    takes = {name: tuple(shape[1:]) for name, (shape, _) in runtime.inputs.items()}
    if takes != wants:
        raise DojoError(f"{policy} takes {takes}, but {env_id} gives {wants}: it was not exported from this run")
    space = env.single_action_space
    if isinstance(space, spaces.Discrete):
        width = int(space.n)
    elif isinstance(space, spaces.MultiDiscrete):
        width = int(np.sum(space.nvec))
    else:
        width = int(np.prod(space.shape))
    zeros = {name: np.zeros((1, *shape[1:]), dtype) for name, (shape, dtype) in runtime.inputs.items()}
    got = runtime(zeros).reshape(1, -1).shape[1]
    if got != width:
        raise DojoError(
            f"{policy} gives {got} outputs per observation, but {env_id}'s {space} needs {width}: "
            "it was not exported from this run's policy"
        )
