"""What the training loop does besides training, one hook each (see :mod:`kerasdojo.training.loop`).

Measure stage: evaluate (and keep the best agent), catch Ctrl-C. Write stage: log a row
of scalars, checkpoint (and save the final agent), record a video at the end, show
progress. Each hook works through the loop's :class:`~kerasdojo.training.loop.LoopState`
and a :class:`RunHandle`, the few things a run offers them; what a hook produces (the
final evaluation, the policy file, the video) goes back into the state.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from kerasdojo.training.evaluation import EvalResult
from kerasdojo.training.loop import Hook, LoopState

ProgressCallback = Callable[[LoopState, float], None]  # (state, mean return of the last 100 episodes)


class RunHandle(Protocol):
    """What hooks may ask of the run they serve."""

    def evaluate(self, stop: Callable[[], bool] | None = None) -> EvalResult:
        """Evaluate the agent on the evaluation envs (``stop()``: end early)."""
        ...

    def save_agent(self, name: str, policy_name: str) -> Path | None:
        """Save the agent's state and its policy network; the policy's path (None: no policy)."""
        ...

    def save_checkpoint(self, state: LoopState) -> Path:
        """Write a checkpoint of the run as it stands at ``state``."""
        ...

    def record(self, name: str) -> Path:
        """Record one evaluation episode into the run file ``name``."""
        ...

    def write_results(self, state: LoopState, result: EvalResult) -> None:
        """eval.json and the HParams entry of the final evaluation."""
        ...

    def log(self, row: dict[str, float], step: int) -> None:
        """Write a row of scalars (TensorBoard and progress.csv)."""
        ...

    def episode_stats(self) -> dict[str, float]:
        """SB3's rollout/ scalars of the training envs (the last 100 episodes)."""
        ...

    def episodes(self) -> int:
        """Episodes finished in the training envs, over all sessions of the run."""
        ...


class EvalHook(Hook):
    """Evaluate on separate envs every ``every`` steps and at the end; keep the agent of the best
    evaluation (``best_agent.npz``, ``best_policy.keras``), as SB3's EvalCallback keeps ``best_model``."""

    timed = False

    def __init__(self, run: RunHandle, every: int) -> None:
        self.run, self.every = run, every

    def on_step(self, state: LoopState) -> None:
        if state.step >= state.total_steps:  # the final evaluation comes in on_end
            return
        result = self.run.evaluate(stop=lambda: state.stop)
        if not state.stop:  # a Ctrl-C during the evaluation leaves too few episodes to report
            self._record(state, result)

    def on_end(self, state: LoopState) -> None:
        result = self.run.evaluate()
        self._record(state, result)
        state.final_eval = result
        self.run.write_results(state, result)

    def _record(self, state: LoopState, result: EvalResult) -> None:
        state.last_eval = result.mean_reward
        state.report(result.scalars())
        if state.best_eval is None or result.mean_reward > state.best_eval:
            state.best_eval, state.best_step = result.mean_reward, state.step
            self.run.save_agent("best_agent.npz", "best_policy.keras")


class VideoHook(Hook):
    """Record one episode of the final agent (``videos/final.gif``): greedy, sampled on Atari games.
    In the write stage, after the final agent is saved: a failed recording loses nothing."""

    every = 0
    timed = False
    stage = Hook.WRITE

    def __init__(self, run: RunHandle) -> None:
        self.run = run

    def on_end(self, state: LoopState) -> None:
        state.video_path = self.run.record("videos/final.gif")


class InterruptHook(Hook):
    """Ctrl-C asks the loop to stop after the current iteration (the session then checkpoints);
    a second Ctrl-C stops at once, keeping the last checkpoint."""

    every = 0

    def __init__(self) -> None:
        self.previous: Any = None
        self.state: LoopState | None = None

    def on_start(self, state: LoopState) -> None:
        self.state = state
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum: int, frame: Any) -> None:
        assert self.state is not None
        if self.state.stop:
            raise KeyboardInterrupt
        self.state.stop = True

    def on_close(self, state: LoopState) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None


class LogHook(Hook):
    """Write the step's row whenever it holds scalars (an evaluation's), adding the rollout/ and
    train/ scalars every ``interval`` steps and at the end: SB3's rollout/, train/, eval/ and time/ tags."""

    every = None
    stage = Hook.WRITE

    def __init__(self, run: RunHandle, interval: int) -> None:
        self.run, self.interval = run, interval
        self.last = 0

    def on_start(self, state: LoopState) -> None:
        self.last = state.step

    def on_step(self, state: LoopState) -> None:
        if state.step >= state.total_steps:  # on_end writes the last row, evaluation included
            return
        if state.step - self.last >= self.interval:
            state.row = {**self.run.episode_stats(), **state.metrics, **state.row}
        if state.row:
            self._write(state)

    def on_end(self, state: LoopState) -> None:
        state.row = {**self.run.episode_stats(), **state.metrics, **state.row}
        self._write(state)

    def _write(self, state: LoopState) -> None:
        episodes = float(self.run.episodes())
        state.report({"time/fps": state.fps, "time/train_seconds": state.train_seconds, "time/episodes": episodes})
        self.run.log(state.row, state.step)
        state.row = {}
        self.last = state.step


class CheckpointHook(Hook):
    """A checkpoint every ``every`` steps; at the end, a last one and the final agent
    (``agent.npz``, ``policy.keras``)."""

    stage = Hook.WRITE

    def __init__(self, run: RunHandle, every: int) -> None:
        self.run, self.every = run, every

    def on_step(self, state: LoopState) -> None:
        if state.step < state.total_steps:  # on_end writes the last one
            self.run.save_checkpoint(state)

    def on_end(self, state: LoopState) -> None:
        self.run.save_checkpoint(state)
        state.policy_path = self.run.save_agent("agent.npz", "policy.keras")


class ProgressHook(Hook):
    """Report progress to ``callback`` at most every ``min_interval`` seconds, and at the end."""

    stage = Hook.WRITE

    def __init__(self, run: RunHandle, callback: ProgressCallback, min_interval: float = 0.25) -> None:
        self.run, self.callback, self.min_interval = run, callback, min_interval
        self.last = 0.0

    def on_step(self, state: LoopState) -> None:
        now = time.monotonic()
        if now - self.last > self.min_interval or state.step >= state.total_steps:
            self.last = now
            self.callback(state, self.run.episode_stats()["rollout/ep_rew_mean"])

    def on_end(self, state: LoopState) -> None:
        self.callback(state, self.run.episode_stats()["rollout/ep_rew_mean"])
