"""One apply at a time per daemon: an exclusive ``flock`` on a file in the state directory.

``flock`` belongs to the open file, so the kernel drops it when its holder dies,
however it dies: a stale lock never needs breaking by hand. The file is never
deleted (unlinking a locked file lets a second process lock a new inode), and
the holder's pid, start time and command are written into it only for messages.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from reconciler.errors import LockHeld, StateDirError
from reconciler.state_dir import daemon_key, ensure_state_dir

POLL_SECONDS = 0.2


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock, as far as its file tells."""

    pid: int | None
    started: str  # UTC ISO 8601; empty when unknown
    command: str

    def describe(self) -> str:
        if self.pid is None:
            return "another process (it has not written its pid yet)"
        started = f", started {self.started}" if self.started else ""
        command = f", running `{self.command}`" if self.command else ""
        return f"process {self.pid}{started}{command}"


def lock_path(state_dir: Path, address: str) -> Path:
    """The lock file of the daemon at ``address``: named from a hash of its normalised address."""
    digest = hashlib.sha256(daemon_key(address).encode("utf-8")).hexdigest()[:20]
    return state_dir / f"daemon-{digest}.lock"


def read_holder(path: Path) -> LockHolder:
    """The holder written in ``path``; fields unknown when the file is empty or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    pid = data.get("pid")
    return LockHolder(
        pid=pid if isinstance(pid, int) else None,
        started=str(data.get("started") or ""),
        command=str(data.get("command") or ""),
    )


@contextmanager
def daemon_lock(
    state_dir: Path,
    address: str,
    timeout: float = 0.0,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Path]:
    """Hold the exclusive lock of the daemon at ``address`` for the ``with`` block.

    Polls for up to ``timeout`` seconds (0: one try), then raises :class:`LockHeld`
    naming the holder. Yields the lock file's path.
    """
    path = lock_path(ensure_state_dir(state_dir), address)
    fd = _open(path)
    try:
        deadline = clock() + timeout
        while not _try_lock(fd):
            remaining = deadline - clock()
            if remaining <= 0:
                raise LockHeld(_held_message(path, address, timeout))
            sleep(min(POLL_SECONDS, remaining))
        _write_holder(fd)
        try:
            yield path
        finally:
            _clear_holder(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        # flock works on a read-only descriptor: a file we may not write still locks.
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            raise StateDirError(
                f"Cannot open the lock file {path}: {exc.strerror or exc}. "
                "Pick a writable state directory with --state-dir."
            ) from exc


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _write_holder(fd: int) -> None:
    holder = {
        "pid": os.getpid(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["reconcile", *sys.argv[1:]]),
    }
    # The holder is only for messages: a full disk or read-only file must not stop the run.
    with suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)


def _clear_holder(fd: int) -> None:
    with suppress(OSError):
        os.ftruncate(fd, 0)


def _held_message(path: Path, address: str, timeout: float) -> str:
    holder = read_holder(path).describe()
    waited = f" and did not release it within {timeout:g}s" if timeout > 0 else ""
    return (
        f"Another apply on {address} is running: {holder} holds its lock{waited}. "
        "Try again when it has finished, or wait for it with --lock-timeout SECONDS."
    )
