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
import os
import tempfile
import time
from collections.abc import Callable
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
from kerasdojo.training.recording import record_episode
from kerasdojo.training.spec import greedy_evaluation, open_run
from kerasdojo.training.stored import RunEvaluation

TOLERANCE = 1e-4
CHECK_OBSERVATIONS = 1000
EXPLORE = 0.25  # share of random actions while collecting the check's observations
SAMPLING_AGENTS = ("ppo", "a2c")  # their policy.keras returns logits that one may sample from
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


# --------------------------------------------------------------------------- acting from outputs


def decisions(out: np.ndarray, space: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Greedy choices from a model's outputs and how far each lies from changing (the gap between
    the best and the runner-up, or from the threshold), or None for continuous outputs."""
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        sizes = [int(space.n)] if isinstance(space, spaces.Discrete) else np.asarray(space.nvec).reshape(-1).tolist()
        picks, gaps = [], []
        for part in np.split(out, np.cumsum(sizes)[:-1], axis=1):
            top = np.sort(part, axis=1)
            picks.append(part.argmax(1))
            gaps.append(top[:, -1] - top[:, -2] if part.shape[1] > 1 else np.full(len(part), np.inf))
        return np.stack(picks, 1), np.stack(gaps, 1)
    if isinstance(space, spaces.MultiBinary):
        return (out > 0).astype(np.int8), np.abs(out)
    if space == "labels":  # a classifier: softmax probabilities, or one sigmoid probability
        if out.shape[1] == 1:
            return (out > 0.5).astype(np.int8), np.abs(out - 0.5)
        return decisions(out, spaces.Discrete(out.shape[1]))
    return None


def actions_from(out: np.ndarray, space: Any, mask: np.ndarray | None = None, rng: Any = None) -> np.ndarray:
    """Actions from a policy's outputs as kerasdojo's agents take them from ``policy.keras``:
    the argmax of logits or Q values (per part for MultiDiscrete, over legal actions where
    ``mask`` says), logits above 0 for MultiBinary, the output clipped to a Box's bounds. With
    ``rng``, sampled from the logits instead (Gumbel-max; Bernoulli bits)."""
    n = len(out)
    if isinstance(space, spaces.Box):
        return np.clip(out.reshape(n, *space.shape), space.low, space.high).astype(np.float32)
    if isinstance(space, spaces.MultiBinary):
        if rng is not None:
            return (rng.random(out.shape) < 1.0 / (1.0 + np.exp(-out))).astype(np.int8).reshape(n, *space.shape)
        return (out > 0).astype(np.int8).reshape(n, *space.shape)
    if mask is not None:
        out = np.where(mask.reshape(out.shape), out, -np.inf)
    if rng is not None:
        out = out + rng.gumbel(size=out.shape)
    picks = decisions(out, space)[0]
    return picks[:, 0] if isinstance(space, spaces.Discrete) else picks.reshape(n, *space.shape)


def feed(obs: Any) -> dict[str, np.ndarray]:
    """Observations as an exported model's named inputs: ``obs``, or one per leaf."""
    return dict(obs) if isinstance(obs, dict) else {portable.SINGLE_INPUT: obs}


class PolicyActor:
    """An agent made of a policy's forward pass alone (an exported file in its runtime, or the
    Keras model): ``act(obs, deterministic, mask)`` as kerasdojo's agents have it."""

    def __init__(self, forward: Callable[[dict[str, np.ndarray]], np.ndarray], space: Any, samples: bool) -> None:
        self.forward, self.space, self.samples = forward, space, samples
        self.rng = np.random.default_rng(0)  # evaluations swap in their own seeded generator

    def act(self, obs: Any, deterministic: bool = True, mask: np.ndarray | None = None) -> np.ndarray:
        return actions_from(self.forward(feed(obs)), self.space, mask, None if deterministic else self.rng)


