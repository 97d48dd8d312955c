"""The training progress bar: steps, steps/s, recent mean return, ETA (rich)."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainingProgress:
    """A context manager whose :meth:`update` the trainer calls with its latest figures."""

    def __init__(self, total: int, start: int = 0, console: Console | None = None, disable: bool = False) -> None:
        self.progress = Progress(
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]} steps/s"),
            TextColumn("return {task.fields[ret]}"),
            TextColumn("{task.fields[extra]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(compact=True),
            console=console,
            disable=disable,
            refresh_per_second=4,
        )
        self.task = self.progress.add_task("train", total=total, completed=start, fps="-", ret="-", extra="")

    def __enter__(self) -> TrainingProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def update(self, step: int, info: dict[str, Any]) -> None:
        ret = info.get("ep_rew_mean")
        extra = ""
        if info.get("eval_mean_reward") is not None:
            extra = f"eval {info['eval_mean_reward']:.1f}"
        self.progress.update(
            self.task,
            completed=step,
            fps=f"{info.get('fps', 0):,.0f}",
            ret="-" if ret is None or (isinstance(ret, float) and math.isnan(ret)) else f"{ret:.1f}",
            extra=extra,
        )
