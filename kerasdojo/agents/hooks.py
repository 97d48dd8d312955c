"""What the training loop does besides training, one hook each (see :mod:`kerasdojo.agents.loop`).

In the order the session runs them after an iteration: evaluate (and keep the
best agent), log, checkpoint, record a video (at the end), show progress, and
catch Ctrl-C. Each hook works through the :class:`~kerasdojo.agents.session.Session`
it is given: the run directory, the agent and the environments.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kerasdojo.agents.evaluation import EvalResult
from kerasdojo.agents.loop import Hook, LoopState

if TYPE_CHECKING:
    from kerasdojo.agents.session import Session

ProgressCallback = Callable[[LoopState, float], None]  # (state, mean return of the last 100 episodes)


class EvalHook(Hook):
    """Evaluate on separate envs every ``every`` steps and at the end; keep the agent of the best
    evaluation (``best_agent.npz``, ``best_policy.keras``), as SB3's EvalCallback keeps ``best_model``."""

    timed = False

    def __init__(self, session: Session, every: int) -> None:
        self.session, self.every = session, every

    def on_step(self, state: LoopState) -> None:
        if state.step >= state.total_steps:  # the final evaluation comes in on_end
            return
        result = self.session.evaluate(stop=lambda: state.stop)
        if not state.stop:  # a Ctrl-C during the evaluation leaves too few episodes to report
            self._record(state, result)

    def on_end(self, state: LoopState) -> None:
        result = self.session.evaluate()
        self._record(state, result)
        self.session.write_results(result)

    def _record(self, state: LoopState, result: EvalResult) -> None:
        state.last_eval = result.mean_reward
        state.row.update(result.scalars())
        if state.best_eval is None or result.mean_reward > state.best_eval:
            state.best_eval, state.best_step = result.mean_reward, state.step
            self.session.save_agent("best_agent.npz", "best_policy.keras")


class LogHook(Hook):
    """A row of scalars (TensorBoard and progress.csv) every ``interval`` steps, whenever another
    hook put scalars in the row (an evaluation), and at the end: SB3's rollout/, train/ and time/ tags."""

    def __init__(self, session: Session, interval: int) -> None:
        self.session, self.interval = session, interval
        self.last = 0

    def on_start(self, state: LoopState) -> None:
        self.last = state.step

    def on_step(self, state: LoopState) -> None:
        if state.step >= state.total_steps:  # on_end writes the last row, evaluation included
            return
        if state.step - self.last >= self.interval:
            state.row = {**self.session.env.stats(), **state.metrics, **state.row}
        if state.row:
            self._write(state)

    def on_end(self, state: LoopState) -> None:
        state.row = {**self.session.env.stats(), **state.metrics, **state.row}
        self._write(state)

    def _write(self, state: LoopState) -> None:
        state.row.update(
            {
                "time/fps": state.fps,
                "time/train_seconds": state.train_seconds,
                "time/episodes": float(self.session.env.episodes),
            }
        )
        self.session.run.log(state.row, state.step)
        state.row = {}
        self.last = state.step


class CheckpointHook(Hook):
    """A checkpoint every ``every`` steps; at the end, a last one and the final agent
    (``agent.npz``, ``policy.keras``)."""

    def __init__(self, session: Session, every: int) -> None:
        self.session, self.every = session, every

    def on_step(self, state: LoopState) -> None:
        if state.step < state.total_steps:  # on_end writes the last one
            self.session.save_checkpoint()

    def on_end(self, state: LoopState) -> None:
        self.session.save_checkpoint()
        self.session.policy_path = self.session.save_agent("agent.npz", "policy.keras")


class VideoHook(Hook):
    """Record one episode of the final agent (``videos/final.gif``): greedy, sampled on Atari games."""

    every = 0
    timed = False

    def __init__(self, session: Session) -> None:
        self.session = session

    def on_end(self, state: LoopState) -> None:
        self.session.video_path = self.session.record(self.session.run.file("videos/final.gif"))


class ProgressHook(Hook):
    """Report progress to ``callback`` at most every ``min_interval`` seconds, and at the end."""

    def __init__(self, session: Session, callback: ProgressCallback, min_interval: float = 0.25) -> None:
        self.session, self.callback, self.min_interval = session, callback, min_interval
        self.last = 0.0

    def on_step(self, state: LoopState) -> None:
        now = time.monotonic()
        if now - self.last > self.min_interval or state.step >= state.total_steps:
            self.last = now
            self.callback(state, self.session.env.stats()["rollout/ep_rew_mean"])

    def on_end(self, state: LoopState) -> None:
        self.callback(state, self.session.env.stats()["rollout/ep_rew_mean"])


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
