"""A ``retention.disk`` budget against the host: how far over it is, and what the evictions free. Pure.

Retention's rung 6 evicts while the budget is exceeded (:mod:`reconciler.planning.retention`);
this module holds the figures it goes by, so ``plan --explain`` can say why that many
images go, and the sentences its decisions give.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.host_facts import DiskUsage
from reconciler.model.manifest import DiskBudget
from reconciler.model.units import format_size


def counted_bytes(size: int, unique: int | None) -> int:
    """What an image's removal counts against the budget: its unique size, else its full size.

    The full size bounds the unique size from above, so it can only make the budget evict less."""
    return size if unique is None else unique


@dataclass(frozen=True)
class BudgetCheck:
    """The budget, the host's figures before anything goes, and what the plan frees towards it."""

    budget: DiskBudget
    disk: DiskUsage
    removals_free: int  # counted bytes of the images the rules remove (they go first)
    evictions_free: int  # counted bytes of the images evicted for the budget
    evictions: int

    @property
    def over_max_total(self) -> int:
        """Bytes to free to meet max_total (0 when within it or without one)."""
        if self.budget.max_total is None:
            return 0
        return max(self.disk.images_size - self.budget.max_total, 0)

    @property
    def over_low(self) -> int:
        """Bytes to free to bring the disk down to ``low`` percent, once above ``high`` (else 0)."""
        budget, disk = self.budget, self.disk
        if budget.high is None or budget.low is None or disk.filesystem_size <= 0:
            return 0
        if disk.filesystem_used * 100 <= budget.high * disk.filesystem_size:
            return 0
        return max(disk.filesystem_used - int(budget.low * disk.filesystem_size / 100), 0)

    def summary(self) -> str:
        """``images take 315 MB; max_total 300 MB needs 15 MB freed; these evictions free 18 MB``."""
        budget, disk = self.budget, self.disk
        parts = []
        if budget.max_total is not None:
            limit = format_size(budget.max_total)
            need = self.over_max_total
            parts.append(
                f"images take {format_size(disk.images_size)}; "
                + (f"max_total {limit} needs {format_size(need)} freed" if need else f"within max_total {limit}")
            )
        if budget.high is not None and budget.low is not None and disk.filesystem_size > 0:
            full = f"the disk is {disk.filesystem_used * 100 / disk.filesystem_size:.1f}% full"
            need = self.over_low
            parts.append(
                f"{full}; over high {budget.high:g}%, down to low {budget.low:g}% needs {format_size(need)} freed"
                if need
                else f"{full}, within high {budget.high:g}%"
            )
        if self.removals_free:
            parts.append(f"the rules' removals free {format_size(self.removals_free)} first")
        if self.evictions:
            freed = format_size(self.evictions_free)
            parts.append(
                f"this eviction frees {freed}" if self.evictions == 1 else f"these {self.evictions} evictions free {freed}"
            )
        else:
            parts.append("nothing is evicted")
        return "; ".join(parts)


class EvictionReasons:
    """The sentences of one evaluation's evictions, each saying where the budget stood just
    before it; what every one of them repeats is worded once."""

    def __init__(self, budget: DiskBudget, disk: DiskUsage) -> None:
        self.max_total = None if budget.max_total is None else format_size(budget.max_total)
        self.low = budget.low if budget.low is not None and disk.filesystem_size > 0 else None
        self.filesystem_size = disk.filesystem_size
        self._last: tuple[str, str, str] = ("", "", "")  # size, percentage, their sentence

    def reason(self, images_size: int, used: int) -> str:
        size = "" if self.max_total is None else format_size(images_size)
        full = "" if self.low is None else f"{used * 100 / self.filesystem_size:.1f}"
        # Consecutive evictions mostly word the same figures: the sentence is then shared.
        last_size, last_full, last = self._last
        if size == last_size and full == last_full and last:
            return last
        parts = []
        if self.max_total is not None:
            parts.append(f"images take {size}, max_total {self.max_total}")
        if self.low is not None:
            parts.append(f"the disk is {full}% full, low {self.low:g}%")
        sentence = "least recently used image evicted for the disk budget: " + "; ".join(parts)
        self._last = (size, full, sentence)
        return sentence
