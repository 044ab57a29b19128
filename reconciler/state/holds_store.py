"""Holds on disk: one JSON file per daemon, where every user of the machine finds it, as the lock.

The files live in ``reconcile-holds/`` inside the lock directory
(:func:`~reconciler.state.lock_dir.lock_directory`: ``$RECONCILE_LOCK_DIR``, else ``/run/lock``,
else the state directory), keyed on the daemon's identity as its lock is, so root's cron
job honours a hold a CI user placed. That directory is made world-writable without the
sticky bit (mode 0777): a writer replaces the file (a temporary file, then a rename), and
in a sticky directory only the file's owner could. Writers take turns on an ``flock`` of a
lock file beside it, read, change, replace; readers take no lock and see the old file or
the new one, never a mix. A file that cannot be read as holds counts as none, with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from reconciler.errors import StateDirError
from reconciler.model.holds import Hold
from reconciler.state.atomic_file import write_atomically
from reconciler.state.lock_dir import LOCK_DIR_ENV

HOLDS_SUBDIR = "reconcile-holds"
FORMAT = "reconciler-holds"


def holds_path(lock_dir: Path, identity: str) -> Path:
    """The holds file of the daemon known as ``identity`` (see :func:`~reconciler.state.lock_dir.daemon_identity`)."""
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()
    return lock_dir / HOLDS_SUBDIR / f"{digest}.json"


def holds_recorded(lock_dir: Path) -> bool:
    """Whether a holds file of any daemon may be here: when not, no daemon's identity is needed to
    know it has none. A directory that cannot be looked into may hold some (reading them says why)."""
    try:
        with os.scandir(lock_dir / HOLDS_SUBDIR) as entries:
            return any(entry.name.endswith(".json") for entry in entries)
    except FileNotFoundError:
        return False
    except OSError:
        return True


def read_holds(lock_dir: Path, identity: str, warn: Callable[[str], None] | None = None) -> tuple[Hold, ...]:
    """Every hold recorded for the daemon, expired ones included; none when there is no file."""
    path = holds_path(lock_dir, identity)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return ()
    except OSError as exc:
        if warn:
            warn(f"The holds file {path} could not be read ({exc.strerror or exc}); no hold is honoured.")
        return ()
    with os.fdopen(fd, encoding="utf-8") as stream:
        text = stream.read()
    return _parse(text, path, warn)


def _parse(text: str, path: Path, warn: Callable[[str], None] | None) -> tuple[Hold, ...]:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("holds", []), list):
        if warn:
            warn(f"The holds file {path} is not one reconcile wrote; no hold in it is honoured. Remove it to start afresh.")
        return ()
    found = (Hold.from_dict(entry) for entry in data.get("holds", []))
    return tuple(hold for hold in found if hold is not None)


def add_hold(lock_dir: Path, identity: str, hold: Hold, now: float) -> tuple[Hold, ...]:
    """Record ``hold`` (dropping expired holds on the way); every hold of the daemon afterwards."""
    with _changing(lock_dir, identity, now) as holds:
        holds.append(hold)
        return tuple(holds)


def release_holds(lock_dir: Path, identity: str, matches: Callable[[Hold], bool], now: float) -> tuple[Hold, ...]:
    """Drop every hold ``matches`` accepts (and the expired ones); the holds released."""
    with _changing(lock_dir, identity, now) as holds:
        released = [h for h in holds if matches(h)]
        holds[:] = [h for h in holds if not matches(h)]
        return tuple(released)


def new_hold_id() -> str:
    import secrets  # placing a hold needs it; reading the holds (every plan) does not

    return secrets.token_hex(4)


def current_user() -> str:
    import getpass  # placing a hold needs it; reading the holds (every plan) does not

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


@contextlib.contextmanager
def _changing(lock_dir: Path, identity: str, now: float) -> Iterator[list[Hold]]:
    """The daemon's active holds as a list to change, written back atomically, under the writers' lock."""
    path = holds_path(lock_dir, identity)
    directory = _shared_directory(path.parent)
    lock_fd = _open_lock(directory / f"{path.stem}.lock")
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # writers hold it for a read, a change and a rename only
        holds = [h for h in read_holds(lock_dir, identity) if h.active(now)]
        yield holds
        _replace(path, json.dumps({"format": FORMAT, "holds": [h.as_dict() for h in holds]}, indent=2) + "\n")
    finally:
        os.close(lock_fd)


def _shared_directory(directory: Path) -> Path:
    try:
        directory.mkdir(mode=0o777, exist_ok=True)
        info = os.lstat(directory)
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
            os.chmod(directory, 0o777)  # the umask took bits off; every user must be able to replace the file
    except OSError as exc:
        raise StateDirError(
            f"Cannot create the holds directory {directory}: {exc.strerror or exc}. "
            f"Point ${LOCK_DIR_ENV} at a directory every user of reconcile may write in."
        ) from exc
    if not stat.S_ISDIR(info.st_mode):
        raise StateDirError(f"{directory} is not a directory (something else was put in its place). Remove it and try again.")
    return directory


def _open_lock(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except PermissionError:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)  # flock works on a read-only descriptor
    except OSError as exc:
        raise StateDirError(f"Cannot open {path}: {exc.strerror or exc}.") from exc
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666)
    return fd


def _replace(path: Path, text: str) -> None:
    try:
        write_atomically(path, text, mode=0o644)
    except OSError as exc:
        raise StateDirError(f"Cannot write the holds file {path}: {exc.strerror or exc}.") from exc
