"""Properties of retention over random inventories and policies: safety, determinism, convergence."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from hypothesis import given, settings
from hypothesis import strategies as st

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
from reconciler.model.reference import Reference, parse_reference
from reconciler.planning.retention import evaluate_retention
from reconciler.planning.retention_verdicts import Fate, RetentionResult

NOW = 2_000_000_000.0
DAY = 86_400
REPOSITORIES = (
    "app",
    "localhost:5000/ci/web",
    "localhost:5000/ci/team/api",
    "localhost:5000/base/os",
)
TAGS = ("latest", "1.0.0", "1.1.0", "2.0.0-rc.1", "v3", "ci-1", "ci-2", "release-1", "release-2")
PROTECT = ("localhost:5000/base/*", "**/*:release-*")


def is_protected(ref: Reference) -> bool:
    """PROTECT, written out by hand, to check the evaluator's globs against."""
    in_base = ref.name.startswith("localhost:5000/base/") and ref.name.count("/") == 2
    return in_base or (ref.tag is not None and ref.tag.startswith("release-"))


@dataclass(frozen=True)
class Host:
    images: tuple[ImageRecord, ...]
    containers: tuple[ContainerRecord, ...]
    declared: frozenset[str]
    previous: dict[str, tuple[str, ...]]
    last_used: dict[str, float]


def image_id(number: int) -> str:
    return f"sha256:{number:064x}"


@st.composite
def hosts(draw: st.DrawFn) -> Host:
    count = draw(st.integers(0, 14))
    all_tags = [parse_reference(f"{r}:{t}") for r in REPOSITORIES for t in TAGS]
    owners = (
        draw(st.lists(st.integers(-1, count - 1), min_size=len(all_tags), max_size=len(all_tags)))
        if count
        else []
    )
    images = []
    for number in range(count):
        tags = tuple(ref for ref, owner in zip(all_tags, owners, strict=True) if owner == number)
        digests = tuple(
            parse_reference(f"{r}@{image_id(number)}")
            for r in draw(st.lists(st.sampled_from(REPOSITORIES), max_size=2, unique=True))
        )
        size = draw(st.integers(0, 10_000))
        shared = draw(st.one_of(st.none(), st.integers(0, size)))
        created = int(NOW - draw(st.integers(0, 60 * DAY)))
        images.append(ImageRecord(image_id(number), tags, digests, created, size, shared))
    ids = [image.id for image in images]
    used = draw(st.lists(st.sampled_from(ids), max_size=3)) if ids else []
    containers = tuple(ContainerRecord(f"{n:064x}", f"c{n}", i) for n, i in enumerate(used))
    # Tags and digest references are drawn apart, so that pins alone protect images too.
    tag_claims = [ref.canonical() for image in images for ref in image.tags]
    pin_claims = [ref.canonical() for image in images for ref in image.digests]
    declared = frozenset(
        draw(st.lists(st.sampled_from(tag_claims), max_size=2)) if tag_claims else []
    ) | frozenset(draw(st.lists(st.sampled_from(pin_claims), max_size=2)) if pin_claims else [])
    previous = (
        {
            tag.canonical(): tuple(draw(st.lists(st.sampled_from(ids), max_size=2, unique=True)))
            for tag in draw(st.lists(st.sampled_from(all_tags), max_size=3))
        }
        if ids
        else {}
    )
    last_used = (
        {i: NOW - draw(st.integers(0, 90 * DAY)) for i in draw(st.lists(st.sampled_from(ids)))}
        if ids
        else {}
    )
    return Host(tuple(images), containers, declared, previous, last_used)


rules = st.builds(
    Rule,
    name=st.sampled_from(("r1", "r2", "r3")),
    select=st.builds(
        Selector,
        repositories=st.lists(
            st.sampled_from(("app", "localhost:5000/ci/**", "**/os", "*")), max_size=2
        ).map(tuple),
        tags=st.builds(
            TagFilter,
            include=st.sampled_from((None, ".*", "ci-.*", "[0-9v].*")),
            exclude=st.sampled_from((None, "latest", "release-.*")),
        ),
        untagged=st.booleans(),
    ),
    keep_last=st.one_of(st.none(), st.integers(0, 3)),
    order=st.sampled_from(Order),
    keep_within=st.one_of(st.none(), st.integers(0, 30 * DAY)),
    keep_tags=st.sampled_from((None, "v?[0-9]+\\.[0-9]+\\.[0-9]+", "latest")),
    keep_previous=st.one_of(st.none(), st.integers(0, 2)),
    older_than=st.one_of(st.none(), st.integers(0, 30 * DAY)),
)

