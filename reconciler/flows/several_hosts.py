"""One command over several daemons: up to ``forks`` at once, each within its own deadline.

Each host runs in a thread of its own (the work is waiting on daemons and registries). A host
whose turn ends in an error is kept as a :class:`HostFailure`; one that is still running
``ABANDON_GRACE`` seconds after its deadline is given up: its outcome is a HostFailure, its
:class:`Turn` is closed (whatever the thread still does, it can no longer print or write
reconcile's state: flows and consoles ask ``turn.live`` / ``turn.while_live``), and the thread
(a daemon thread) is left behind, so the process still exits when the run is over.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from reconciler.errors import HostTimedOut, Interrupted, ReconcilerError
from reconciler.flows.outcomes import HostFailure
from reconciler.flows.turn import ONE_AT_A_TIME, HostRun, Identified, Turn, one_host
from reconciler.model.deadline import Deadline

T = TypeVar("T", bound=Identified)

ABANDON_GRACE = 5.0  # seconds past a host's deadline before its thread is given up
POLL = 0.1  # seconds between looks at the clock while hosts run


def for_each_host(
    hosts: Sequence[str | None],
    run: Callable[[Turn], T],
    how: HostRun = ONE_AT_A_TIME,
    on_outcome: Callable[[Turn, T | HostFailure], None] | None = None,
    on_same_daemon: Callable[[str], None] | None = None,
) -> list[T | HostFailure]:
    """``run`` for each host given (``[None]``: the default daemon); the outcomes in the order given.

    With one host, it runs here and its errors end the command as usual. With several, each
    error is that host's outcome; ``on_outcome`` hears of each as it ends (in the order they
    end, one at a time, from this thread) and ``on_same_daemon`` (a sentence) of an address
    that reached a daemon an earlier address reached: it had its turn, twice over.
    """
    if len(hosts) <= 1:
        return [one_host(hosts[0] if hosts else None, run, how, on_outcome)]
    outcomes = _run_concurrently(hosts, run, how, on_outcome)
    if on_same_daemon is not None:
        _name_same_daemons(hosts, outcomes, on_same_daemon)
    return outcomes


def _run_concurrently(
    hosts: Sequence[str | None],
    run: Callable[[Turn], T],
    how: HostRun,
    on_outcome: Callable[[Turn, T | HostFailure], None] | None,
) -> list[T | HostFailure]:
    finished: queue.Queue[tuple[Turn, T | HostFailure]] = queue.Queue()
    waiting = list(reversed(range(len(hosts))))
    running: dict[int, Turn] = {}
    outcomes: dict[int, T | HostFailure] = {}

    def host_thread(turn: Turn) -> None:
        try:
            outcome: T | HostFailure = run(turn)
        except ReconcilerError as exc:
            outcome = HostFailure(str(turn.address), exc)
        except Exception as exc:  # a bug on one host is that host's failure, not the run's end
            outcome = HostFailure(str(turn.address), ReconcilerError(f"unexpected error: {type(exc).__name__}: {exc}"))
        finished.put((turn, outcome))

    def end(turn: Turn, outcome: T | HostFailure) -> None:
        running.pop(turn.index, None)
        outcomes[turn.index] = outcome
        if on_outcome is not None:
            on_outcome(turn, outcome)

    while waiting or running:
        signal_number = how.stopped()
        while waiting and len(running) < max(1, how.forks) and signal_number is None:
            index = waiting.pop()
            turn = Turn(index, hosts[index], Deadline.after(how.host_timeout))
            running[index] = turn
            threading.Thread(target=host_thread, args=(turn,), name=f"host-{index}", daemon=True).start()
        if signal_number is not None:
            while waiting:  # an interrupted run starts no further host
                index = waiting.pop()
                error = Interrupted("not started: the run was interrupted", signal_number)
                end(Turn(index, hosts[index]), HostFailure(str(hosts[index]), error))
        try:
            turn, outcome = finished.get(timeout=POLL)
        except queue.Empty:
            _abandon_overdue(running, end)
            continue
        if turn.index in running:  # else it was abandoned already: its late outcome is dropped
            end(turn, outcome)
    return [outcomes[index] for index in range(len(hosts))]


def _abandon_overdue(running: dict[int, Turn], end: Callable[[Turn, HostFailure], None]) -> None:
    for turn in list(running.values()):
        left = turn.deadline.left()
        if left is None or left > -ABANDON_GRACE:
            continue
        turn.abandon()
        seconds = turn.deadline.seconds or 0.0
        error = HostTimedOut(
            f"The Docker daemon at {turn.address} did not finish within the host deadline (--host-timeout "
            f"{seconds:g}s), nor {ABANDON_GRACE:g}s after it; it was given up and nothing more of it is reported."
        )
        end(turn, HostFailure(str(turn.address), error))


def _name_same_daemons(
    hosts: Sequence[str | None], outcomes: Sequence[Identified | HostFailure], say: Callable[[str], None]
) -> None:
    seen: dict[str, str] = {}  # daemon identity -> the first address that reached it
    for address, outcome in zip(hosts, outcomes, strict=True):
        daemon = None if isinstance(outcome, HostFailure) else outcome.daemon
        if daemon is None:
            continue
        if daemon in seen:
            earlier = seen[daemon]
            what = f"{address} was given twice" if earlier == address else f"{address} is the same daemon as {earlier}"
            say(f"{what} ({daemon}): it had a turn for each. Give each daemon once.")
        seen.setdefault(daemon, str(address))

