"""Load images.yaml into a :class:`Manifest`, reporting every problem at once.

Four passes over plain data, each adding diagnostics rather than stopping:
read the YAML (:mod:`reconciler.loading.yaml_source`), substitute environment
variables in string values (:mod:`reconciler.loading.env_substitution`), validate
against the JSON Schema (:mod:`reconciler.loading.schema_messages`), then check what
a schema cannot say (reference grammar, repositories and aliases declared
twice: :mod:`reconciler.loading.images_section`; the paths of built and loaded images:
:mod:`reconciler.loading.local_sources`; the ``retention:`` section:
:mod:`reconciler.loading.retention_section`). Only when no pass found anything is a
Manifest built.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from reconciler.errors import Diagnostic, ManifestError
from reconciler.loading.build_cache_section import build_cache_spec
from reconciler.loading.env_substitution import substitute_all
from reconciler.loading.images_section import Semantics
from reconciler.loading.local_sources import resolve_local_sources
from reconciler.loading.manifest_file import file_digest, read_file_bounded
from reconciler.loading.retention_section import RetentionBuilder
from reconciler.loading.schema_messages import schema_diagnostics
from reconciler.loading.yaml_source import (
    Plain,
    SourceDocument,
    read_yaml,
    read_yaml_bytes,
)
from reconciler.model.manifest import Manifest, PruneSpec


def load_manifest(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> Manifest:
    """Read, validate and normalise the manifest at ``path``.

    ``environ`` supplies ``${VAR}`` values (default: the process environment).
    Raises :class:`ManifestError` carrying every problem found, in line order.
    """
    filename = os.fspath(path)
    return manifest_from_bytes(read_file_bounded(filename), filename, environ)


def manifest_from_bytes(
    data: bytes, filename: str, environ: Mapping[str, str] | None = None, digest: str | None = None
) -> Manifest:
    """Like :func:`load_manifest`, for the file's bytes already read (``digest``: their sha256, if known)."""
    document = read_yaml_bytes(data, filename)
    return _build(document, _environment(environ), digest or file_digest(data))


def load_manifest_text(
    text: str, filename: str, environ: Mapping[str, str] | None = None
) -> Manifest:
    """Like :func:`load_manifest`, for text already in memory; ``filename`` names it."""
    document = read_yaml(text, filename)
    return _build(document, _environment(environ), file_digest(text.encode("utf-8")))


def _environment(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _build(document: SourceDocument, environ: Mapping[str, str], digest: str) -> Manifest:
    diagnostics = list(document.diagnostics)
    data, found = substitute_all(document, environ)
    diagnostics += found
    _type_numbers(document, data)
    diagnostics += schema_diagnostics(document, data)
    flawed = {index for d in diagnostics if (index := _entry_index(d.path)) is not None}
    images, found = Semantics(document).check(data.get("images"), flawed)
    diagnostics += found
    images, found = resolve_local_sources(document, images)
    diagnostics += found
    retention_flawed = any(d.path.startswith("retention") for d in diagnostics)
    retention = RetentionBuilder(document)
    retention_spec = None if retention_flawed else retention.build(data.get("retention"))
    diagnostics += retention.diagnostics
    cache_flawed = any(d.path.startswith("build_cache") for d in diagnostics)
    cache_spec, found = (None, []) if cache_flawed else build_cache_spec(document, data.get("build_cache"))
    diagnostics += found
    if diagnostics:
        raise ManifestError(_in_line_order(diagnostics))
    return Manifest(
        images=images,
        prune=_prune(data.get("prune")),
        retention=retention_spec,
        build_cache=cache_spec,
        path=document.filename,
        digest=digest,
    )


# Where the schema asks for a number (tests/unit/test_loader.py holds this to the schema).
NUMBER_FIELDS: tuple[tuple[str, ...], ...] = (("retention", "max_removal_percent"),)


def _type_numbers(document: SourceDocument, data: dict[str, Plain]) -> None:
    """An unquoted decimal (``2.5``, ``1e1``) where a number is asked for becomes that number:
    the reader keeps every decimal as written, since a tag ``1.10`` must not read as 1.1."""
    for path in NUMBER_FIELDS:
        parent: Plain = data
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        value = parent.get(path[-1]) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and isinstance(value, str) and path in document.plain_decimals:
            parent[path[-1]] = float(value)


def _in_line_order(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    unique = list(dict.fromkeys(diagnostics))
    # Path and message only break ties, so that the order never depends on the validator's.
    return sorted(unique, key=lambda d: (d.line, d.column, d.path, d.message))


_ENTRY_PATH = re.compile(r"images\[(\d+)\]")


def _entry_index(path: str) -> int | None:
    match = _ENTRY_PATH.match(path)
    return int(match.group(1)) if match else None


def _prune(value: Plain) -> PruneSpec:
    if not isinstance(value, dict):
        return PruneSpec()
    return PruneSpec(
        unlisted_tags=value.get("unlisted_tags") is True, dangling=value.get("dangling") is True
    )
