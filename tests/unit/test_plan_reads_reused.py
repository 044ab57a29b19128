"""An apply's first removals take the lists and the layer bytes its plan has just read, instead of
reading the same again, when no step ran before them and the lists still serve a batch of checks;
what changed in between is still caught by the daemon's own delete rules."""

from __future__ import annotations

import dataclasses
import time

import pytest

from reconciler.execution.executor import Executor
from reconciler.flows.host_facts import read_inventory, with_shared_sizes
from reconciler.loading.loader import load_manifest_text
from reconciler.model.inventory import Inventory
from reconciler.model.plan import Action, Plan
from reconciler.model.report import Outcome
from reconciler.planning.images import plan_changes
from tests.unit.test_executor import PRUNE_APP

from ..fake_daemon import FakeDockerHost

WITH_ALIAS = """
version: 1
images:
  - name: reg.local/app
    tags: ["2"]
    aliases: ["web:stable"]
prune:
  unlisted_tags: true
"""


def host_with_old_images(count: int = 30) -> tuple[FakeDockerHost, list[str]]:
    host = FakeDockerHost()
    host.add_image(["reg.local/app:2"], size=100)
    olds = [host.add_image([f"reg.local/app:old{n}a", f"reg.local/app:old{n}b"], size=10) for n in range(count)]
    return host, olds


def planned(host: FakeDockerHost, text: str) -> tuple[Plan, Inventory]:
    """The plan and the inventory it was made from, read as an apply reads them (lists, then /system/df)."""
    inventory = with_shared_sizes(host, read_inventory(host))
    return plan_changes(load_manifest_text(text, "images.yaml", environ={}), inventory), inventory


class Measure:
    """``measure`` for the executor: the host's layer bytes, each read counted."""

    def __init__(self, host: FakeDockerHost) -> None:
        self.host, self.reads = host, 0

    def __call__(self) -> int:
        self.reads += 1
        return self.host.disk_usage().layers_size


def apply_counting(
    host: FakeDockerHost, plan: Plan, inventory: Inventory | None
) -> tuple[dict[str, int], Measure, Executor]:
    measure = Measure(host)
    before = dict(host.calls)
    executor = Executor(host, parallelism=1, removal_workers=1)
    report = executor.apply(plan, measure=measure, planned=inventory)
    assert report.complete
    calls = {name: count - before.get(name, 0) for name, count in host.calls.items()}
    return calls | {"freed": report.measured_freed or 0}, measure, executor


def test_the_first_batch_checks_against_the_lists_the_plan_just_read() -> None:
    host, olds = host_with_old_images()
    plan, inventory = planned(host, PRUNE_APP)
    assert inventory.listed_at is not None and inventory.layers_size == 100 + 30 * 10
    calls, measure, _ = apply_counting(host, plan, inventory)
    assert calls.get("list_images", 0) == 0 and calls.get("list_containers", 0) == 0
    assert measure.reads == 1  # only after the removals: the figure before is the plan's
    assert calls["freed"] == 30 * 10
    assert all(image_id not in host.images for image_id in olds)


def test_without_the_plans_reads_the_first_batch_reads_its_own() -> None:
    host, _ = host_with_old_images()
    plan, _ = planned(host, PRUNE_APP)
    calls, measure, _ = apply_counting(host, plan, None)
    assert calls["list_images"] == 1 and calls["list_containers"] == 1 and measure.reads == 2
    assert calls["freed"] == 30 * 10


def test_lists_read_longer_ago_than_a_batch_may_last_are_read_again() -> None:
    host, _ = host_with_old_images()
    plan, inventory = planned(host, PRUNE_APP)
    old = dataclasses.replace(inventory, listed_at=time.monotonic() - 3.0)
    calls, measure, _ = apply_counting(host, plan, old)
    assert calls["list_images"] == 1 and measure.reads == 2


def test_after_a_step_that_changes_the_host_the_removals_read_their_own_lists() -> None:
    host, _ = host_with_old_images()
    plan, inventory = planned(host, WITH_ALIAS)
    assert plan.steps[0].action is Action.TAG  # web:stable, before the untags and removals
    calls, measure, _ = apply_counting(host, plan, inventory)
    assert calls["list_images"] == 1 and measure.reads == 2


@pytest.mark.parametrize("workers", [1, 4])
def test_a_container_made_after_the_plans_read_still_keeps_its_image_and_tags(workers: int) -> None:
    host, olds = host_with_old_images(6)
    plan, inventory = planned(host, PRUNE_APP)
    host.add_container(olds[2])  # after the plan read the lists: they do not show it
    report = Executor(host, parallelism=1, removal_workers=workers).apply(plan, planned=inventory)
    kept = [r for r in report.results if r.step.image_id == olds[2] and r.step.action is Action.REMOVE]
    assert [r.outcome for r in kept] == [Outcome.SKIPPED]  # the daemon refused the last delete
    details = host.inspect_image(olds[2])
    assert details is not None and sorted(details.repo_tags) == ["reg.local/app:old2a", "reg.local/app:old2b"]
    assert all(image_id not in host.images for n, image_id in enumerate(olds) if n != 2)
