"""Pull progress without a terminal: a line at least every 10 s while a pull runs."""

from __future__ import annotations

import io

from rich.console import Console

from reconciler.cli.progress import PlainPullLog
from reconciler.daemon.pulling import EventKind, PullEvent


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_long_pull_prints_a_line_at_least_every_ten_seconds() -> None:
    buffer = io.StringIO()
    clock = Clock()
    log = PlainPullLog(Console(file=buffer, width=200), every=10.0, clock=clock)
    ref = "reg.local/big:1"
    log(PullEvent(EventKind.START, ref))
    for second in range(1, 48):  # progress events every second, for 47 s: no line of their own
        clock.now = 100.0 + second
        log(PullEvent(EventKind.PROGRESS, ref, layers_done=1, layers_total=3, bytes_done=second * 4_000_000,
                      bytes_total=210_000_000))
        log.tick()
    clock.now = 148.0
    log(PullEvent(EventKind.DONE, ref, bytes_total=210_000_000, elapsed=48.0))
    log.tick()
    log.stop()
    lines = buffer.getvalue().splitlines()
    assert lines[0] == f"pulling {ref}"
    assert lines[1] == f"pulling {ref}: 40 MB of 210 MB, 1/3 layers, 10s so far"
    assert [line.rsplit(", ", 1)[1] for line in lines[1:-1]] == ["10s so far", "20s so far", "30s so far", "40s so far"]
    assert lines[-1] == f"pulled {ref} (210 MB) in 48.0s"


def test_a_stalled_pull_still_prints_and_nothing_after_it_ends() -> None:
    buffer = io.StringIO()
    clock = Clock()
    log = PlainPullLog(Console(file=buffer, width=200), every=10.0, clock=clock)
    log(PullEvent(EventKind.START, "reg.local/stuck:1"))
    clock.now = 111.0  # no event at all for 11 s
    log.tick()
    assert buffer.getvalue().splitlines()[-1] == "pulling reg.local/stuck:1: no bytes yet, 11s so far"
    log(PullEvent(EventKind.FAILED, "reg.local/stuck:1", reason="timed out", elapsed=12.0))
    clock.now = 200.0
    log.tick()
    log.stop()
    assert buffer.getvalue().splitlines()[-1] == "pull of reg.local/stuck:1 failed after 12.0s: timed out"
