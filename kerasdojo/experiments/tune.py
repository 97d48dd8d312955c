"""``kerasdojo tune``: hyperparameter search with Optuna (TPE sampler, median pruner).

Each trial trains ``seeds_per_trial`` ordinary runs (in the study's folder) with
hyperparameters sampled from the agent's search space below (after RL Zoo's
``hyperparams_opt.py``, trimmed to the fields kerasdojo has). The periodic
evaluations feed Optuna's median pruner; the trial's value is the mean final
evaluation over its seeds. The study lives in ``--storage`` (default: a SQLite
file in the study folder), so running ``tune`` again continues it, and parallel
workers (local processes, or Ray tasks) share it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kerasdojo.errors import DojoError, Interrupted


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise DojoError("tune needs Optuna, which is not installed", hint="pip install 'kerasdojo[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# --------------------------------------------------------------------------- search spaces

NET_ARCHS = {"tiny": (64,), "small": (64, 64), "medium": (256, 256)}


def _ppo(trial: Any) -> dict[str, Any]:
    batch_size = trial.suggest_categorical("batch_size", [32, 64, 128, 256])
    n_steps = trial.suggest_categorical("n_steps", [32, 64, 128, 256, 512, 1024])
    return {
        "batch_size": batch_size,
        "n_steps": n_steps,
        "gamma": trial.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999]),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "clip_range": trial.suggest_categorical("clip_range", [0.1, 0.2, 0.3, 0.4]),
        "n_epochs": trial.suggest_categorical("n_epochs", [1, 5, 10, 20]),
        "gae_lambda": trial.suggest_categorical("gae_lambda", [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0]),
        "max_grad_norm": trial.suggest_categorical("max_grad_norm", [0.3, 0.5, 0.7, 1, 2, 5]),
        "net_arch": NET_ARCHS[trial.suggest_categorical("net_arch", list(NET_ARCHS))],
    }


def _a2c(trial: Any) -> dict[str, Any]:
    return {
        "n_steps": trial.suggest_categorical("n_steps", [8, 16, 32, 64, 128, 256]),
        "gamma": trial.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999]),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "gae_lambda": trial.suggest_categorical("gae_lambda", [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0]),
        "max_grad_norm": trial.suggest_categorical("max_grad_norm", [0.3, 0.5, 0.7, 1, 2, 5]),
        "net_arch": NET_ARCHS[trial.suggest_categorical("net_arch", list(NET_ARCHS))],
    }


def _dqn(trial: Any) -> dict[str, Any]:
    train_freq = trial.suggest_categorical("train_freq", [1, 4, 8, 16, 128, 256])
    return {
        "gamma": trial.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999]),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64, 128, 256]),
        "buffer_size": trial.suggest_categorical("buffer_size", [10_000, 50_000, 100_000]),
        "exploration_final_eps": trial.suggest_float("exploration_final_eps", 0.0, 0.2),
        "exploration_fraction": trial.suggest_float("exploration_fraction", 0.0, 0.5),
        "target_update_interval": trial.suggest_categorical("target_update_interval", [1, 1000, 5000, 10000]),
        "learning_starts": trial.suggest_categorical("learning_starts", [0, 1000, 5000]),
        "train_freq": train_freq,
        "gradient_steps": max(train_freq // trial.suggest_categorical("subsample_steps", [1, 2, 4, 8]), 1),
        "net_arch": NET_ARCHS[trial.suggest_categorical("net_arch", list(NET_ARCHS))],
    }


def _offpolicy(trial: Any) -> dict[str, Any]:
    train_freq = trial.suggest_categorical("train_freq", [1, 4, 8, 16, 32, 64])
    return {
        "gamma": trial.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999]),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [64, 128, 256, 512]),
        "buffer_size": trial.suggest_categorical("buffer_size", [10_000, 100_000, 1_000_000]),
        "learning_starts": trial.suggest_categorical("learning_starts", [0, 1000, 10000]),
        "train_freq": train_freq,
        "gradient_steps": train_freq,
        "tau": trial.suggest_categorical("tau", [0.001, 0.005, 0.01, 0.02, 0.05]),
        "net_arch": NET_ARCHS[trial.suggest_categorical("net_arch", list(NET_ARCHS))],
    }


SPACES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "ppo": _ppo,
    "a2c": _a2c,
    "dqn": _dqn,
    "sac": _offpolicy,
    "td3": _offpolicy,
    "ddpg": _offpolicy,
}


def space_help() -> str:
    return "Search spaces (after RL Zoo): " + "; ".join(
        f"{name}: {', '.join(_space_names(fn))}" for name, fn in SPACES.items()
    )


def _space_names(fn: Callable[[Any], dict[str, Any]]) -> list[str]:
    class Recorder:
        def __init__(self) -> None:
            self.names: list[str] = []

        def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
            self.names.append(name)
            return choices[0]

        def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
            self.names.append(name)
            return low

    rec = Recorder()
    fn(rec)
    return rec.names


# --------------------------------------------------------------------------- the study


def open_study(storage: str, name: str, env_id: str, agent: str, steps: int | None, create: bool = True) -> Any:
    optuna = _optuna()
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction="maximize",
            # Unseeded: parallel workers (each opens the study) must not propose the same trials.
            sampler=optuna.samplers.TPESampler(n_startup_trials=5, constant_liar=True),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
            load_if_exists=True,
        )
    except Exception as exc:  # a bad URL, an unreadable file
        raise DojoError(f"Cannot open the Optuna storage {storage}: {exc}".splitlines()[0]) from None
    attrs = study.user_attrs
    if attrs:
        if (attrs.get("env_id"), attrs.get("agent"), attrs.get("steps")) != (env_id, agent, steps):
            raise DojoError(
                f"The study {name!r} in {storage} tunes {attrs.get('agent')} on {attrs.get('env_id')} "
                f"({attrs.get('steps')} steps), not {agent} on {env_id} ({steps} steps)",
                hint="pass another --storage or --study",
            )
    elif create:
        study.set_user_attr("env_id", env_id)
        study.set_user_attr("agent", agent)
        study.set_user_attr("steps", steps)
    return study


def fix(study: Any, overrides: dict[str, Any]) -> None:
    """Record the --set values that every trial trained with (best.toml repeats them)."""
    study.set_user_attr("fixed", {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()})


def objective_for(job: dict[str, Any]) -> Callable[[Any], float]:
    """The objective a worker optimises: train the trial's seeds, report evaluations, prune."""
    optuna = _optuna()
    from kerasdojo.training.session import TrainSpec, start

    def objective(trial: Any) -> float:
        params = SPACES[job["agent"]](trial)
        overrides = {**params, **job["overrides"]}
        finals = []
        for k in range(job["seeds_per_trial"]):
            spec = TrainSpec(
                job["env_id"],
                job["agent"],
                seed=k,
                total_steps=job["steps"],
                overrides=overrides,
                eval_every=job["eval_every"],
                eval_episodes=job["eval_episodes"],
                save_every=0,
                native=job["native"],
            )
            try:
                session = start(spec, Path(job["out"]) / f"trial{trial.number:04d}")
            except DojoError as exc:  # a sampled combination the agent refuses
                raise optuna.TrialPruned(str(exc)) from None
            reported: list[Any] = [None]
            pruned = [False]

            def report(state: Any, _ret: float, k: int = k, reported: list = reported, pruned: list = pruned) -> None:
                if state.last_eval is not None and state.last_eval is not reported[0]:
                    reported[0] = state.last_eval
                    if k == 0:  # the pruner compares the first seed's curve across trials
                        # By evaluation index, as RL Zoo: trials with other rollout sizes evaluate
                        # at slightly different env steps, and the median pruner compares equal steps.
                        trial.report(float(state.last_eval), round(state.step / job["eval_every"]))
                        if trial.should_prune():
                            pruned[0] = state.stop = True

            try:
                summary = session.train(report)
            except Interrupted:
                if pruned[0]:
                    raise optuna.TrialPruned() from None
                raise  # Ctrl-C: stop the study (the trial is marked failed), not prune
            if not math.isfinite(summary.eval.mean_reward):
                raise optuna.TrialPruned("non-finite return")
            finals.append(summary.eval.mean_reward)
        return float(sum(finals) / len(finals))

    return objective


