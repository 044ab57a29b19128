"""``reconcile watch``: a long-running recorder of one daemon's usage facts, beside cron's applies.

Every ``interval`` seconds it reads the daemon's events since the last round (far inside the
daemon's 256-event memory), the images and containers, and folds what they say (last use,
arrival, where tags pointed) into the usage state that ``plan`` and ``apply`` read. A daemon
that goes away is waited for; a stop request ends it between rounds.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler.daemon.address import connect
from reconciler.daemon.host import DockerHost
from reconciler.errors import DaemonError, DaemonUnavailable, ReconcilerError
from reconciler.flows.host_facts import learn_usage, read_inventory
from reconciler.model.clock import epoch_now
from reconciler.state.state_dir import ensure_state_dir
from reconciler.state.usage_store import read_usage, record_usage


@dataclass(frozen=True)
class WatchOptions:
    state_dir: Path
    warn: Callable[[str], None]
    interval: float = 5.0
    rounds: int | None = None  # stop after this many rounds (None: until stopped)
    context: str | None = None  # --context: the Docker context to use when no --host is given


def watch_host(address: str | None, options: WatchOptions, stop: threading.Event) -> int:
    """Record rounds until ``stop`` is set (or ``options.rounds`` are done); returns the rounds recorded."""
    state = ensure_state_dir(options.state_dir)
    host: DockerHost | None = None
    recorded = 0
    while not stop.is_set() and (options.rounds is None or recorded < options.rounds):
        try:
            host = host or connect(address, context=options.context)
            record_round(host, state, options.warn)
            recorded += 1
        except (DaemonUnavailable, DaemonError) as exc:
            options.warn(f"{exc} Trying again in {options.interval:g}s.")
            if host is not None:
                host.close()
            host = None
        except (sqlite3.Error, OSError, ReconcilerError) as exc:
            options.warn(f"The usage state could not be written to {state} ({exc}); trying again.")
        if options.rounds is not None and recorded >= options.rounds:
            break
        stop.wait(options.interval)
    if host is not None:
        host.close()
    return recorded


def record_round(host: DockerHost, state_dir: Path, warn: Callable[[str], None]) -> None:
    """One round: what the daemon's events and lists say since the last round, stored."""
    now = epoch_now()
    inventory = read_inventory(host)
    learning = learn_usage(host, inventory, read_usage(state_dir, host.address), (), now)
    if learning.gap:
        warn(learning.gap)
    record_usage(state_dir, host.address, learning.facts, now, anchor=learning.anchor)
