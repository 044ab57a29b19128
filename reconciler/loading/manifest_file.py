"""A manifest file read once, and loaded through the loads kept from earlier runs of the same bytes.

Loading is a pure function of the file's bytes, apart from ``${VAR}`` (the environment) and
``source: build``/``load`` (files beside the manifest, which must exist). A manifest with neither
loads the same way every time, so a run may take what an earlier run loaded from the same bytes
(:class:`LoadedManifests`, kept in the state directory by ``state/manifest_cache``) instead of
parsing, validating and checking it again. On such a hit the loading passes, PyYAML among them,
are not even imported. Nothing is kept of a manifest that was refused: its every problem is
found and reported anew.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from reconciler.errors import Diagnostic, ManifestError

if TYPE_CHECKING:
    from reconciler.model.manifest import Manifest

MAX_BYTES = 1024 * 1024  # the most a manifest may be


class LoadedManifests(Protocol):
    """Manifests loaded before, by file name (as given) and the sha256 of the file's bytes."""

    def get(self, filename: str, digest: str) -> Manifest | None: ...

    def put(self, manifest: Manifest) -> None: ...


def read_file_bounded(filename: str) -> bytes:
    """The file's bytes, at most one past MAX_BYTES; a ManifestError naming it when it cannot be read."""
    # One byte past the bound is enough to tell the file is too large.
    if filename == "-":  # the manifest on stdin, as `kubectl apply -f -` reads one
        return sys.stdin.buffer.read(MAX_BYTES + 1)
    try:
        with open(filename, "rb") as handle:
            return handle.read(MAX_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        message = f"cannot read the file: {reason}."
        raise ManifestError([Diagnostic(filename, "", 0, 0, message)]) from exc


def file_digest(data: bytes) -> str:
    """``Manifest.digest``: what a saved plan and a kept load are checked against."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def load_manifest_file(
    path: str | os.PathLike[str], loaded: LoadedManifests, environ: Mapping[str, str] | None = None
) -> Manifest:
    """:func:`reconciler.loading.loader.load_manifest`, taking or keeping the load in ``loaded``
    when the manifest's load depends on its bytes alone (no ``$`` in them, no local source)."""
    filename = os.fspath(path)
    data = read_file_bounded(filename)
    digest = file_digest(data)
    keepable = filename != "-" and b"$" not in data
    if keepable and (manifest := loaded.get(filename, digest)) is not None:
        return manifest
    # Imported only here: a run that takes an earlier load needs none of the loading passes, nor PyYAML.
    from reconciler.loading.loader import manifest_from_bytes

    manifest = manifest_from_bytes(data, filename, environ, digest)
    if keepable and all(s.build is None and s.archive is None for s in manifest.images):
        _ = manifest.declared  # kept with it: every plan asks, and a large manifest's costs more than its load
        loaded.put(manifest)
    return manifest