def worker(job: dict[str, Any]) -> int:
    """Run trials against the shared storage until the study has ``trials`` finished ones."""
    from kerasdojo.experiments.bench import limit_threads

    limit_threads(job.get("threads"))
    _optuna()  # a one-line error when it is missing
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    study = open_study(job["storage"], job["study"], job["env_id"], job["agent"], job["steps"], create=False)
    done_states = (TrialState.COMPLETE, TrialState.PRUNED)
    if len(study.get_trials(states=done_states)) >= job["trials"]:
        return 0
    study.optimize(
        objective_for(job),
        callbacks=[MaxTrialsCallback(job["trials"], states=done_states)],
        catch=(),
        gc_after_trial=True,
    )
    return 1


def write_best(study: Any, out: Path) -> Path:
    """best.toml: the best trial's hyperparameters, as ``train --config`` reads them."""
    best = study.best_trial
    params = SPACES[study.user_attrs["agent"]](_Fixed(best.params))
    params.update(study.user_attrs.get("fixed", {}))  # what --set fixed is what the trial trained with
    if study.user_attrs.get("steps"):
        params["total_steps"] = study.user_attrs["steps"]
    lines = [f"# Best of {len(study.trials)} trials: value {best.value:.2f} (trial {best.number})"]
    for key, value in sorted(params.items()):
        lines.append(f"{key} = {_toml(value)}")
    path = out / "best.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class _Fixed:
    """A stand-in trial that answers with fixed parameters (to rebuild a trial's overrides)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return self.params[name]

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        return self.params[name]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def write_plots(study: Any, out: Path) -> list[Path]:
    """Optuna's optimisation history and (with 2+ finished trials) parameter importances, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import warnings

    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental" warnings of optuna's matplotlib backend
        ax = ovm.plot_optimization_history(study)
        path = out / "optimization_history.png"
        ax.figure.set_size_inches(9, 5.5)
        ax.figure.tight_layout()
        ax.figure.savefig(path, dpi=100)
        plt.close(ax.figure)
        written.append(path)
        complete = [t for t in study.trials if t.value is not None]
        if len(complete) >= 2:
            try:
                ax = ovm.plot_param_importances(study)
            except (RuntimeError, ValueError):  # too little variation to rank parameters
                return written
            path = out / "param_importances.png"
            ax.figure.set_size_inches(9, 5.5)
            ax.figure.tight_layout()
            ax.figure.savefig(path, dpi=100)
            plt.close(ax.figure)
            written.append(path)
    return written


