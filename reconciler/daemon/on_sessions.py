"""Many independent reads of one daemon, a few at a time, each worker on its own session."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from reconciler.daemon.host import DockerHost

Item = TypeVar("Item")
Result = TypeVar("Result")


def map_on_sessions(
    host: DockerHost, items: Sequence[Item], read: Callable[[DockerHost, Item], Result], at_once: int
) -> list[Result]:
    """``read(session, item)`` for every item, in order, ``at_once`` at a time.

    A connection serves one request at a time (requests sessions are not thread-safe), so
    each worker has its own; one item, or ``at_once`` 1, runs here on ``host`` itself.
    The first error raised is raised here, once the running reads are done.
    """
    if len(items) <= 1 or at_once <= 1:
        return [read(host, item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    workers = min(at_once, len(items))
    sessions = [host.session() for _ in range(workers)]
    free = list(sessions)
    lock = threading.Lock()

    def one(item: Item) -> Result:
        with lock:
            session = free.pop()
        try:
            return read(session, item)
        finally:
            with lock:
                free.append(session)

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="read") as pool:
            return list(pool.map(one, items))
    finally:
        for session in sessions:
            session.close()
