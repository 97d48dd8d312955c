"""A real Ctrl-C in the middle of a batched program, for the resume tests."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any


def interrupted_at(monkeypatch: Any, trainer: type, at: int, run: Callable[[], Any]) -> Any:
    """``run()`` with a SIGINT sent to this process right after ``trainer.iterate`` reaches env step
    ``at``; the trainer's own ``iterate`` again afterwards. Returns what ``run`` returned."""
    iterate = trainer.iterate

    def iterate_then_interrupt(self: Any, step: int, total: int) -> Any:
        out = iterate(self, step, total)
        if step + out[0] == at:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(trainer, "iterate", iterate_then_interrupt)
    try:
        return run()
    finally:
        monkeypatch.setattr(trainer, "iterate", iterate)