specs = st.builds(
    RetentionSpec,
    min_age=st.sampled_from((0, 0, 3600, 7 * DAY)),
    protect=st.sampled_from(((), PROTECT)),
    unmatched=st.sampled_from((Unmatched.KEEP, Unmatched.REMOVE, Unmatched.REMOVE)),
    max_removal_percent=st.sampled_from((0, 50, 100)),
    rules=st.lists(rules, max_size=4).map(tuple),
)

budgets = st.one_of(
    st.none(),
    st.builds(DiskBudget, max_total=st.integers(0, 50_000)),
    st.integers(1, 100).flatmap(
        lambda high: st.builds(DiskBudget, high=st.just(float(high)), low=st.floats(0, high))
    ),
)


def evaluate(spec: RetentionSpec, host: Host, disk: DiskUsage | None = None) -> RetentionResult:
    return evaluate_retention(
        spec,
        host.images,
        host.containers,
        host.declared,
        NOW,
        last_used=host.last_used,
        previous=host.previous,
        disk=disk,
    )


def disk_of(host: Host, used: int) -> DiskUsage:
    total = sum(image.size for image in host.images)
    return DiskUsage(filesystem_size=100_000, filesystem_used=used, images_size=total)


@settings(max_examples=300, deadline=None)
@given(hosts(), specs, budgets, st.integers(0, 100_000))
def test_never_touches_an_in_use_declared_or_protected_image(
    host: Host, spec: RetentionSpec, budget: DiskBudget | None, used: int
) -> None:
    result = evaluate(replace(spec, disk=budget), host, disk_of(host, used))
    in_use = {c.image_id for c in host.containers}
    for image, verdict in zip(host.images, result.verdicts, strict=True):
        refs = (*image.tags, *image.digests)
        declared = any(r.canonical() in host.declared for r in refs)
        protected = spec.protect == PROTECT and any(is_protected(r) for r in refs)
        if image.id in in_use or declared or protected:
            assert verdict.outcome is Fate.KEEP, (image, verdict)


@settings(max_examples=200, deadline=None)
@given(hosts(), specs, budgets, st.integers(0, 100_000), st.randoms(use_true_random=False))
def test_the_result_does_not_depend_on_the_order_of_images_or_containers(
    host: Host, spec: RetentionSpec, budget: DiskBudget | None, used: int, shuffler: random.Random
) -> None:
    images, containers = list(host.images), list(host.containers)
    shuffler.shuffle(images)
    shuffler.shuffle(containers)
    shuffled = replace(host, images=tuple(images), containers=tuple(containers))
    spec = replace(spec, disk=budget)
    assert evaluate(spec, shuffled, disk_of(host, used)) == evaluate(
        spec, host, disk_of(host, used)
    )


def applied(host: Host, result: RetentionResult) -> Host:
    """The host after the verdicts ran: removed images gone, untagged tags gone."""
    verdicts = {v.image_id: v for v in result.verdicts}
    images = []
    for image in host.images:
        verdict = verdicts[image.id]
        if verdict.removes:
            continue
        dropped = set(verdict.untag)
        images.append(replace(image, tags=tuple(t for t in image.tags if t not in dropped)))
    return replace(host, images=tuple(images))


@settings(max_examples=300, deadline=None)
@given(hosts(), specs)
def test_a_second_evaluation_after_applying_the_first_changes_nothing(
    host: Host, spec: RetentionSpec
) -> None:
    first = evaluate(spec, host)
    second = evaluate(spec, applied(host, first))
    assert [v for v in second.verdicts if v.outcome is not Fate.KEEP] == []


@settings(max_examples=200, deadline=None)
@given(hosts(), specs, budgets, st.integers(0, 100_000))
def test_predicted_bytes_are_the_unique_bytes_of_the_removed_images(
    host: Host, spec: RetentionSpec, budget: DiskBudget | None, used: int
) -> None:
    result = evaluate(replace(spec, disk=budget), host, disk_of(host, used))
    removed = [image for image, v in zip(host.images, result.verdicts, strict=True) if v.removes]
    assert result.freed_bytes == sum(image.unique_size or 0 for image in removed)
    assert result.unknown_sizes == sum(1 for image in removed if image.unique_size is None)