def keras_forward(model: Any) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """The Keras model's forward pass, compiled once for any batch size (a traced call costs
    well under a millisecond where an eager one costs ten)."""
    tf = backend.tf()
    specs = portable.input_specs(model)
    single = list(specs) == [portable.SINGLE_INPUT]
    signature = {name: tf.TensorSpec(shape, dtype) for name, (shape, dtype) in specs.items()}
    call = tf.function(
        lambda inputs: model(inputs[portable.SINGLE_INPUT] if single else inputs, training=False),
        input_signature=[signature],
    )

    def forward(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(call({k: inputs[k] for k in signature}), np.float32)

    return forward


# --------------------------------------------------------------------------- the check's observations


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
        actor = PolicyActor(keras_forward(model), env.single_action_space, samples=False)
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


def _check_out(out: Path, fmt: str, force: bool) -> None:
    want = {"onnx": ".onnx", "litert": ".tflite"}.get(fmt)
    if want and out.suffix != want:
        raise DojoError(f"A {fmt} file's name ends in {want}. Received: --out {out}")
    if (out.exists() or out.is_symlink()) and not force:
        raise DojoError(f"{out} exists", hint="--force replaces it")
    if not out.parent.is_dir():
        raise DojoError(f"The folder of --out does not exist: {out.parent}")


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
    _check_out(out, fmt, force)
    model = _load_keras(source)
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
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".kerasdojo-export-") as tmp:
        written = portable.write(model, fmt, Path(tmp) / out.name)
        runtime = portable.load(written)
        if set(runtime.inputs) != set(inputs):
            raise DojoError(f"The {fmt} file takes inputs {sorted(runtime.inputs)}, the model {sorted(inputs)}")
        got = portable.batched(runtime, inputs).reshape(reference.shape)
        del runtime
        error, agreed, ties = compare(reference, got, space, TOLERANCE)
        if error > TOLERANCE or agreed < len(reference):
            raise DojoError(
                f"The {fmt} export of {source.name} does not compute what it computes: on {on}, "
                f"outputs differ by up to {error:.2g} (tolerance {TOLERANCE:g}), greedy choices differ on "
                f"{len(reference) - agreed:,}; nothing was written"
            )
        if out.exists() or out.is_symlink():
            portable.remove(out)
        os.replace(written, out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) if out.is_dir() else out.stat().st_size
    return Exported(
        out, fmt, source, len(reference), on, error, TOLERANCE, agreed, ties, size, time.perf_counter() - start
    )


def compare(reference: np.ndarray, got: np.ndarray, space: Any, tolerance: float) -> tuple[float, int, int]:
    """The largest difference (relative above 1), how many rows choose the same greedy actions
    (every row for continuous outputs) and how many of those are ties within the tolerance."""
    error = float(np.max(np.abs(got - reference) / np.maximum(1.0, np.abs(reference)), initial=0.0))
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
    if episodes < 1:
        raise DojoError(f"--episodes must be >= 1. Received: {episodes}")
    if video is not None:
        from kerasdojo.envs.video import check_video_path

        check_video_path(video)
    runtime = portable.load(policy)
    samples = spec.agent in SAMPLING_AGENTS
    if deterministic is False and not samples:
        raise DojoError(
            f"--stochastic with --policy samples from logits: a {spec.agent} policy has none to sample from",
            hint="drop --stochastic (greedy actions), or evaluate the run itself: kerasdojo eval RUN --stochastic",
        )
    if deterministic is None:  # sampled where the run's own evaluations sample (Atari) and logits allow it
        deterministic = greedy_evaluation(spec, cfg) or not samples
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
        _check_fits(runtime, env.obs_spec, policy, spec.env_id)
        actor = PolicyActor(runtime, env.single_action_space, samples)
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


def _check_fits(runtime: portable.Runtime, obs_spec: Any, policy: Path, env_id: str) -> None:
    wants = {leaf.name: leaf.shape for leaf in obs_spec.leaves}
    if not obs_spec.nested:
        wants = {portable.SINGLE_INPUT: obs_spec.leaves[0].shape}
    takes = {name: tuple(shape[1:]) for name, (shape, _) in runtime.inputs.items()}
    if takes != {k: tuple(v) for k, v in wants.items()}:
        raise DojoError(
            f"{policy} takes {takes}, but {env_id} gives {wants}: it was not exported from this run's policy"
        )
