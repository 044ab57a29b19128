"""Read the local files a manifest's built and loaded images are made from, before deciding:
each build's inputs (:mod:`reconciler.loading.build_context`), each archive's sha256, and what
earlier runs recorded (:mod:`reconciler.state.local_images`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.loading.build_context import read_build_inputs
from reconciler.model.build_inputs import BuildInputs, LocalFacts
from reconciler.model.manifest import Manifest
from reconciler.state.local_images import read_local_records

_CHUNK = 1 << 20


class ArchiveUnreadable(ReconcilerError):
    """A ``source: load`` archive could not be read."""


def read_local_facts(manifest: Manifest, state_dir: Path) -> LocalFacts:
    """Empty, without reading anything, when no entry is built or loaded."""
    inputs: dict[str, BuildInputs] = {}
    archives: dict[str, str] = {}
    for spec in manifest.present():
        if spec.build is not None and spec.tags:
            inputs[spec.tag_references()[0].canonical()] = read_build_inputs(spec.build)
        if spec.archive is not None and spec.archive not in archives:
            archives[spec.archive] = archive_digest(spec.archive)
    if not inputs and not archives:
        return LocalFacts()
    return LocalFacts(inputs, archives, read_local_records(state_dir))


def archive_digest(path: str) -> str:
    """``sha256:`` of the archive's bytes as they are on disk (compressed or not)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise ArchiveUnreadable(
            f"Cannot read the archive {path}: {exc.strerror or exc}. Make it readable, or fix archive: in the manifest."
        ) from exc
    return "sha256:" + digest.hexdigest()
