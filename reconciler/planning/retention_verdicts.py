"""What retention decides: a verdict per image, each decision naming its rung or rule and inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import NamedTuple

from reconciler.model.reference import Reference
from reconciler.planning.disk_budget import BudgetCheck


class Fate(StrEnum):
    KEEP = "keep"
    UNTAG = "untag"  # some tags go, the image stays
    REMOVE = "remove"  # the image goes, with every tag (rung 5)
    EVICT = "evict"  # the image goes to meet the disk budget (rung 6)


# The fates that remove the image. Named once: reading an enum member off its class is slow
# (about 60 ns on Python 3.11), and every verdict is asked whether it removes several times.
REMOVING = (Fate.REMOVE, Fate.EVICT)


class Rung(StrEnum):
    IN_USE = "in-use"
    HELD = "held"
    DECLARED = "declared"
    PROTECTED = "protected"
    MIN_AGE = "min-age"
    RULE = "rule"
    UNMATCHED = "unmatched"
    DISK = "disk"


# Decision and Verdict are named tuples rather than frozen dataclasses: a large host makes one
# of each per image and tag, and a frozen dataclass costs three times as much to create.
class Decision(NamedTuple):
    """Why a tag (or a whole image) is kept or dropped, with the inputs that decided."""

    subject: str  # a familiar tag reference, or the short id for a whole image
    kept: bool
    rung: Rung
    reason: str  # a sentence for people
    rule: str | None = None
    condition: str | None = (
        None  # keep_last, keep_within, keep_tags, keep_previous, older_than, select
    )
    age: float = 0.0
    last_used: float | None = None
    containers: tuple[str, ...] = ()
    pattern: str | None = None  # the protect pattern or declared reference that matched
    rank: int | None = None  # 1-based rank within keep_last's repository
    arrived: float | None = None  # when the image arrived on the host (min_age's time)


class Verdict(NamedTuple):
    image_id: str
    outcome: Fate
    decisions: tuple[Decision, ...]
    untag: tuple[Reference, ...] = ()  # tags dropped while the image stays (UNTAG)
    freed_bytes: int | None = None  # unique bytes, for REMOVE and EVICT; None when unknown
    eviction: int | None = None  # EVICT: its place in the eviction order, from 1

    @property
    def removes(self) -> bool:
        return self.outcome in REMOVING


# Every field of a Decision and of a Verdict, in order.
DecisionFields = tuple[
    str, bool, Rung, str, str | None, str | None, float, float | None, tuple[str, ...],
    str | None, int | None, float | None,
]  # fmt: skip
VerdictFields = tuple[
    str, Fate, tuple[Decision, ...], tuple[Reference, ...], int | None, int | None
]

# Where a host makes one per image or tag, a Decision or Verdict is made from all its fields by
# tuple.__new__: a named tuple's own __new__ is a Python function, and calling it costs as much
# again as making the tuple.
new_decision: Callable[[DecisionFields], Decision] = partial(tuple.__new__, Decision)
new_verdict: Callable[[VerdictFields], Verdict] = partial(tuple.__new__, Verdict)


@dataclass(frozen=True)
class RetentionResult:
    verdicts: tuple[Verdict, ...]  # one per image, sorted by image id
    freed_bytes: int  # sum of the known unique bytes of removed and evicted images
    unknown_sizes: int  # removed or evicted images whose unique size is unknown
    budget: BudgetCheck | None = None  # with a disk budget and the host's disk figures

    @classmethod
    def of(cls, verdicts: tuple[Verdict, ...], budget: BudgetCheck | None) -> RetentionResult:
        """The result of ``verdicts``, with the bytes their removals free counted."""
        freed = unknown = 0
        for verdict in verdicts:
            if verdict.outcome not in REMOVING:
                continue
            if verdict.freed_bytes is None:
                unknown += 1
            else:
                freed += verdict.freed_bytes
        return cls(verdicts, freed, unknown, budget)

    @property
    def removals(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.removes)
