"""Replace a file all at once: readers see the old content or the new, never a mix."""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path


def write_atomically(path: str | os.PathLike[str], text: str, mode: int | None = None) -> None:
    """Write ``text`` to a temporary file beside ``path``, sync it, rename it over ``path``.

    ``mode`` sets the permissions (mkstemp makes 0600). Raises OSError.
    """
    import tempfile  # here: readers of the state directory (a plan) need not import it (nor shutil)

    target = Path(path)
    # The temporary file lives in the same directory, so os.replace is a rename on one file system.
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_directory(target.parent)


def _sync_directory(directory: Path) -> None:
    """The rename itself is durable only once the directory is synced (best effort)."""
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
