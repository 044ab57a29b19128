"""Time ``evaluate_retention`` on many synthetic images under a few rules.

Plain data only, no daemon: N images spread over repositories of 20 images each,
two tags per image (a build tag and, for one in ten, a version), one in twenty
untagged, some used by containers or declared. Prints the median wall time of
``--repeat`` runs, what the verdicts were and a digest of the result and the plan (equal
digests: equal output). It runs under the collector settings of the ``reconcile`` command,
``--default-gc`` under Python's. Figures only: nothing is asserted.

    .venv/bin/python bench/retention_bench.py [--images 100000] [--repeat 3] [--default-gc]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from collections import Counter
from dataclasses import replace

from reconciler.cli.collector import tune_collector
from reconciler.model.host_facts import DiskUsage
from reconciler.model.inventory import ContainerRecord, ImageRecord, Inventory
from reconciler.model.manifest import DiskBudget, Order, RetentionSpec, Rule, Selector, TagFilter
from reconciler.model.plan import Action, Plan
from reconciler.model.reference import parse_reference
from reconciler.planning.removal_guard import removal_guard
from reconciler.planning.retention import evaluate_retention
from reconciler.planning.retention_steps import plan_retention
from reconciler.planning.retention_verdicts import RetentionResult

NOW = 2_000_000_000.0
DAY = 86_400
PER_REPOSITORY = 20

SPEC = RetentionSpec(
    protect=("localhost:5000/base/*", "**/*:release-*"),
    max_removal_percent=100,
    rules=(
        Rule(
            "ci-builds",
            Selector(("localhost:5000/ci/**",), TagFilter(include=".*", exclude="^release-.*")),
            keep_last=5,
            keep_within=14 * DAY,
            keep_tags=r"v?[0-9]+\.[0-9]+\.[0-9]+",
            keep_previous=1,
            older_than=30 * DAY,
        ),
        Rule("releases", Selector(("localhost:5000/apps/*",)), keep_last=3, order=Order.SEMVER),
        Rule("dangling", Selector(untagged=True), older_than=DAY),
    ),
)


def synthetic_images(count: int) -> tuple[ImageRecord, ...]:
    images = []
    for number in range(count):
        group = "ci/team" if number % 3 else "apps"
        repository = f"localhost:5000/{group}/svc-{number // PER_REPOSITORY:05d}"
        tags = [f"{repository}:build-{number}"]
        if number % 10 == 0:
            tags.append(f"{repository}:{number % 7}.{number % 13}.{number % 5}")
        if number % 20 == 19:
            tags = []
        digests = (parse_reference(f"{repository}@sha256:{number:064x}"),)
        images.append(
            ImageRecord(
                id=f"sha256:{number:064x}",
                tags=tuple(parse_reference(t) for t in tags),
                digests=digests,
                created=int(NOW - (number * 7919 % (90 * DAY))),
                size=50_000_000 + number % 1000,
                shared_size=40_000_000,
            )
        )
    return tuple(images)


def run(images: tuple[ImageRecord, ...]) -> tuple[float, float, float, RetentionResult, Plan]:
    """Wall seconds of the evaluation, its CPU seconds (steadier on a shared machine),
    wall seconds of its steps and the guard, the result and the plan."""
    containers = tuple(
        ContainerRecord(f"{n:064x}", f"c{n}", image.id) for n, image in enumerate(images[::500])
    )
    declared = {ref.canonical() for image in images[::250] for ref in image.tags}
    previous = {
        ref.canonical(): (images[i - 1].id,)
        for i, image in enumerate(images[1::100], 1)
        for ref in image.tags
    }
    total = sum(image.size - (image.shared_size or 0) for image in images)
    disk = DiskUsage(filesystem_size=total * 10 // 9, filesystem_used=total, images_size=total)
    # Images may take 40% of their bytes: the rules free part of that, eviction the rest.
    spec = replace(SPEC, disk=DiskBudget(max_total=total * 2 // 5))
    start, cpu_start = time.perf_counter(), time.process_time()
    result = evaluate_retention(
        spec, images, containers, declared, NOW, previous=previous, disk=disk
    )
    evaluated, cpu = time.perf_counter(), time.process_time() - cpu_start
    inventory = Inventory(images=images, containers=containers, host="bench")
    plan = plan_retention(Plan(), inventory, spec, result, NOW)
    removal_guard(plan, len(images), spec.max_removal_percent, None)
    return evaluated - start, cpu, time.perf_counter() - evaluated, result, plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep Python's default collector thresholds instead of the reconcile command's",
    )
    options = parser.parse_args()
    if not options.default_gc:
        tune_collector()
    images = synthetic_images(options.images)
    timings, cpu_timings, step_timings = [], [], []
    for _ in range(options.repeat):
        seconds, cpu_seconds, step_seconds, result, plan = run(images)
        timings.append(seconds)
        cpu_timings.append(cpu_seconds)
        step_timings.append(step_seconds)
    outcomes = Counter(v.outcome.value for v in result.verdicts)
    rungs = Counter(v.decisions[-1].rung.value for v in result.verdicts)
    collector = "default collector" if options.default_gc else "the command's collector settings"
    print(
        f"evaluate_retention on {options.images:,} images, {len(SPEC.rules)} rules, disk budget,"
        f" {collector}:"
    )
    print(
        f"  median {statistics.median(timings):.3f} s over {options.repeat} runs (min {min(timings):.3f} s)"
    )
    print(f"  {statistics.median(timings) / options.images * 1e6:.1f} us per image")
    print(f"  CPU time: median {statistics.median(cpu_timings):.3f} s (min {min(cpu_timings):.3f} s)")
    print(
        f"  verdicts -> steps and the removal guard: median {statistics.median(step_timings):.3f} s"
        f" (min {min(step_timings):.3f} s): {plan.count(Action.UNTAG)} untags, {plan.count(Action.REMOVE)} removals"
    )
    print(f"  outcomes: {dict(sorted(outcomes.items()))}")
    print(f"  deciding rungs: {dict(sorted(rungs.items()))}")
    print(f"  freed {result.freed_bytes:,} bytes; {result.unknown_sizes} of unknown size")
    print(f"  digest of the result {_digest(result)}, of the plan {_digest(plan)}")


def _digest(value: object) -> str:
    """A short hash of ``repr(value)``: equal digests before and after a change mean equal output."""
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


if __name__ == "__main__":
    main()
