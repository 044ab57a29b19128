"""``GET /system/df``'s ``BuildCache`` entries as records, and the prune filter of one record."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from reconciler.model.build_cache import BuildCacheRecord

_RECORD_ID = re.compile(r"[a-z0-9]{1,64}", re.ASCII)


def build_cache_from_df(usage: Mapping[str, Any]) -> tuple[BuildCacheRecord, ...]:
    """Every record (``BuildCache`` is null when BuildKit never ran), sorted by id."""
    records = [record_from_api(raw) for raw in usage.get("BuildCache") or () if isinstance(raw, Mapping)]
    return tuple(sorted(records, key=lambda r: r.id))


def record_from_api(raw: Mapping[str, Any]) -> BuildCacheRecord:
    created = _time(raw.get("CreatedAt")) or 0.0
    return BuildCacheRecord(
        id=str(raw.get("ID") or ""),
        type=str(raw.get("Type") or ""),
        description=str(raw.get("Description") or ""),
        size=int(raw.get("Size") or 0),
        created=created,
        last_used=_time(raw.get("LastUsedAt")),
        in_use=bool(raw.get("InUse")),
        shared=bool(raw.get("Shared")),
        usage_count=int(raw.get("UsageCount") or 0),
    )


def prune_filter(record_id: str) -> dict[str, list[str]]:
    """``POST /build/prune``'s filter for exactly one record.

    The daemon takes one value per filter and matches ``id`` as a regular expression
    (``abc`` would prune every record whose id contains it): anchored, it is that record only.
    """
    if not _RECORD_ID.fullmatch(record_id):
        raise ValueError(f"{record_id!r} is not a build cache record id")
    return {"id": [f"^{record_id}$"]}


def _time(value: Any) -> float | None:
    """An API time (RFC 3339, nanoseconds); None for none or Go's zero time."""
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
