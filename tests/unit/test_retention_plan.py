"""Retention verdicts as plan steps, and the blast-radius guard, on plain data."""

from __future__ import annotations

import random

from reconciler.model.host_facts import DiskUsage, HostFacts
from reconciler.model.inventory import ContainerRecord, Inventory
from reconciler.model.manifest import (
    DiskBudget,
    ImageState,
    Manifest,
    RetentionSpec,
    Rule,
    Selector,
    Unmatched,
)
from reconciler.model.plan import Action, Plan
from reconciler.model.units import format_age
from reconciler.model.usage import UsageState
from reconciler.planning.host_plan import decide
from reconciler.planning.images import plan_changes
from reconciler.planning.removal_guard import removal_guard
from reconciler.planning.retention import evaluate_retention
from reconciler.planning.retention_steps import plan_retention
from reconciler.planning.sizing import sized_plan
from tests.unit.planning_data import image, spec

NOW = 2_000_000_000
DAY = 86_400
CI = Rule(name="ci-builds", select=Selector(repositories=("ci/**",)), older_than=30 * DAY)


def plan_for(manifest: Manifest, inventory: Inventory, **options: object) -> Plan:
    assert manifest.retention is not None
    result = evaluate_retention(
        manifest.retention,
        inventory.images,
        inventory.containers,
        manifest.declared.all,
        NOW,
        **options,  # type: ignore[arg-type]
    )
    planned = plan_retention(plan_changes(manifest, inventory), inventory, manifest.retention, result, NOW)
    return sized_plan(planned, inventory)  # the sizing stage writes the removals' bytes


def host(*images: object, containers: tuple[ContainerRecord, ...] = ()) -> Inventory:
    return Inventory(images=images, containers=containers, host="unix:///test.sock")  # type: ignore[arg-type]


def with_retention(*specs: object, **fields: object) -> Manifest:
    return Manifest(images=specs, retention=RetentionSpec(**fields), path="images.yaml")  # type: ignore[arg-type]


def test_an_old_image_loses_its_other_tags_then_goes_with_its_last_one() -> None:
    old = image("old", "ci/app:a", "ci/app:b", created=NOW - 41 * DAY, size=500, shared=100)
    young = image("young", "ci/app:c", created=NOW - 3 * DAY)
    plan = plan_for(with_retention(rules=(CI,)), host(old, young))
    assert [(s.action, s.ref, s.image_id) for s in plan.steps] == [
        (Action.UNTAG, "ci/app:a", old.id),
        (Action.REMOVE, "ci/app:b", old.id),
    ]
    assert {s.reason for s in plan.steps} == {"retention rule ci-builds: older_than 30d (age 41d)"}
    assert plan.steps[1].bytes == 400


def test_in_use_and_declared_images_get_no_step() -> None:
    used = image("used", "ci/app:1", created=NOW - 90 * DAY)
    declared = image("declared", "ci/app:2", created=NOW - 90 * DAY)
    inventory = host(used, declared, containers=(ContainerRecord("c" * 64, "web", used.id),))
    plan = plan_for(with_retention(spec("ci/app", "2"), rules=(CI,)), inventory)
    assert plan.steps == ()


def test_no_duplicate_when_the_manifest_already_removes_the_image() -> None:
    gone = image("gone", "ci/app:1", "ci/app:2", created=NOW - 90 * DAY)
    manifest = with_retention(spec("ci/app", state=ImageState.ABSENT), rules=(CI,))
    plan = plan_for(manifest, host(gone))
    assert [(s.action, s.ref) for s in plan.steps] == [(Action.UNTAG, "ci/app:1"), (Action.REMOVE, "ci/app:2")]
    assert all("declared absent" in s.reason for s in plan.steps)


def test_an_untag_verdict_untags_only_the_dropped_tag() -> None:
    rule = Rule(name="keep-stable", select=Selector(repositories=("ci/**",)), keep_tags="stable")
    both = image("both", "ci/app:stable", "ci/app:old", created=NOW - 9 * DAY)
    plan = plan_for(with_retention(rules=(rule,)), host(both))
    assert [(s.action, s.ref) for s in plan.steps] == [(Action.UNTAG, "ci/app:old")]
    assert plan.steps[0].reason.startswith("retention rule keep-stable:")


