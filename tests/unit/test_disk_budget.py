"""The disk budget's figures and the line ``plan --explain`` prints under its table."""

from __future__ import annotations

from reconciler.model.host_facts import DiskUsage
from reconciler.model.inventory import ImageRecord
from reconciler.model.manifest import DiskBudget, RetentionSpec
from reconciler.planning.disk_budget import BudgetCheck
from reconciler.planning.retention import evaluate_retention
from reconciler.planning.retention_verdicts import Fate

MB = 1_000_000
NOW = 1_000_000_000.0


def _image(number: int, size: int) -> ImageRecord:
    return ImageRecord(id=f"sha256:{number:064x}", tags=(), created=int(NOW) - 86_400 * (10 - number), size=size,
                       shared_size=0)


def test_the_budget_line_says_how_far_over_and_what_the_evictions_free() -> None:
    check = BudgetCheck(DiskBudget(max_total=300 * MB), DiskUsage(0, 0, 315 * MB), 0, 18 * MB, 2)
    assert check.summary() == "images take 315 MB; max_total 300 MB needs 15 MB freed; these 2 evictions free 18 MB"
    within = BudgetCheck(DiskBudget(max_total=300 * MB), DiskUsage(0, 0, 200 * MB), 5 * MB, 0, 0)
    assert within.summary() == (
        "images take 200 MB; within max_total 300 MB; the rules' removals free 5 MB first; nothing is evicted"
    )
    full = BudgetCheck(DiskBudget(high=90, low=80), DiskUsage(1000 * MB, 950 * MB, 400 * MB), 0, 160 * MB, 1)
    assert full.over_low == 150 * MB
    assert full.summary() == (
        "the disk is 95.0% full; over high 90%, down to low 80% needs 150 MB freed; this eviction frees 160 MB"
    )


def test_evictions_are_numbered_in_the_order_they_go_least_recently_used_first() -> None:
    images = [_image(n, 100 * MB) for n in range(4)]
    spec = RetentionSpec(min_age=0, max_removal_percent=100, disk=DiskBudget(max_total=250 * MB))
    last_used = {images[0].id: NOW - 10, images[1].id: NOW - 300, images[2].id: NOW - 200, images[3].id: NOW - 100}
    result = evaluate_retention(spec, images, (), set(), NOW, last_used=last_used,
                                disk=DiskUsage(0, 0, 400 * MB))
    order = {v.image_id: v.eviction for v in result.verdicts if v.outcome is Fate.EVICT}
    assert order == {images[1].id: 1, images[2].id: 2}
    assert result.budget is not None
    assert (result.budget.over_max_total, result.budget.evictions, result.budget.evictions_free) == (150 * MB, 2, 200 * MB)
