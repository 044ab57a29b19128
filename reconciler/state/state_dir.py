"""Where reconcile keeps its state between runs (locks, run history), and the daemon key into it."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from reconciler.errors import StateDirError

STATE_DIR_ENV = "RECONCILE_STATE_DIR"


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/reconciler``, else ``~/.local/state/reconciler``."""
    env = os.environ if environ is None else environ
    # The XDG spec says a relative $XDG_STATE_HOME is invalid and must be ignored.
    base = env.get("XDG_STATE_HOME", "")
    if base and os.path.isabs(base):
        return Path(base) / "reconciler"
    return Path(env.get("HOME") or Path.home()) / ".local" / "state" / "reconciler"


def ensure_state_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700, parents as needed) unless it exists; return it."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateDirError(
            f"Cannot create the state directory {path}: {exc.strerror or exc}. "
            f"Pick a writable one with --state-dir or ${STATE_DIR_ENV}."
        ) from exc
    if not path.is_dir():
        raise StateDirError(
            f"The state directory {path} exists but is not a directory. "
            f"Pick another with --state-dir or ${STATE_DIR_ENV}."
        )
    if not os.access(path, os.W_OK | os.X_OK):
        # Refused before the run starts: the history and usage state of a whole run would be lost.
        raise StateDirError(
            f"The state directory {path} is not writable by this user, so the run history and usage state "
            f"could not be kept. Pick a writable one with --state-dir or ${STATE_DIR_ENV}, or fix its permissions."
        )
    return path


def daemon_key(address: str) -> str:
    """The daemon address in one spelling: lower-case scheme and host, no trailing slash.

    ``unix:///run//docker.sock/`` and ``unix:///run/docker.sock`` name the same daemon,
    and must share one lock and one history.
    """
    text = address.strip()
    try:
        parts = urlsplit(text)
    except ValueError:  # such as "tcp://[::1": not an address, so only its own spelling matches it
        return text.rstrip("/")
    scheme = parts.scheme.lower()
    if scheme in ("unix", "npipe"):
        path = parts.path or parts.netloc
        return f"{scheme}://{posixpath.normpath(path)}" if path else text
    if scheme and parts.netloc:
        return f"{scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"
    return text.rstrip("/")
