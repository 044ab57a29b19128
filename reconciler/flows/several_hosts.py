"""One command over each daemon given (``-H`` repeated): each in turn, a failing one not stopping the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from reconciler.errors import ReconcilerError
from reconciler.flows.outcomes import HostFailure


class Identified(Protocol):
    """An outcome that says which daemon it was (lock.daemon_identity), when known."""

    @property
    def daemon(self) -> str | None: ...


T = TypeVar("T", bound=Identified)


def for_each_host(
    hosts: tuple[str, ...],
    run: Callable[[str | None], T],
    on_start: Callable[[str], None] | None = None,
    on_outcome: Callable[[T | HostFailure], None] | None = None,
    on_same_daemon: Callable[[str], None] | None = None,
) -> list[T | HostFailure]:
    """``run`` for each host given (or once for the default daemon), in order.

    With one daemon its errors end the command as usual. With several, a daemon whose turn
    ends in an error is kept as a :class:`HostFailure` and the others still get their turn.
    ``on_start`` hears of each of several hosts before its turn, ``on_outcome`` of each outcome
    as its turn ends, and ``on_same_daemon`` (a sentence) of an address that turned out to
    reach a daemon an earlier address reached: it had its turn, twice over.
    """
    if len(hosts) <= 1:
        outcomes: list[T | HostFailure] = [run(hosts[0] if hosts else None)]
        if on_outcome is not None:
            on_outcome(outcomes[0])
        return outcomes
    outcomes = []
    seen: dict[str, str] = {}  # daemon identity -> the first address that reached it
    for address in hosts:
        if on_start is not None:
            on_start(address)
        try:
            outcome: T | HostFailure = run(address)
        except ReconcilerError as exc:
            outcome = HostFailure(address, exc)
        daemon = None if isinstance(outcome, HostFailure) else outcome.daemon
        if daemon is not None and daemon in seen and on_same_daemon is not None:
            earlier = seen[daemon]
            what = f"{address} was given twice" if earlier == address else f"{address} is the same daemon as {earlier}"
            on_same_daemon(f"{what} ({daemon}): it had a turn for each. Give each daemon once.")
        if daemon is not None:
            seen.setdefault(daemon, address)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes
