"""One apply at a time per daemon: an exclusive ``flock`` on a file every user of the machine shares.

The lock is keyed on the daemon itself, not on how its address is spelt: the ``ID``
that ``GET /info`` reports together with its ``Name`` and ``DockerRootDir`` (else the
real path of its unix socket, else its normalised address). So ``unix:///var/run/docker.sock``
and ``unix:///run/docker.sock``, a symlink to the socket, or ``tcp://localhost`` and
``tcp://127.0.0.1`` all take one lock. The ID alone is not enough: it comes from the
daemon's key file, which machines cloned from one image, and daemons started on one
machine without a key file of their own, share.
The file lives in a directory every user shares (``$RECONCILE_LOCK_DIR``, else
``/run/lock``, else the state directory), so root's cron job and a user's shell
contend too.

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
import stat
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import LockHeld, StateDirError
from reconciler.model.clock import utc_now
from reconciler.state.lock_dir import LOCK_DIR_ENV

POLL_SECONDS = 0.2
# Never follow a link someone put in a shared directory in place of the lock file.
_OPEN_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW


def lock_path(lock_dir: Path, identity: str) -> Path:
    """The lock file of the daemon known as ``identity`` (see :func:`daemon_identity`)."""
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()
    return lock_dir / f"reconcile-{digest}.lock"


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


def read_holder(path: Path) -> LockHolder:
    """The holder written in ``path``; fields unknown when the file is empty or unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        text = ""
    return _parse_holder(text)


def _holder_of(fd: int) -> LockHolder:
    """The holder written in the open lock file (read through our descriptor, never by path again)."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8")
    except (OSError, ValueError):
        text = ""
    return _parse_holder(text)


def _parse_holder(text: str) -> LockHolder:
    try:
        data = json.loads(text or "{}")
    except ValueError:
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
    lock_dir: Path,
    identity: str,
    timeout: float = 0.0,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Path]:
    """Hold the exclusive lock of the daemon known as ``identity`` for the ``with`` block.

    ``lock_dir`` is :func:`lock_directory`'s choice and ``identity`` :func:`daemon_identity`'s.
    Polls for up to ``timeout`` seconds (0: one try), then raises :class:`LockHeld`
    naming the holder. Yields the lock file's path.
    """
    path = lock_path(lock_dir, identity)
    fd = _open(path)
    try:
        deadline = clock() + timeout
        while not _try_lock(fd):
            remaining = deadline - clock()
            if remaining <= 0:
                raise LockHeld(_held_message(fd, identity, timeout))
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
    """Open (creating it readable and writable by every user) the lock file at ``path``."""
    try:
        fd = _open_shared(path)
    except OSError as exc:
        raise StateDirError(
            f"Cannot open the lock file {path}: {exc.strerror or exc}. "
            f"Point ${LOCK_DIR_ENV} at a directory every user of reconcile may write in."
        ) from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise StateDirError(
            f"The lock file {path} is not a plain file of its own (something else was put in its place). "
            "Remove it and try again."
        )
    return fd


def _open_shared(path: Path) -> int:
    try:
        return _open_existing(path)
    except FileNotFoundError:
        pass
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, 0o666)
    except FileExistsError:
        # Another process created it meanwhile. (Opening with O_CREAT alone would be refused
        # for a file of another user in a sticky directory such as /run/lock: protected_regular.)
        return _open_existing(path)
    with suppress(OSError):
        os.fchmod(fd, 0o666)  # the umask took bits off; every user must be able to open it
    return fd


def _open_existing(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | _OPEN_FLAGS)
    except PermissionError:
        # flock works on a read-only descriptor: a file we may only read still locks.
        # The holder is then not written (see _write_holder).
        return os.open(path, os.O_RDONLY | _OPEN_FLAGS)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _write_holder(fd: int) -> None:
    holder = {
        "pid": os.getpid(),
        "started": utc_now().isoformat(timespec="seconds"),
        "command": shlex.join(["reconcile", *sys.argv[1:]]),
    }
    # The holder is only for messages: a full disk or read-only file must not stop the run.
    with suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)


def _clear_holder(fd: int) -> None:
    with suppress(OSError):
        os.ftruncate(fd, 0)


def _held_message(fd: int, identity: str, timeout: float) -> str:
    holder = _holder_of(fd).describe()
    waited = f" and did not release it within {timeout:g}s" if timeout > 0 else ""
    return (
        f"Another apply on this Docker daemon ({identity}) is running: {holder} holds its lock{waited}. "
        "Try again when it has finished, or wait for it with --lock-timeout SECONDS."
    )
