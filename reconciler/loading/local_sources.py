"""The paths of ``source: build`` and ``source: load`` entries: resolved against the manifest's
directory, and checked to exist, so that a typo is a located error before anything runs."""

from __future__ import annotations

import dataclasses
import os
import re

from reconciler.errors import Diagnostic
from reconciler.loading.yaml_source import SourceDocument, YamlPath
from reconciler.model.manifest import ImageSpec

_ENTRY_PATH = re.compile(r"images\[(\d+)\]")


def resolve_local_sources(
    document: SourceDocument, specs: tuple[ImageSpec, ...]
) -> tuple[tuple[ImageSpec, ...], list[Diagnostic]]:
    """``specs`` with absolute context and archive paths; a diagnostic for each one that is missing."""
    base = _base_directory(document.filename)
    diagnostics: list[Diagnostic] = []
    resolved = []
    for spec in specs:
        match = _ENTRY_PATH.match(spec.source.path) if spec.source else None
        if match is None or (spec.build is None and spec.archive is None):
            resolved.append(spec)
            continue
        path: YamlPath = ("images", int(match.group(1)))
        problems = _check(spec, base)
        diagnostics += [document.diagnostic((*path, key), message) for key, message in problems]
        resolved.append(_absolute(spec, base))
    return tuple(resolved), diagnostics


def _base_directory(filename: str) -> str:
    """Paths are relative to the manifest file's directory (the working directory for stdin)."""
    if filename in ("-", "<memory>", "<stdin>"):
        return os.getcwd()
    return os.path.dirname(os.path.abspath(filename))


def _absolute(spec: ImageSpec, base: str) -> ImageSpec:
    if spec.build is not None:
        context = os.path.normpath(os.path.join(base, spec.build.context))
        return dataclasses.replace(spec, build=dataclasses.replace(spec.build, context=context))
    assert spec.archive is not None
    return dataclasses.replace(spec, archive=os.path.normpath(os.path.join(base, spec.archive)))


def _check(spec: ImageSpec, base: str) -> list[tuple[str, str]]:
    """(key, message) for each path of the entry that is not there."""
    if spec.archive is not None:
        archive = os.path.join(base, spec.archive)
        if not os.path.isfile(archive):
            return [
                (
                    "archive",
                    f"the archive {archive} is not a file; write the path of a `docker save` archive, relative to the manifest's directory.",
                )
            ]
        return []
    assert spec.build is not None
    context = os.path.normpath(os.path.join(base, spec.build.context))
    if not os.path.isdir(context):
        return [
            (
                "context",
                f"the build context {context} is not a directory; write a directory relative to the manifest's directory.",
            )
        ]
    dockerfile = os.path.normpath(os.path.join(context, spec.build.dockerfile))
    if os.path.commonpath([context, dockerfile]) != context:
        return [
            (
                "dockerfile",
                f"the Dockerfile {spec.build.dockerfile!r} is outside the build context {context}; move it into the context.",
            )
        ]
    if not os.path.isfile(dockerfile):
        return [
            (
                "dockerfile" if spec.build.dockerfile != "Dockerfile" else "context",
                f"there is no Dockerfile {dockerfile}; add it, or name another with dockerfile: (relative to the context).",
            )
        ]
    return []
