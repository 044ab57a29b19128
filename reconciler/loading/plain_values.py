"""Typed reads of the plain data a manifest was parsed into, once the schema has judged it.

A value of the wrong type reads as absent: the schema has already reported it.
"""

from __future__ import annotations

from reconciler.loading.yaml_source import Plain


def as_text(value: Plain) -> str | None:
    """``value`` when it is a string, else None."""
    return value if isinstance(value, str) else None


def as_texts(value: Plain) -> list[str]:
    """The strings of ``value`` when it is a list, else an empty list."""
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
