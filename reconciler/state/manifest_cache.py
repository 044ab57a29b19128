"""Manifests loaded by earlier runs, kept in the state directory: a cache, not state.

An entry is one pickled :class:`Manifest`, named by a digest of the file name as given, the
sha256 of the file's bytes and the code that loads them (this version, the Python that runs it,
and the size and time of every module of ``loading/`` and ``model/`` and of the schemas): a
changed file, a changed loader or another Python finds no entry and loads the manifest again.
Which loads may be kept is ``loading/manifest_file``'s to say.

Only this user's own entries are read, and unpickled with nothing but the classes of
``model/manifest`` and ``model/reference`` (an entry naming any other callable is not one of
ours, and is ignored). A missing, unreadable, foreign or corrupt entry is ignored too; writes
replace an entry at once, so concurrent runs read a whole entry or none. The directory keeps
the MAX_ENTRIES newest entries.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import sys
from contextlib import suppress
from pathlib import Path

import reconciler
from reconciler.model import manifest as manifest_model
from reconciler.model import reference as reference_model
from reconciler.model.manifest import Manifest
from reconciler.state.atomic_file import write_atomically

CACHE_DIR = "manifests"
FORMAT = 1
MAX_ENTRIES = 32
MAX_ENTRY_BYTES = 64 * 1024 * 1024
# Where the loading code lives: a change to any of these files is a new loader.
_CODE = ("loading", "model", "schemas")

_ALLOWED = {
    module.__name__: {name for name, value in vars(module).items() if isinstance(value, type)
                      and value.__module__ == module.__name__}
    for module in (manifest_model, reference_model)
}


class ManifestCache:
    """:class:`reconciler.loading.manifest_file.LoadedManifests` in ``state_dir/manifests``."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / CACHE_DIR
        self._code: str | None = None

    def get(self, filename: str, digest: str) -> Manifest | None:
        try:
            with open(self._entry(filename, digest), "rb", opener=_no_follow) as handle:
                status = os.fstat(handle.fileno())
                if status.st_uid != os.geteuid() or status.st_size > MAX_ENTRY_BYTES:
                    return None
                manifest = _Unpickler(io.BytesIO(handle.read())).load()
        except Exception:  # not an entry of ours, for any reason: the manifest is loaded again
            return None
        if not isinstance(manifest, Manifest) or manifest.path != filename or manifest.digest != digest:
            return None
        return manifest

    def put(self, manifest: Manifest) -> None:
        with suppress(Exception):  # a cache: a run that cannot keep its load only loads again next time
            data = pickle.dumps(manifest, protocol=pickle.HIGHEST_PROTOCOL)
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomically(self._entry(manifest.path, manifest.digest), data, mode=0o600)
            self._forget_oldest()

    def _entry(self, filename: str, digest: str) -> Path:
        if self._code is None:
            self._code = _code_signature()
        key = "\0".join((str(FORMAT), self._code, filename, digest))
        return self.directory / (hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:40] + ".pickle")

    def _forget_oldest(self) -> None:
        entries = [entry for entry in os.scandir(self.directory) if entry.name.endswith(".pickle")]
        if len(entries) <= MAX_ENTRIES:
            return
        entries.sort(key=lambda entry: entry.stat().st_mtime_ns)
        for entry in entries[: len(entries) - MAX_ENTRIES]:
            with suppress(OSError):  # another run may have removed it first
                os.unlink(entry.path)


def _code_signature() -> str:
    """This version, this Python, and the size and modification time of each loading module."""
    package = Path(reconciler.__file__).parent
    parts = [reconciler.__version__, sys.version]
    for folder in _CODE:
        with suppress(OSError):
            for entry in sorted(os.scandir(package / folder), key=lambda e: e.name):
                if entry.is_file():
                    status = entry.stat()
                    parts.append(f"{folder}/{entry.name}:{status.st_size}:{status.st_mtime_ns}")
    return "\n".join(parts)


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


class _Unpickler(pickle.Unpickler):
    """Makes nothing but the model's own classes: an entry cannot call anything else."""

    def find_class(self, module: str, name: str) -> type:
        if name in _ALLOWED.get(module, ()):
            return super().find_class(module, name)  # type: ignore[no-any-return]
        raise pickle.UnpicklingError(f"{module}.{name} is not a class of the manifest")
