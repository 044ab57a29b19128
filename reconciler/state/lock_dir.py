"""Which daemon a host is, and where its lock and holds live: what a plan needs to read the daemon's
holds, without :mod:`reconciler.state.lock`'s locking (an apply's)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from reconciler.daemon.host import DockerHost
from reconciler.errors import StateDirError
from reconciler.state.state_dir import daemon_key, ensure_state_dir

LOCK_DIR_ENV = "RECONCILE_LOCK_DIR"
SYSTEM_LOCK_DIR = Path("/run/lock")  # 1777 on Debian and most Linux systems


def daemon_identity(host: DockerHost) -> str:
    """What the lock of ``host`` is keyed on, and a saved plan's daemon, in words fit for a message.

    The daemon's ID, host name and data directory from ``GET /info`` (one call): daemons
    that share a key file share the ID, not the name and data directory both. A daemon
    that gives no ID is known by the real path of its unix socket, else by its normalised address.
    """
    address = host.address
    found = host.identity()
    if found.engine_id:
        parts = [f"engine ID {found.engine_id}"]
        if found.name:
            parts.append(f"name {found.name}")
        if found.root_dir:
            parts.append(f"data root {found.root_dir}")
        return ", ".join(parts)
    socket = unix_socket_path(address)
    if socket:
        return f"socket {os.path.realpath(socket)}"
    return f"address {daemon_key(address)}"


def unix_socket_path(address: str) -> str | None:
    """The socket path of a ``unix://`` address (``unix://x.sock`` is the relative ``x.sock``, as
    docker-py reads it); None for any other address."""
    try:
        parts = urlsplit(address.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("unix", "http+unix"):
        return None
    return (parts.netloc + parts.path) or None


def lock_directory(
    state_dir: Path,
    environ: Mapping[str, str] | None = None,
    system_dir: Path = SYSTEM_LOCK_DIR,
    *,
    create: bool = True,
) -> Path:
    """Where lock files (and holds) go: ``$RECONCILE_LOCK_DIR``, else ``system_dir`` (``/run/lock``)
    when it exists and this user may create files in it, else the state directory (created if
    needed, unless ``create`` is false: a reader then finds nothing in it)."""
    env = os.environ if environ is None else environ
    configured = env.get(LOCK_DIR_ENV)
    if configured:
        chosen = Path(configured)
        if not chosen.is_dir():
            raise StateDirError(
                f"The lock directory {chosen} (${LOCK_DIR_ENV}) does not exist or is not a directory. "
                f"Create it (mode 1777 when several users run reconcile), or unset ${LOCK_DIR_ENV}."
            )
        return chosen
    if system_dir.is_dir() and os.access(system_dir, os.W_OK | os.X_OK):
        return system_dir
    return ensure_state_dir(state_dir) if create else state_dir
