"""A host's turn in a run of ``plan`` or ``apply``: its deadline, and whether it may still write.

One host runs here, in the command's thread (:func:`one_host`); several run each in a thread of
their own (:mod:`reconciler.flows.several_hosts`, imported only for a run over several hosts).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from reconciler.model.deadline import NO_DEADLINE, Deadline

WRITE_WAIT = 5.0  # seconds an abandonment waits for a state write in progress to end


class Identified(Protocol):
    """An outcome that says which daemon it was (lock.daemon_identity), when known."""

    @property
    def daemon(self) -> str | None: ...


T = TypeVar("T", bound=Identified)


@dataclass
class Turn:
    """One host's turn: where it stands in the run, its deadline, and whether it may still write."""

    index: int
    address: str | None
    deadline: Deadline = NO_DEADLINE
    _abandoned: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def live(self) -> bool:
        return not self._abandoned

    def while_live(self, write: Callable[[], None]) -> None:
        """Run ``write`` (output, a state file) unless the turn was abandoned; never both at once."""
        with self._lock:
            if not self._abandoned:
                write()

    def abandon(self) -> None:
        """From now on nothing of this turn is written (a write already running may end first)."""
        got = self._lock.acquire(timeout=WRITE_WAIT)
        self._abandoned = True
        if got:
            self._lock.release()


@dataclass(frozen=True)
class HostRun:
    """How several hosts run: ``forks`` at once, each within ``host_timeout`` seconds (None: no limit)."""

    forks: int = 1
    host_timeout: float | None = None
    stopped: Callable[[], int | None] = lambda: None  # the signal that interrupted the run, if one did


ONE_AT_A_TIME = HostRun()  # the default: one host at a time, without a deadline


def one_host(
    address: str | None,
    run: Callable[[Turn], T],
    how: HostRun = ONE_AT_A_TIME,
    on_outcome: Callable[[Turn, T], None] | None = None,
) -> T:
    """``run`` for the one host at ``address`` (None: the default daemon), here: its errors end the
    command as usual; ``on_outcome`` hears of its outcome."""
    turn = Turn(0, address, Deadline.after(how.host_timeout))
    outcome = run(turn)
    if on_outcome is not None:
        on_outcome(turn, outcome)
    return outcome
