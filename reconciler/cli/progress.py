"""Show pulls while they run: a live display on a terminal, one line per event otherwise.

Fed :class:`~reconciler.daemon.pulling.PullEvent`\\ s from the pull threads; both displays
are safe to call from several threads. Output goes to stderr, so stdout keeps only
the plan and the report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from reconciler.cli.console import Printer
from reconciler.cli.markup import escape
from reconciler.cli.render import human_bytes
from reconciler.daemon.pulling import EventKind, PullEvent

PROGRESS_EVERY = 10.0  # seconds: the longest a running pull stays silent in a log


class PullDisplay(Protocol):
    def __call__(self, event: PullEvent) -> None: ...

    def stop(self) -> None: ...


def plain_line(event: PullEvent) -> str | None:
    """The one-line message for ``event``, or None for events shown only live."""
    if event.kind is EventKind.START:
        return f"pulling {event.ref}"
    if event.kind is EventKind.RETRY:
        return f"retrying {event.ref} in {event.delay:.0f}s: {event.reason}"
    if event.kind is EventKind.DONE and event.all_present:
        return f"pulled {event.ref} in {event.elapsed:.1f}s: all layers already present"
    if event.kind is EventKind.DONE:
        return f"pulled {event.ref} ({human_bytes(event.bytes_total)}) in {event.elapsed:.1f}s"
    if event.kind is EventKind.FAILED:
        return f"pull of {event.ref} failed after {event.elapsed:.1f}s: {event.reason}"
    return None


def progress_line(event: PullEvent, running_for: float) -> str:
    """How far a pull is, for logs without a live display."""
    done = human_bytes(event.bytes_done) if event.bytes_total else "no bytes yet"
    of = f" of {human_bytes(event.bytes_total)}" if event.bytes_total else ""
    layers = f", {event.layers_done}/{event.layers_total} layers" if event.layers_total else ""
    return f"pulling {event.ref}: {done}{of}{layers}, {running_for:.0f}s so far"


class PlainPullLog:
    """One line per start, retry, end, and for a long pull one line at least every
    ``every`` seconds (the last progress it had): readable in CI logs, where a live display
    is noise and silence looks like a hang."""

    def __init__(
        self,
        console: Printer,
        prefix: str = "",
        every: float = PROGRESS_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``prefix`` starts every line (the host's name, when there are several)."""
        self._console = console
        self._prefix = prefix
        self._lock = threading.Lock()
        self._every = every
        self._clock = clock
        self._running: dict[
            str, tuple[PullEvent, float, float]
        ] = {}  # ref -> (last event, started, last line)
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __call__(self, event: PullEvent) -> None:
        line = plain_line(event)
        now = self._clock()
        with self._lock:
            if event.kind in (EventKind.DONE, EventKind.FAILED):
                self._running.pop(event.ref, None)
            else:
                _, started, last = self._running.get(event.ref, (event, now, now))
                self._running[event.ref] = (event, started, now if line is not None else last)
            if line is not None:
                self._console.print(escape(self._prefix + line), highlight=False)
            if self._ticker is None and not self._stop.is_set():
                self._ticker = threading.Thread(
                    target=self._tick, name="pull-progress", daemon=True
                )
                self._ticker.start()

    def tick(self) -> None:
        """Print a line for each pull that has been quiet for ``every`` seconds."""
        now = self._clock()
        with self._lock:
            for ref, (event, started, last) in list(self._running.items()):
                if now - last >= self._every:
                    self._console.print(
                        escape(self._prefix + progress_line(event, now - started)), highlight=False
                    )
                    self._running[ref] = (event, started, now)

    def _tick(self) -> None:
        while not self._stop.wait(min(1.0, self._every)):
            self.tick()

    def stop(self) -> None:
        """No more lines, not even a late tick."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()


class LivePullProgress:
    """A bar per image: layers done/total, bytes, rate; started at the first event."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[layers]}"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False

    def __call__(self, event: PullEvent) -> None:
        with self._lock:
            if self._stopped:
                return
            if not self._started:
                self._progress.start()
                self._started = True
            task = self._tasks.get(event.ref)
            if task is None:
                task = self._progress.add_task(escape(event.ref), total=None, layers="")
                self._tasks[event.ref] = task
            self._update(task, event)

    def _update(self, task: TaskID, event: PullEvent) -> None:
        name = escape(event.ref)
        layers = f"{event.layers_done}/{event.layers_total} layers" if event.layers_total else ""
        if event.kind is EventKind.PROGRESS or event.kind is EventKind.DONE:
            total = event.bytes_total or None
            done = event.bytes_total if event.kind is EventKind.DONE else event.bytes_done
            description = f"[green]pulled[/] {name}" if event.kind is EventKind.DONE else name
            if event.all_present:
                description += ", all layers already present"
            self._progress.update(
                task, description=description, completed=done, total=total, layers=layers
            )
        elif event.kind is EventKind.RETRY:
            # The reason goes above the bars, once: in a bar it would squeeze every row for the rest of the run.
            self._progress.console.print(
                f"[yellow]{escape(plain_line(event) or '')}[/]", highlight=False
            )
            self._progress.update(
                task, description=f"{name} [yellow]retry in {event.delay:.0f}s[/]"
            )
        elif event.kind is EventKind.FAILED:
            self._progress.console.print(
                f"[red]{escape(plain_line(event) or '')}[/]", highlight=False
            )
            self._progress.update(task, description=f"{name} [red]failed[/]")

    def stop(self) -> None:
        """End the live display (idempotent), before anything else is printed."""
        with self._lock:
            if self._started and not self._stopped:
                self._progress.stop()
            self._stopped = True


def pull_display(console: Printer) -> PullDisplay:
    """The live display on a terminal, plain lines everywhere else."""
    if console.is_terminal and isinstance(console, Console):
        return LivePullProgress(console)
    return PlainPullLog(console)
