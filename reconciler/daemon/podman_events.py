"""Podman's events of a window, read so that none is left out.

Podman 4.3 answers ``GET /events`` (and ``/libpod/events``, and ``podman events``) with an
``until`` by reading its event log until a timer set to ``until`` fires: for a window in the
past the timer fires at once, so the answer holds part of the window or nothing (measured on
podman 4.3.1: one window gave 180 events or none, whole or fractional bounds alike). Without
``until`` and with ``stream=false`` it reads the log to its end and closes the answer, every
time. So the window is asked from the whole second before ``since``, without ``until``, and
cut to ``since``..``until`` here by each event's ``timeNano``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from reconciler.model.inventory import DaemonEvent


def podman_event_params(since: float) -> dict[str, str]:
    """The query of ``GET /events`` for a window from ``since``: whole seconds, widened, no ``until``."""
    return {"since": str(max(math.floor(since) - 1, 0)), "stream": "false"}


def within(events: Iterable[DaemonEvent], since: float, until: float) -> tuple[DaemonEvent, ...]:
    """The events from ``since`` to ``until``, oldest first."""
    return tuple(sorted((e for e in events if since <= e.time <= until), key=lambda e: e.time))