def test_untagged_images_are_removed_by_digest_reference_and_evictions_say_why() -> None:
    dangling = image("d", digests=("ci/app@sha256:" + "1" * 64,), created=NOW - 5 * DAY, size=2000)
    cached = image("cache", "cache/x:1", created=NOW - 5 * DAY, size=3000)
    keep_all = Rule(name="keep", select=Selector(untagged=True), keep_within=30 * DAY)
    manifest = with_retention(rules=(keep_all,), disk=DiskBudget(max_total=3000))
    plan = plan_for(
        manifest,
        host(dangling, cached),
        disk=DiskUsage(0, 0, 5000),
        last_used={cached.id: NOW - 12 * DAY},
    )
    assert [(s.action, s.ref) for s in plan.steps] == [(Action.REMOVE, "cache/x:1")]
    assert plan.steps[0].reason.startswith("disk budget: evicted, least recently used (last use 12d ago)")


def test_the_same_host_in_any_order_gives_the_same_plan() -> None:
    images = [image(f"i{n}", f"ci/app:{n}", created=NOW - (30 + n) * DAY) for n in range(8)]
    manifest = with_retention(rules=(CI,))
    expected = plan_for(manifest, host(*images))
    for seed in range(5):
        shuffled = images[:]
        random.Random(seed).shuffle(shuffled)
        assert plan_for(manifest, host(*shuffled)) == expected


def test_the_guard_counts_removals_against_the_flag_and_the_percentage() -> None:
    images = [image(f"i{n}", f"ci/app:{n}", created=NOW - 90 * DAY) for n in range(4)]
    plan = plan_for(with_retention(rules=(CI,)), host(*images))
    assert plan.count(Action.REMOVE) == 4
    assert removal_guard(plan, 4, None, None) is None
    assert "more than --max-removals 3" in (removal_guard(plan, 4, None, 3) or "")
    assert "4 of the 8 images on the host, more than max_removal_percent 40%" in (
        removal_guard(plan, 8, 40.0, None) or ""
    )
    assert removal_guard(plan, 8, 50.0, 4) is None


def test_ago_is_rough_and_readable() -> None:
    assert [format_age(s) for s in (41 * DAY + 5, 5 * 3600 + 1, 720, 30, -3)] == ["41d", "5h", "12m", "30s", "0s"]



def settled(inventory: Inventory) -> HostFacts:
    """The host as a run sees it whose state says every image arrived as long ago as it was built."""
    return HostFacts(inventory, UsageState(arrived={i.id: float(i.created) for i in inventory.images}))


def test_decide_counts_an_image_it_has_no_arrival_for_as_arriving_now() -> None:
    images = [image("old", "a:old", created=NOW - 100 * DAY)]
    manifest = with_retention(unmatched=Unmatched.REMOVE, max_removal_percent=100)
    first_sight = decide(manifest, HostFacts(host(*images)), NOW)
    assert not first_sight.plan.steps
    assert first_sight.retention is not None
    assert first_sight.retention.verdicts[0].decisions[0].arrived == NOW
    assert [s.action for s in decide(manifest, settled(host(*images)), NOW).plan.steps] == [Action.REMOVE]


# --- the one removal guard, on the whole decision (moved from the retention evaluation's own guard) ---


def test_max_removal_percent_refuses_a_large_removal() -> None:
    images = [image(f"a{n}", f"a:{n}", created=NOW - 100 * DAY) for n in range(1, 4)]
    two_of_three = decide(with_retention(spec("a", "1"), unmatched=Unmatched.REMOVE), settled(host(*images)), NOW)
    assert two_of_three.refusal is not None
    assert "2 of the 3 images" in two_of_three.refusal
    one_of_three = decide(
        with_retention(spec("a", "1", "2"), unmatched=Unmatched.REMOVE), settled(host(*images)), NOW
    )
    assert one_of_three.refusal is None


def test_max_removals_from_the_caller_refuses_too() -> None:
    images = [image(f"a{n}", f"a:{n}", created=NOW - 100 * DAY) for n in range(1, 4)]
    remove_all = with_retention(unmatched=Unmatched.REMOVE, max_removal_percent=100)
    assert decide(remove_all, settled(host(*images)), NOW, max_removals=3).refusal is None
    refused = decide(remove_all, settled(host(*images)), NOW, max_removals=2).refusal
    assert refused is not None and "more than --max-removals 2" in refused
