"""What a checkpoint holds, in one place: the agent's weights, optimizer slots, variables,
RNG states and extra state (:func:`agent_state`), the env's normalisation statistics and
episode history, and where the loop stands (:func:`run_state`); and the way back.

Keys: ``net/<network>/<i>``, ``opt/<optimizer>/<i>``, ``var/<name>``, ``rng/tf``,
``norm/<statistic>``, ``episodes/returns|lengths`` and the agent's own (``replay/...``,
``noise/...``) as arrays; the rest (step, seconds, best evaluation, RNG of NumPy,
counters) as metadata. Files are written by :mod:`kerasdojo.files` (atomically).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from kerasdojo import __version__
from kerasdojo.errors import DojoError
from kerasdojo.runs import Run

Arrays = dict[str, np.ndarray]
Meta = dict[str, Any]
NORM = "norm/"


def agent_state(agent: Any, buffers: bool = True) -> tuple[Arrays, Meta]:
    """Everything a resume needs of ``agent`` (``buffers=False``: all but replay data, for a saved agent)."""
    arrays: Arrays = {}
    for name, model in agent.networks().items():
        for i, w in enumerate(model.weights):
            arrays[f"net/{name}/{i}"] = np.asarray(w.numpy())
    for name, opt in agent.optimizers().items():
        for i, v in enumerate(opt.variables):
            arrays[f"opt/{name}/{i}"] = np.asarray(v.numpy())
    for name, var in agent.variables().items():
        arrays[f"var/{name}"] = np.asarray(var.numpy())
    arrays["rng/tf"] = agent.tf_rng.state.numpy()
    extra_arrays, extra_meta = agent.extra_state(buffers)
    arrays.update(extra_arrays)
    meta = {"rng/numpy": agent.rng.bit_generator.state, "n_updates": agent.n_updates, **extra_meta}
    return arrays, meta


def load_agent_state(agent: Any, arrays: Arrays, meta: Meta, source: str = "checkpoint") -> None:
    """Put a saved state back into ``agent``; a one-line DojoError when it does not fit."""
    arrays = dict(arrays)
    agent.upgrade_state(arrays)  # an older layout of its networks

    def assign(key: str, var: Any) -> None:
        if key not in arrays:
            raise DojoError(f"{source} lacks {key}: it was saved by a different agent or network shape")
        value = arrays[key]
        if tuple(value.shape) != tuple(var.shape):
            raise DojoError(
                f"{source} does not match this agent: {key} has shape {value.shape}, expected {tuple(var.shape)}"
            )
        try:
            var.assign(value)
        except (TypeError, ValueError) as exc:  # a dtype that cannot be cast (strings, objects)
            raise DojoError(f"{source} holds an unusable {key} ({value.dtype}): {exc}") from None

    for name, model in agent.networks().items():
        for i, w in enumerate(model.weights):
            assign(f"net/{name}/{i}", w)
    for name, opt in agent.optimizers().items():
        for i, v in enumerate(opt.variables):
            assign(f"opt/{name}/{i}", v)
    for name, var in agent.variables().items():
        assign(f"var/{name}", var)
    try:
        if "rng/tf" in arrays:
            agent.tf_rng.state.assign(arrays["rng/tf"])
        if "rng/numpy" in meta:
            agent.rng.bit_generator.state = meta["rng/numpy"]
        agent.n_updates = int(meta.get("n_updates", 0))
    except (TypeError, ValueError, KeyError) as exc:
        raise DojoError(f"{source} holds an unusable RNG state or update count: {exc}") from None
    try:
        agent.load_extra_state(arrays, meta)
    except (TypeError, ValueError, KeyError, IndexError) as exc:  # a damaged replay buffer or counter
        raise DojoError(f"{source} holds an unusable {type(exc).__name__.lower()} in its agent state: {exc}") from None
    agent.refresh()


def normalizer_arrays(arrays: Arrays) -> Arrays:
    """The observation/reward statistics a checkpoint or saved agent holds (empty: none)."""
    return {k[len(NORM) :]: v for k, v in arrays.items() if k.startswith(NORM)}


def run_state(agent: Any, env: Any, loop_meta: Meta, buffers: bool = True) -> tuple[Arrays, Meta]:
    """A checkpoint of a run: the agent, the env's statistics and episode history, and
    ``loop_meta`` (where the loop stands: step, seconds, best evaluation, agent and env ids)."""
    arrays, meta = agent_state(agent, buffers)
    arrays.update({f"{NORM}{k}": v for k, v in env.normalizer.state().items()})
    arrays["episodes/returns"] = np.array(env.episode_returns, np.float64)
    arrays["episodes/lengths"] = np.array(env.episode_lengths, np.int64)
    if env.episode_successes:
        arrays["episodes/successes"] = np.array(env.episode_successes, bool)
    meta.update(loop_meta, kerasdojo=__version__, episodes=env.episodes)
    return arrays, meta


def restore_run(agent: Any, env: Any, arrays: Arrays, meta: Meta, source: str) -> bool:
    """Put a checkpoint back into ``agent`` and ``env``; True when it held normalisation
    statistics (the env's first observations were scaled without them: reset it)."""
    load_agent_state(agent, arrays, meta, source)
    norm = normalizer_arrays(arrays)
    try:
        if norm:
            env.normalizer.load_state(norm)
        env.episode_returns.extend(np.asarray(arrays.get("episodes/returns", np.zeros(0)), float).tolist())
        env.episode_lengths.extend(np.asarray(arrays.get("episodes/lengths", np.zeros(0))).astype(int).tolist())
        env.episode_successes.extend(np.asarray(arrays.get("episodes/successes", np.zeros(0)), bool).tolist())
        env.episodes = int(meta.get("episodes", 0))
    except (KeyError, TypeError, ValueError) as exc:
        raise DojoError(f"{source} holds unusable statistics: {exc}") from None
    return bool(norm)


def load_checkpoint(run: Run, warn: Callable[[str], None] | None) -> tuple[Any, Arrays, Meta]:
    """The newest checkpoint that loads; damaged newer ones are set aside as ``*.damaged``."""
    path, arrays, meta = run.load_latest_checkpoint(warn)
    step = int(meta.get("step", 0))
    for later, damaged in run.checkpoints():
        if later > step:
            os.replace(damaged, damaged.with_name(damaged.name + ".damaged"))
    return path, arrays, meta
