"""Which BuildKit build cache records go under a ``build_cache:`` section. Pure.

In this order: a record a running build uses stays, and so does a shared one (its data is
also an image's layers or another record's: pruning it frees nothing); the others go when
unused for longer than ``unused_for`` (last use, else creation); then, while what is left
takes more than ``keep_storage`` bytes, the least recently used (ties by id) go.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.model.build_cache import BuildCacheRecord
from reconciler.model.manifest import BuildCacheSpec
from reconciler.model.plan import Action, Step
from reconciler.model.units import format_age, format_duration, format_size


def plan_build_cache(spec: BuildCacheSpec, records: Iterable[BuildCacheRecord], now: float) -> tuple[Step, ...]:
    """A ``prune-cache`` step per record that goes, sorted by id; ``bytes`` is its size."""
    records = tuple(records)
    candidates = sorted((r for r in records if not r.in_use and not r.shared), key=lambda r: (r.used_at, r.id))
    going: dict[str, str] = {}
    if spec.unused_for is not None:
        for record in candidates:
            idle = now - record.used_at
            if idle > spec.unused_for:
                going[record.id] = (
                    f"build cache: {_what(record)} unused for {format_age(idle)}, over unused_for {format_duration(spec.unused_for)}"
                )
    if spec.keep_storage is not None:
        # What the cache takes is what `docker system df` counts: the records shared with nothing.
        total = sum(r.size for r in records if not r.shared) - sum(r.size for r in candidates if r.id in going)
        for record in candidates:
            if total <= spec.keep_storage:
                break
            if record.id in going:
                continue
            going[record.id] = (
                f"build cache: {_what(record)} least recently used (last use {format_age(now - record.used_at)} ago);"
                f" the cache takes {format_size(total)}, over keep_storage {format_size(spec.keep_storage)}"
            )
            total -= record.size
    by_id = {r.id: r for r in candidates}
    return tuple(
        Step(action=Action.PRUNE_CACHE, ref=record_id, reason=going[record_id], bytes=by_id[record_id].size)
        for record_id in sorted(going)
    )


def _what(record: BuildCacheRecord) -> str:
    described = f" ({record.description})" if record.description else ""
    return f"{record.type} record{described}"
