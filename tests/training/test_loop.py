"""The training loop and its hooks, with a stub agent (no TensorFlow)."""

from __future__ import annotations

import io

from rich.console import Console

from kerasdojo.progress import TrainingProgress
from kerasdojo.training import loop


class StubAgent:
    """Takes ``per_call`` env steps a call and reports how many calls it had."""

    def __init__(self, per_call: int) -> None:
        self.per_call, self.calls, self.begun = per_call, 0, False

    def begin(self, env) -> None:
        self.begun = True

    def learn(self, env, step, total_steps):
        self.calls += 1
        return self.per_call, {"train/calls": float(self.calls)}


class Recorder(loop.Hook):
    def __init__(self, every, timed=True, stop_at=None) -> None:
        self.every, self.timed, self.stop_at = every, timed, stop_at
        self.events: list[tuple[str, int]] = []

    def on_start(self, state) -> None:
        self.events.append(("start", state.step))

    def on_step(self, state) -> None:
        self.events.append(("step", state.step))
        if self.stop_at is not None and state.step >= self.stop_at:
            state.stop = True

    def on_end(self, state) -> None:
        self.events.append(("end", state.step))

    def on_close(self, state) -> None:
        self.events.append(("close", state.step))


def test_hooks_are_called_when_due_and_at_the_end() -> None:
    agent = StubAgent(per_call=300)
    every_call, periodic, never = Recorder(None), Recorder(1000), Recorder(0)
    state = loop.LoopState(step=0, total_steps=3000)
    assert loop.run(agent, None, state, [every_call, periodic, never]) is True
    assert agent.begun and agent.calls == 10 and state.step == 3000
    assert [s for e, s in every_call.events if e == "step"] == list(range(300, 3001, 300))
    # the first iteration at or past each multiple of 1000
    assert periodic.events == [
        ("start", 0),
        ("step", 1200),
        ("step", 2100),
        ("step", 3000),
        ("end", 3000),
        ("close", 3000),
    ]
    assert never.events == [("start", 0), ("end", 3000), ("close", 3000)]
    assert state.metrics == {"train/calls": 10.0}


def test_periodic_hooks_count_from_a_resumed_step() -> None:
    periodic = Recorder(1000)
    state = loop.LoopState(step=2500, total_steps=4000, start_step=2500)
    loop.run(StubAgent(per_call=500), None, state, [periodic])
    assert [s for e, s in periodic.events if e == "step"] == [3000, 4000]


def test_a_stop_ends_the_loop_without_on_end_but_closes() -> None:
    stopper = Recorder(None, stop_at=900)
    state = loop.LoopState(step=0, total_steps=10_000)
    assert loop.run(StubAgent(per_call=300), None, state, [stopper]) is False
    assert state.step == 900 and ("end", 900) not in stopper.events and stopper.events[-1] == ("close", 900)


def test_writing_hooks_see_what_measuring_hooks_reported_whatever_the_list_order() -> None:
    """The loop runs the measure stage before the write stage: a writer listed first still reads
    the scalars a measuring hook put in the state in the same iteration, and at the end."""

    class Measure(loop.Hook):
        every = 1000

        def on_step(self, state) -> None:
            state.report({"eval/mean_reward": float(state.step)})

        def on_end(self, state) -> None:
            state.report({"eval/mean_reward": -1.0})
            state.final_eval = "final"

    class Write(loop.Hook):
        stage = loop.Hook.WRITE

        def __init__(self) -> None:
            self.rows: list[tuple[int, dict]] = []
            self.final = None

        def on_step(self, state) -> None:
            if state.row:
                self.rows.append((state.step, dict(state.row)))
                state.row = {}

        def on_end(self, state) -> None:
            self.on_step(state)
            self.final = state.final_eval

    writer = Write()
    state = loop.LoopState(step=0, total_steps=2000)
    assert loop.run(StubAgent(per_call=500), None, state, [writer, Measure()]) is True
    assert writer.rows == [
        (1000, {"eval/mean_reward": 1000.0}),
        (2000, {"eval/mean_reward": 2000.0}),
        (2000, {"eval/mean_reward": -1.0}),
    ]
    assert writer.final == "final"


def test_untimed_hooks_do_not_count_as_training_time() -> None:
    import time

    class Slow(loop.Hook):
        def __init__(self, timed) -> None:
            self.timed = timed

        def on_step(self, state) -> None:
            time.sleep(0.05)

    for timed, expect_slow in ((False, False), (True, True)):
        state = loop.LoopState(step=0, total_steps=4)
        loop.run(StubAgent(per_call=1), None, state, [Slow(timed)])
        assert (state.train_seconds >= 0.15) is expect_slow, (timed, state.train_seconds)  # 4 sleeps: 0.2 s
        assert state.session_seconds == state.train_seconds


def test_progress_off_a_terminal_is_a_plain_line_each_tenth() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=60)
    state = loop.LoopState(step=0, total_steps=100_096)
    with TrainingProgress(100_096, 0, console=console) as bar:
        for step in range(0, 100_096 + 1, 1024):
            state.step = min(step, 100_096)
            state.session_seconds = 1.0 + step / 10_000
            bar.report(state, 42.0)
        state.step = 100_096
        bar.report(state, 42.0)
    lines = out.getvalue().splitlines()
    assert 10 <= len(lines) <= 11, lines
    assert all("\x1b" not in line and "\r" not in line for line in lines)  # no bar redraws
    assert lines[-1].startswith("100,096/100,096 (100%)") and "return 42.0" in lines[-1]
    assert all(len(line) > 60 for line in lines)  # never cut to the console width
