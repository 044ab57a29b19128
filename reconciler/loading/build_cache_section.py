"""The ``build_cache:`` section of a manifest, built into a :class:`BuildCacheSpec`.

On a section the schema accepted (a mapping with ``keep_storage`` and/or ``unused_for``):
the size and the duration parsed, each problem at its line.
"""

from __future__ import annotations

from reconciler.errors import Diagnostic
from reconciler.loading.plain_values import as_text
from reconciler.loading.yaml_source import Plain, SourceDocument
from reconciler.model.manifest import BuildCacheSpec
from reconciler.model.units import UnitError, parse_duration, parse_size


def build_cache_spec(document: SourceDocument, raw: Plain) -> tuple[BuildCacheSpec | None, list[Diagnostic]]:
    if not isinstance(raw, dict):
        return None, []
    diagnostics: list[Diagnostic] = []
    values: dict[str, int | None] = {}
    for key, parser in (("keep_storage", parse_size), ("unused_for", parse_duration)):
        text = as_text(raw.get(key))
        values[key] = None
        if text is None:
            continue
        try:
            values[key] = parser(text)
        except UnitError as exc:
            diagnostics.append(document.diagnostic(("build_cache", key), str(exc)))
    return BuildCacheSpec(keep_storage=values["keep_storage"], unused_for=values["unused_for"]), diagnostics