def run_workers(jobs: list[dict[str, Any]], ray_address: str | None, poll: Callable[[], None]) -> None:
    """``worker`` in local processes (spawned), or as Ray tasks; ``poll`` is called while they run."""
    import time

    if ray_address:
        from kerasdojo.experiments.ray_join import connect_ray

        ray = connect_ray(ray_address)
        task = ray.remote(num_cpus=1)(worker)
        pending = [task.remote({**job, "threads": 1}) for job in jobs]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
                ray.get(done)
                poll()
        finally:
            if ray_address in ("local", ""):
                ray.shutdown()
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // len(jobs))
    with ProcessPoolExecutor(max_workers=len(jobs), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(worker, {**job, "threads": threads}) for job in jobs]
        try:
            while not all(f.done() for f in futures):
                poll()
                for f in futures:
                    if f.done() and f.exception() is not None:
                        raise f.exception()  # type: ignore[misc]
                time.sleep(1.0)
        except KeyboardInterrupt:  # the workers got the Ctrl-C too: their trials stop, the study stays
            for f in futures:
                f.cancel()
            raise Interrupted(
                f"tune interrupted; the study is kept in {jobs[0]['storage']}",
                hint="run the same command to continue it",
            ) from None
        for f in futures:
            f.result()
    poll()
