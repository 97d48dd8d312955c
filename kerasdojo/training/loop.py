"""The training loop: step the agent, call the hooks when they are due. Nothing else.

Each iteration calls ``agent.learn`` once (an on-policy rollout and update, or
an off-policy stretch of collection and gradient steps: the loop does not
care), then every hook whose period has come round. Hooks do the rest: log,
evaluate, checkpoint, show progress, stop on Ctrl-C (:mod:`kerasdojo.training.hooks`).
Time spent in a hook counts as training time unless the hook says otherwise
(evaluation does not), so steps/s compare with other libraries' wall clocks.

Hooks of the ``MEASURE`` stage (evaluate, Ctrl-C) run before those of the ``WRITE``
stage (log, checkpoint, video, progress) in every iteration and at the end, so what
a measuring hook puts in the state (scalars for the row, the best evaluation) is there
when the writing hooks read it, whatever the order of the list they came in.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from pathlib import Path
from typing import Any, ClassVar


@dataclasses.dataclass
class LoopState:
    """What the loop and its hooks share."""

    step: int  # env steps done, over all sessions of the run
    total_steps: int
    start_step: int = 0  # where this session began (a resumed run starts past 0)
    train_seconds: float = 0.0  # training time over all sessions of the run
    session_seconds: float = 0.0  # training time of this session
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)  # latest value of each learn() scalar
    row: dict[str, float] = dataclasses.field(default_factory=dict)  # scalars to log at this step
    best_eval: float | None = None
    best_step: int | None = None
    last_eval: float | None = None
    stop: bool = False  # set by a hook (Ctrl-C): the loop ends after this iteration
    # What the run produced, for its summary: set by the hooks that produce them.
    final_eval: Any = None
    policy_path: Path | None = None
    video_path: Path | None = None

    def report(self, scalars: dict[str, float]) -> None:
        """Add scalars to this step's row (logged by the write stage of this iteration)."""
        self.row.update(scalars)

    @property
    def fps(self) -> float:
        return (self.step - self.start_step) / max(self.session_seconds, 1e-9)

    def add_time(self, seconds: float) -> None:
        self.session_seconds += seconds
        self.train_seconds += seconds


class Hook:
    """Called by :func:`run`: ``on_start`` once; ``on_step`` after an iteration when ``every``
    env steps have passed since its last call (``every=None``: after each iteration; 0: never);
    ``on_end`` after the last step (not after an interruption); ``on_close`` always."""

    MEASURE: ClassVar[int] = 0
    WRITE: ClassVar[int] = 1

    every: int | None = None
    timed: bool = True  # does its time count as training time?
    stage: int = MEASURE  # MEASURE hooks run before WRITE hooks

    def on_start(self, state: LoopState) -> None: ...
    def on_step(self, state: LoopState) -> None: ...
    def on_end(self, state: LoopState) -> None: ...
    def on_close(self, state: LoopState) -> None: ...

    def due(self, step: int) -> bool:
        if self.every is None:
            return True
        if self.every <= 0:
            return False
        next_call = getattr(self, "_next_call", None)
        if next_call is None or step >= next_call:
            self._next_call = (step // self.every + 1) * self.every
            return next_call is not None
        return False


def run(agent: Any, env: Any, state: LoopState, hooks: list[Hook]) -> bool:
    """Train ``agent`` on ``env`` until ``state.total_steps``; True when it got there,
    False when a hook stopped it first."""
    hooks = sorted(hooks, key=lambda hook: hook.stage)  # stable: measure, then write
    agent.begin(env)
    for hook in hooks:
        hook.due(state.step)  # sets each hook's first call after the starting step
        hook.on_start(state)
    gc.freeze()  # the agent, env and compiled functions live all run: collections need not walk them
    try:
        while state.step < state.total_steps and not state.stop:
            t0 = time.perf_counter()
            steps, metrics = agent.learn(env, state.step, state.total_steps)
            state.step += steps
            state.metrics.update(metrics)
            state.add_time(time.perf_counter() - t0)
            for hook in hooks:
                if hook.due(state.step):
                    t_hook = time.perf_counter()
                    hook.on_step(state)
                    if hook.timed:
                        state.add_time(time.perf_counter() - t_hook)
        if state.stop and state.step < state.total_steps:  # a stop during the last iteration still finishes
            return False
        for hook in hooks:
            hook.on_end(state)
        return True
    finally:
        gc.unfreeze()
        for hook in hooks:
            hook.on_close(state)
