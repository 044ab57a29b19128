"""Everything a plan is decided from, read from one host in one stage (:mod:`reconciler.flows.host_facts`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.model.holds import Hold
from reconciler.model.inventory import Inventory

if TYPE_CHECKING:
    from collections.abc import Callable

    from reconciler.daemon.host import DiskUsageReport
    from reconciler.model.build_cache import BuildCacheRecord
    from reconciler.model.build_inputs import LocalFacts
    from reconciler.model.usage import EventMark, UsageFacts, UsageState


@dataclass(frozen=True)
class DiskUsage:
    """What the disk holding Docker's data looks like now, in bytes (a ``retention.disk`` budget's input)."""

    filesystem_size: int
    filesystem_used: int
    images_size: int  # bytes every image takes together, shared layers once


@dataclass(frozen=True)
class HostFacts:
    """One host as the decision sees it; nothing here changes while a plan is decided."""

    inventory: Inventory
    # The stored usage, this run's facts folded in; None: not read (no retention:, --explain or apply).
    usage: UsageState | None = None
    learnt: tuple[UsageFacts, ...] = ()  # what this run learnt (events, tag snapshot), recorded by apply
    disk: DiskUsage | None = None  # read only for a disk budget
    sizes_read: bool = False  # the inventory carries the shared sizes of ``/system/df``
    event_gap: str | None = None  # why the daemon's events since the last run may be incomplete
    anchor: EventMark | None = None  # the newest daemon event this run saw, recorded by apply
    holds: tuple[Hold, ...] = ()  # the daemon's holds as recorded, expired ones included
    build_cache: tuple[BuildCacheRecord, ...] | None = None  # read only for a ``build_cache:`` section
    # The inputs of built and loaded images, read from local files; None: no entry is built or loaded.
    local: LocalFacts | None = None
    # The /system/df a retention plan's removals are sized with, asked while the plan is decided
    # (dockerd takes about a tenth of a second per 1,000 images); calling it waits for the answer.
    disk_usage_ahead: Callable[[], DiskUsageReport] | None = None
