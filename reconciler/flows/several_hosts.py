"""One command over each daemon given (``-H`` repeated): each in turn, a failing one not stopping the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from reconciler.errors import ReconcilerError
from reconciler.flows.outcomes import HostFailure

T = TypeVar("T")


def for_each_host(
    hosts: tuple[str, ...],
    run: Callable[[str | None], T],
    on_start: Callable[[str], None] | None = None,
    on_outcome: Callable[[T | HostFailure], None] | None = None,
) -> list[T | HostFailure]:
    """``run`` for each host given (or once for the default daemon), in order.

    With one daemon its errors end the command as usual. With several, a daemon whose turn
    ends in an error is kept as a :class:`HostFailure` and the others still get their turn.
    ``on_start`` hears of each of several hosts before its turn, ``on_outcome`` of each outcome
    as its turn ends.
    """
    if len(hosts) <= 1:
        outcomes: list[T | HostFailure] = [run(hosts[0] if hosts else None)]
        if on_outcome is not None:
            on_outcome(outcomes[0])
        return outcomes
    outcomes = []
    for address in hosts:
        if on_start is not None:
            on_start(address)
        try:
            outcome: T | HostFailure = run(address)
        except ReconcilerError as exc:
            outcome = HostFailure(address, exc)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes
