"""Replace a file all at once: readers see the old content or the new, never a mix; and read back
a JSON document so written, of one format."""

from __future__ import annotations

import json
import os
from contextlib import suppress
from pathlib import Path
from typing import Any


def read_document(path: Path, expected: int) -> dict[str, Any] | None:
    """The JSON object in ``path`` when its ``format`` is ``expected``; None when the file is missing,
    unreadable, not JSON, or another format (a cache then reads everything again)."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict) or document.get("format") != expected:
        return None
    return document


def write_atomically(path: str | os.PathLike[str], text: str | bytes, mode: int | None = None) -> None:
    """Write ``text`` (or bytes) to a temporary file beside ``path``, sync it, rename it over ``path``.

    ``mode`` sets the permissions (mkstemp makes 0600). Raises OSError.
    """
    target = Path(path)
    # The temporary file lives in the same directory, so os.replace is a rename on one file system.
    handle, temporary = _temporary_beside(target)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(text.encode("utf-8") if isinstance(text, str) else text)
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


def _temporary_beside(target: Path) -> tuple[int, str]:
    """A new file of mode 0600 beside ``target``, as ``tempfile.mkstemp`` makes one; without
    importing tempfile (and with it shutil and random), which a plan writing a cache entry has no other use for."""
    for _ in range(100):
        temporary = str(target.parent / f".{target.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"no unused temporary name beside {target}")


def _sync_directory(directory: Path) -> None:
    """The rename itself is durable only once the directory is synced (best effort)."""
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
