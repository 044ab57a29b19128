"""Retention: each rung, each rule field, the disk budget and the guards, on plain data."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.model.host_facts import DiskUsage
from reconciler.model.inventory import ContainerRecord, ImageRecord
from reconciler.model.manifest import (
    DiskBudget,
    Order,
    RetentionSpec,
    Rule,
    Selector,
    TagFilter,
    Unmatched,
)
from reconciler.model.reference import parse_reference
from reconciler.planning.globs import ProtectPatterns, ReferencePattern, glob_regex
from reconciler.planning.retention import evaluate_retention
from reconciler.planning.retention_verdicts import Fate, RetentionResult, Rung, Verdict
from reconciler.planning.semver import semver_key

NOW = 2_000_000_000.0
HOUR, DAY = 3600, 86_400


def image(
    number: int,
    *tags: str,
    age: float = 100 * DAY,
    size: int = 1000,
    shared: int | None = 0,
    digests: tuple[str, ...] = (),
) -> ImageRecord:
    return ImageRecord(
        id=f"sha256:{number:064x}",
        tags=tuple(parse_reference(t) for t in tags),
        digests=tuple(parse_reference(d) for d in digests),
        created=int(NOW - age),
        size=size,
        shared_size=shared,
    )


def digest_ref(name: str, number: int) -> str:
    return f"{name}@sha256:{number:064x}"


def evaluate(spec: RetentionSpec, *images: ImageRecord, **options: object) -> RetentionResult:
    defaults: dict[str, object] = {"containers": (), "declared": frozenset(), "now": NOW}
    defaults.update(options)
    return evaluate_retention(spec, images, **defaults)  # type: ignore[arg-type]


def verdict_of(result: RetentionResult, number: int) -> Verdict:
    wanted = f"sha256:{number:064x}"
    return next(v for v in result.verdicts if v.image_id == wanted)


def outcomes(result: RetentionResult) -> dict[int, Fate]:
    return {int(v.image_id.removeprefix("sha256:"), 16): v.outcome for v in result.verdicts}


def untagged(result: RetentionResult, number: int) -> list[str]:
    return [ref.familiar() for ref in verdict_of(result, number).untag]


REMOVE_ALL = RetentionSpec(unmatched=Unmatched.REMOVE, max_removal_percent=100)


def rule(name: str = "r", **fields: object) -> Rule:
    return Rule(name, **fields)  # type: ignore[arg-type]


def spec_of(*rules: Rule, **fields: object) -> RetentionSpec:
    fields.setdefault("max_removal_percent", 100)
    return RetentionSpec(rules=rules, **fields)  # type: ignore[arg-type]


# --- rungs 1-4 ---------------------------------------------------------------------


def test_an_image_a_stopped_container_uses_is_kept_whole_and_names_the_container() -> None:
    used = image(1, "app:old")
    container = ContainerRecord("c" * 64, "web", used.id, "exited")
    result = evaluate(REMOVE_ALL, used, image(2, "app:other"), containers=(container,))
    verdict = verdict_of(result, 1)
    assert verdict.outcome is Fate.KEEP
    assert verdict.decisions[0].rung is Rung.IN_USE
    assert verdict.decisions[0].containers == ("web",)
    assert verdict_of(result, 2).outcome is Fate.REMOVE


@pytest.mark.parametrize(
    "claim",
    [
        "docker.io/library/app:1",
        "docker.io/library/app@sha256:" + f"{9:064x}",
        f"sha256:{1:064x}",
    ],
)
def test_an_image_holding_a_declared_tag_digest_or_id_keeps_every_tag(claim: str) -> None:
    declared = image(1, "app:1", "app:extra", digests=(digest_ref("app", 9),))
    result = evaluate(REMOVE_ALL, declared, declared=frozenset({claim}))
    verdict = verdict_of(result, 1)
    assert (verdict.outcome, verdict.decisions[0].rung) == (Fate.KEEP, Rung.DECLARED)
    assert verdict.untag == ()


def test_protect_patterns_match_repository_globs_and_tag_globs() -> None:
    spec = RetentionSpec(
        protect=("localhost:5000/base/*", "**/*:release-*"),
        unmatched=Unmatched.REMOVE,
        max_removal_percent=100,
    )
    images = (
        image(1, "localhost:5000/base/debian:12"),
        image(2, "localhost:5000/base/sub/debian:12"),  # * is one segment only
        image(3, "localhost:5000/app:release-1"),
        image(4, "nginx:release-2"),
        image(5, "nginx:1.0"),
        image(6, digests=(digest_ref("localhost:5000/base/debian", 6),)),  # untagged, by digest
    )
    result = evaluate(spec, *images)
    assert outcomes(result) == {
        1: Fate.KEEP,
        2: Fate.REMOVE,
        3: Fate.KEEP,
        4: Fate.KEEP,
        5: Fate.REMOVE,
        6: Fate.KEEP,
    }
    assert verdict_of(result, 3).decisions[0].pattern == "**/*:release-*"


def test_protect_patterns_find_what_each_pattern_tried_in_turn_finds() -> None:
    texts = ("localhost:5000/base/*", "**/*:release-*", "nginx", "**:v*")
    patterns = ProtectPatterns(texts)
    one_by_one = [ReferencePattern.parse(text) for text in texts]
    cases = [
        ("localhost:5000/base/debian:12",),
        ("localhost:5000/app:release-1", "nginx:1"),
        ("nginx:v2", "redis:release-3"),  # the earlier pattern wins over the earlier reference
        ("redis:v1", "redis:v2"),  # the same pattern: the first reference
        ("redis:1",),
        (),
    ]
    for tag_texts in cases:
        for digest_texts in ((), (digest_ref("nginx", 1),), (digest_ref("redis", 2),)):
            digests = tuple(parse_reference(text) for text in digest_texts)
            tags = tuple(parse_reference(text) for text in tag_texts)
            expected = next(
                ((p, ref) for p in one_by_one for ref in (*tags, *digests) if p.matches(ref)), None
            )
            found = patterns.first_match(tags, digests)
            described = None if found is None else (found[0].text, found[1])
            assert described == (None if expected is None else (expected[0].text, expected[1]))


def test_images_younger_than_min_age_are_kept_and_the_boundary_is_removable() -> None:
    spec = RetentionSpec(min_age=2 * HOUR, unmatched=Unmatched.REMOVE, max_removal_percent=100)
    result = evaluate(spec, image(1, "a:1", age=2 * HOUR - 1), image(2, "a:2", age=2 * HOUR))
    assert outcomes(result) == {1: Fate.KEEP, 2: Fate.REMOVE}
    assert verdict_of(result, 1).decisions[0].rung is Rung.MIN_AGE


def test_default_min_age_is_one_hour() -> None:
    result = evaluate(REMOVE_ALL, image(1, "a:1", age=59 * 60))
    assert outcomes(result) == {1: Fate.KEEP}


def test_rungs_are_tested_in_order_container_first() -> None:
    young = image(1, "app:1", age=10)
    container = ContainerRecord("c" * 64, "svc", young.id)
    result = evaluate(
        REMOVE_ALL, young, containers=(container,), declared={"docker.io/library/app:1"}
    )
    assert verdict_of(result, 1).decisions[0].rung is Rung.IN_USE


# --- rung 5: selection -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("glob", "name", "matches"),
    [
        ("localhost:5000/ci/**", "localhost:5000/ci/app", True),
        ("localhost:5000/ci/**", "localhost:5000/ci/team/app", True),
        ("localhost:5000/ci/**", "localhost:5000/ci", True),
        ("localhost:5000/ci/**", "localhost:5000/cid/app", False),
        ("localhost:5000/*/app", "localhost:5000/ci/app", True),
        ("localhost:5000/*/app", "localhost:5000/ci/x/app", False),
        ("**/app", "app", True),
        ("**/app", "a/b/app", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("**", "docker.io/library/nginx", True),
        ("ngin*", "nginx", True),
        ("ngin*", "docker.io/library/nginx", False),
        ("a.b", "axb", False),  # '.' is literal
    ],
)
def test_repository_globs(glob: str, name: str, matches: bool) -> None:
    assert bool(glob_regex(glob).fullmatch(name)) is matches


def test_repositories_match_the_full_or_the_familiar_name() -> None:
    both = rule(select=Selector(repositories=("nginx",)))
    full = rule(select=Selector(repositories=("docker.io/library/*",)))
    for chosen in (both, full):
        result = evaluate(spec_of(chosen), image(1, "nginx:1"), image(2, "redis:1"))
        expected = {1: Fate.REMOVE, 2: Fate.KEEP}
        if chosen is full:
            expected[2] = Fate.REMOVE
        assert outcomes(result) == expected


def test_tag_include_and_exclude_fullmatch() -> None:
    selector = Selector(tags=TagFilter(include="v.*", exclude="v1.*-rc"))
    result = evaluate(
        spec_of(rule(select=selector)),
        image(1, "app:v1.0"),
        image(2, "app:v1.0-rc"),
        image(3, "app:xv1"),  # include must match the whole tag
    )
    assert outcomes(result) == {1: Fate.REMOVE, 2: Fate.KEEP, 3: Fate.KEEP}


def test_an_image_with_several_tags_loses_only_the_tags_the_policy_drops() -> None:
    ci = rule("ci", select=Selector(tags=TagFilter(include="ci-.*")))
    result = evaluate(
        spec_of(ci), image(1, "app:ci-1", "app:stable"), image(2, "app:ci-2", "app:ci-3")
    )
    assert verdict_of(result, 1).outcome is Fate.UNTAG
    assert untagged(result, 1) == ["app:ci-1"]
    assert verdict_of(result, 2).outcome is Fate.REMOVE
    assert verdict_of(result, 2).freed_bytes == 1000


def test_the_first_rule_that_selects_a_tag_decides() -> None:
    keep = rule("keep", select=Selector(repositories=("app",)), keep_within=1000 * DAY)
    drop = rule("drop")
    result = evaluate(spec_of(keep, drop), image(1, "app:1"), image(2, "other:1"))
    assert outcomes(result) == {1: Fate.KEEP, 2: Fate.REMOVE}
    assert verdict_of(result, 1).decisions[0].rule == "keep"
    assert verdict_of(result, 2).decisions[0].rule == "drop"


def test_unmatched_keep_is_the_default_and_remove_drops() -> None:
    only_app = rule(select=Selector(repositories=("app",)), keep_last=5)
    kept = evaluate(spec_of(only_app), image(1, "other:1"))
    assert verdict_of(kept, 1).decisions[0].rung is Rung.UNMATCHED
    assert outcomes(kept) == {1: Fate.KEEP}
    dropped = evaluate(spec_of(only_app, unmatched=Unmatched.REMOVE), image(1, "other:1"))
    assert outcomes(dropped) == {1: Fate.REMOVE}


def test_untagged_rules_select_images_without_a_tag_only() -> None:
    dangling = rule("dangling", select=Selector(untagged=True), older_than=DAY)
    result = evaluate(
        spec_of(dangling),
        image(1, age=2 * DAY),
        image(2, age=HOUR * 5),
        image(3, "app:1", age=2 * DAY),
    )
    assert outcomes(result) == {1: Fate.REMOVE, 2: Fate.KEEP, 3: Fate.KEEP}
    assert verdict_of(result, 3).decisions[0].rung is Rung.UNMATCHED


def test_untagged_rules_with_repositories_look_at_digest_references() -> None:
    ci = rule(select=Selector(repositories=("localhost:5000/ci/**",), untagged=True))
    result = evaluate(
        spec_of(ci),
        image(1, digests=(digest_ref("localhost:5000/ci/app", 1),)),
        image(2, digests=(digest_ref("localhost:5000/web", 2),)),
        image(3),
    )
    assert outcomes(result) == {1: Fate.REMOVE, 2: Fate.KEEP, 3: Fate.KEEP}


# --- rung 5: keep conditions ---------------------------------------------------------------


def test_keep_last_keeps_the_newest_images_per_repository() -> None:
    last2 = rule(keep_last=2)
    images = [image(n, f"a:{n}", age=(10 - n) * DAY) for n in range(1, 5)]
    images.append(image(9, "b:9", age=50 * DAY))
    result = evaluate(spec_of(last2), *images)
    assert outcomes(result) == {
        1: Fate.REMOVE,
        2: Fate.REMOVE,
        3: Fate.KEEP,
        4: Fate.KEEP,
        9: Fate.KEEP,
    }
    assert verdict_of(result, 4).decisions[0].rank == 1
    assert verdict_of(result, 3).decisions[0].rank == 2
    assert verdict_of(result, 2).decisions[0].rank == 3


def test_keep_last_counts_a_declared_newest_image_among_the_n() -> None:
    images = [image(n, f"a:v{n}", age=(10 - n) * DAY) for n in range(1, 5)]
    result = evaluate(spec_of(rule(keep_last=2)), *images, declared=frozenset({"docker.io/library/a:v4"}))
    # v4 is declared (kept by rung 2) and is the newest: only v3 joins it.
    assert outcomes(result) == {1: Fate.REMOVE, 2: Fate.REMOVE, 3: Fate.KEEP, 4: Fate.KEEP}
    assert verdict_of(result, 3).decisions[0].rank == 2


def test_keep_last_counts_images_not_tags() -> None:
    result = evaluate(
        spec_of(rule(keep_last=1)),
        image(1, "a:new", "a:latest", age=DAY),
        image(2, "a:old", age=2 * DAY),
    )
    assert outcomes(result) == {1: Fate.KEEP, 2: Fate.REMOVE}


def test_semver_order_ranks_releases_before_pre_releases_before_other_tags() -> None:
    semver = rule(keep_last=2, order=Order.SEMVER)
    result = evaluate(
        spec_of(semver),
        image(1, "a:v1.10.0", age=90 * DAY),
        image(2, "a:1.9.3", age=DAY * 2),
        image(3, "a:2.0.0-rc.1", age=DAY),
        image(4, "a:nightly", age=2 * HOUR),
        image(5, "a:1.2", age=80 * DAY),
    )
    assert outcomes(result) == {
        1: Fate.KEEP,
        2: Fate.KEEP,
        3: Fate.REMOVE,
        4: Fate.REMOVE,
        5: Fate.REMOVE,
    }


def test_semver_key_follows_semver_precedence() -> None:
    tags = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11"]
    tags += ["1.0.0-rc.1", "0.9", "1.0.0", "v1.0.1+build.5", "2"]
    assert sorted([*tags, "latest"], key=semver_key) == [
        "latest",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "0.9",
        "1.0.0",
        "v1.0.1+build.5",
        "2",
    ]


def test_keep_within_keeps_recent_images() -> None:
    result = evaluate(
        spec_of(rule(keep_within=14 * DAY)),
        image(1, "a:1", age=14 * DAY),
        image(2, "a:2", age=14 * DAY + 1),
    )
    assert outcomes(result) == {1: Fate.KEEP, 2: Fate.REMOVE}
    assert verdict_of(result, 1).decisions[0].condition == "keep_within"


def test_keep_tags_keeps_matching_tags_only() -> None:
    result = evaluate(
        spec_of(rule(keep_tags=r"v?[0-9]+\.[0-9]+\.[0-9]+")),
        image(1, "a:v1.2.3", "a:ci-77"),
        image(2, "a:1.2.3-x"),
    )
    assert verdict_of(result, 1).outcome is Fate.UNTAG
    assert untagged(result, 1) == ["a:ci-77"]
    assert verdict_of(result, 2).outcome is Fate.REMOVE


def test_older_than_only_drops_what_is_older() -> None:
    result = evaluate(
        spec_of(rule(older_than=30 * DAY)),
        image(1, "a:1", age=30 * DAY),
        image(2, "a:2", age=30 * DAY + 1),
    )
    assert outcomes(result) == {1: Fate.KEEP, 2: Fate.REMOVE}
    assert verdict_of(result, 1).decisions[0].condition == "older_than"


def test_keep_conditions_are_ored() -> None:
    combined = rule(keep_last=1, keep_within=5 * DAY, keep_tags="keep-.*", older_than=20 * DAY)
    result = evaluate(
        spec_of(combined),
        image(1, "a:newest", age=30 * DAY),  # keep_last
        image(2, "a:recent", age=31 * DAY),  # older_than does not keep: dropped
        image(3, "a:keep-me", age=90 * DAY),  # keep_tags
        image(4, "b:x", age=3 * DAY),  # keep_last in its own repository
        image(5, "b:y", age=4 * DAY),  # keep_within
        image(6, "b:z", age=10 * DAY),  # not older than 20d
    )
    assert outcomes(result) == {
        1: Fate.KEEP,
        2: Fate.REMOVE,
        3: Fate.KEEP,
        4: Fate.KEEP,
        5: Fate.KEEP,
        6: Fate.KEEP,
    }
    conditions = [verdict_of(result, n).decisions[0].condition for n in (1, 3, 4, 5, 6)]
    assert conditions == ["keep_last", "keep_tags", "keep_last", "keep_within", "older_than"]


def test_keep_previous_holds_the_old_image_of_a_moved_tag_against_later_rules() -> None:
    ci = rule("ci", select=Selector(repositories=("app",)), keep_previous=1)
    dangling = rule("dangling", select=Selector(untagged=True))
    previous = {
        "docker.io/library/app:latest": (f"sha256:{2:064x}", f"sha256:{3:064x}"),
        "docker.io/library/other:latest": (f"sha256:{4:064x}",),  # not selected by ci
    }
    result = evaluate(
        spec_of(ci, dangling),
        image(1, "app:latest", age=2 * HOUR),
        image(2),
        image(3),
        image(4),
        previous=previous,
    )
    assert outcomes(result) == {
        1: Fate.REMOVE,
        2: Fate.KEEP,
        3: Fate.REMOVE,
        4: Fate.REMOVE,
    }
    held = verdict_of(result, 2).decisions[-1]
    assert (held.rule, held.condition, held.rank) == ("ci", "keep_previous", 1)


def test_keep_previous_keeps_a_held_image_whole_when_every_tag_would_go() -> None:
    # Untagging an image's last tag deletes it, so a held image keeps its tags.
    ci = rule("ci", keep_previous=1)
    result = evaluate(
        spec_of(ci),
        image(1, "app:1.0", age=50 * DAY),
        previous={"docker.io/library/app:1.0": (f"sha256:{1:064x}",)},
    )
    assert verdict_of(result, 1).outcome is Fate.KEEP
    assert untagged(result, 1) == []
    held = [d for d in verdict_of(result, 1).decisions if d.condition == "keep_previous"]
    assert held and held[0].age == 50 * DAY


def test_keep_previous_lets_a_held_image_lose_some_of_its_tags() -> None:
    ci = rule("ci", keep_previous=1, keep_tags="stable")
    result = evaluate(
        spec_of(ci),
        image(1, "app:1.0", "app:stable"),
        previous={"docker.io/library/app:1.0": (f"sha256:{1:064x}",)},
    )
    assert verdict_of(result, 1).outcome is Fate.UNTAG
    assert untagged(result, 1) == ["app:1.0"]


# --- rung 6: disk budget ---------------------------------------------------------------------


def test_disk_high_low_evicts_least_recently_used_until_under_low() -> None:
    budget = DiskBudget(high=85, low=80)
    images = [image(n, f"a:{n}", age=(10 - n) * DAY, size=100, shared=0) for n in range(1, 6)]
    last_used = {images[0].id: NOW - 1}  # image 1 was used a second ago
    disk = DiskUsage(filesystem_size=1000, filesystem_used=900, images_size=500)
    result = evaluate(spec_of(disk=budget), *images, last_used=last_used, disk=disk)
    # 90% -> evict 2 (80%) and stop: 3 is next in line
    assert outcomes(result) == {
        1: Fate.KEEP,
        2: Fate.EVICT,
        3: Fate.KEEP,
        4: Fate.KEEP,
        5: Fate.KEEP,
    }
    assert result.freed_bytes == 100
    assert verdict_of(result, 2).decisions[-1].rung is Rung.DISK


def test_disk_budget_counts_rule_removals_first_and_spares_protected_images() -> None:
    budget = DiskBudget(max_total=250)
    drop_old = rule(select=Selector(repositories=("old",)))
    images = (
        image(1, "old:1", size=100),
        image(2, "a:2", age=HOUR * 30, size=100),
        image(3, "a:3", age=10, size=100),  # min_age
        image(4, "a:4", age=HOUR * 20, size=100),
    )
    disk = DiskUsage(filesystem_size=10_000, filesystem_used=400, images_size=400)
    result = evaluate(spec_of(drop_old, disk=budget), *images, disk=disk)
    assert outcomes(result) == {
        1: Fate.REMOVE,
        2: Fate.EVICT,
        3: Fate.KEEP,
        4: Fate.KEEP,
    }


def test_disk_budget_under_high_evicts_nothing() -> None:
    disk = DiskUsage(filesystem_size=1000, filesystem_used=850, images_size=500)
    result = evaluate(spec_of(disk=DiskBudget(high=85, low=50)), image(1, "a:1"), disk=disk)
    assert outcomes(result) == {1: Fate.KEEP}


def test_unknown_unique_size_counts_the_full_size_for_the_budget_only() -> None:
    budget = DiskBudget(max_total=0)
    images = (image(1, "a:1", size=100, shared=None), image(2, "a:2", size=100, shared=40))
    disk = DiskUsage(filesystem_size=1000, filesystem_used=200, images_size=200)
    result = evaluate(spec_of(disk=budget), *images, disk=disk)
    assert result.freed_bytes == 60
    assert result.unknown_sizes == 1


# --- guards and result -------------------------------------------------------------------------


def test_freed_bytes_are_the_unique_bytes_of_removed_images() -> None:
    result = evaluate(REMOVE_ALL, image(1, "a:1", size=500, shared=200), image(2, "a:2", size=70))
    assert result.freed_bytes == 300 + 70
    assert [v.image_id for v in result.removals] == [f"sha256:{1:064x}", f"sha256:{2:064x}"]


def test_an_empty_section_keeps_everything() -> None:
    result = evaluate(RetentionSpec(), image(1, "a:1"), image(2))
    assert outcomes(result) == {1: Fate.KEEP, 2: Fate.KEEP}
    assert result.freed_bytes == 0


@pytest.mark.parametrize("module", ["planning/retention", "model/units"])
def test_retention_modules_stay_pure(module: str) -> None:
    source = Path(__file__).resolve().parents[2] / "reconciler" / f"{module}.py"
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported & {"docker", "yaml", "click", "requests", "time", "datetime", "os"} == set()


def test_an_image_keep_previous_strips_of_its_tags_takes_no_untagged_keep_last_slot() -> None:
    ci = rule("ci", select=Selector(repositories=("app",)), keep_previous=1)
    dangling = rule("dangling", select=Selector(untagged=True), keep_last=1)
    spec = spec_of(ci, dangling)
    held, old = image(1, "app:old", age=2 * DAY), image(2, age=3 * DAY)
    previous = {"docker.io/library/app:latest": (held.id,)}
    first = evaluate(spec, held, old, previous=previous)
    assert outcomes(first) == {1: Fate.KEEP, 2: Fate.KEEP}
    second = evaluate(spec, replace(held, tags=()), old, previous=previous)
    assert outcomes(second) == {1: Fate.KEEP, 2: Fate.KEEP}
