"""Progress on long work (rich): training steps, supervised epochs, images read.

On a terminal, a live bar. Off a terminal (CI logs, ``| tee``), no bar, whose
redraws would be cut or repeated: a plain line each time another tenth of the
work is done (or each unit, for work of few units such as epochs), and at the end.
"""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def _fmt_elapsed(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


class Bar:
    """A context manager: ``update(completed, text)`` shows ``text`` beside the count."""

    def __init__(
        self,
        total: int,
        start: int = 0,
        label: str = "",
        console: Console | None = None,
        disable: bool = False,
        unit_lines: bool = False,
    ) -> None:
        self.console = console or Console(highlight=False)
        self.total, self.start, self.label = total, start, label
        self.disable = disable
        self.live = self.console.is_terminal and not disable
        self.t0 = time.monotonic()
        span = max(total - start, 1)
        self.line_every = 1 if unit_lines else max(math.ceil(span / 10), 1)
        self.next_line = start + self.line_every
        self.last_line: int | None = None
        self.progress = Progress(
            *([TextColumn(label)] if label else []),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[text]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(compact=True),
            console=self.console,
            disable=not self.live,
            refresh_per_second=4,
        )
        self.task = self.progress.add_task(label or "work", total=total, completed=start, text="")

    def __enter__(self) -> Bar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def update(self, completed: int, text: str = "") -> None:
        if self.live:
            self.progress.update(self.task, completed=completed, text=text)
            return
        if self.disable or (completed < self.next_line and completed < self.total) or completed == self.last_line:
            return
        self.next_line = (completed // self.line_every + 1) * self.line_every
        self.last_line = completed
        pct = 100.0 * completed / max(self.total, 1)
        head = f"{self.label} " if self.label else ""
        elapsed = _fmt_elapsed(time.monotonic() - self.t0)
        self.console.print(
            f"{head}{completed:,}/{self.total:,} ({pct:.0f}%)  {text}  elapsed {elapsed}".rstrip(),
            soft_wrap=True,
            highlight=False,
            markup=False,
        )


class TrainingProgress(Bar):
    """RL training: steps, steps/s, mean return of the last 100 episodes, latest evaluation."""

    def __init__(self, total: int, start: int = 0, console: Console | None = None, disable: bool = False) -> None:
        super().__init__(total, start, console=console, disable=disable)

    def report(self, state: Any, ep_rew_mean: float) -> None:
        """A :data:`~kerasdojo.training.hooks.ProgressCallback`."""
        ret = "-" if ep_rew_mean is None or math.isnan(ep_rew_mean) else f"{ep_rew_mean:.1f}"
        text = f"{state.fps:,.0f} steps/s  return {ret}"
        if state.last_eval is not None:
            text += f"  eval {state.last_eval:.1f}"
        self.update(state.step, text)


class Counter:
    """A ``progress(done, total)`` callback for loaders: a bar that opens at the first call and
    closes when ``done`` reaches ``total``."""

    def __init__(self, label: str, disable: bool = False) -> None:
        self.label, self.disable = label, disable
        self.bar: Bar | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = Bar(total, label=self.label, disable=self.disable).__enter__()
        self.bar.update(done)
        if done >= total:
            self.bar.__exit__(None, None, None)
            self.bar = None
