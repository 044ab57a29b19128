"""Time ``load_manifest`` on a generated images.yaml of N entries x K tags.

No daemon: the manifest is written into a temporary directory. Entries are spread over a few
registries and namespaces; one in ten has an alias, one in twenty a digest pin and ``pull:
always``, one in fifty is ``state: absent``; ``prune`` is on, and ``--retention`` adds a
``retention:`` section with a few rules. Prints the first load in this process (the cold
path: compiling the quick schema check, first-use caches), then the median and fewest wall
and CPU seconds of ``--repeat`` further loads, the cost per tag, and a digest of the
``Manifest``'s repr (equal digests: equal results). It runs under the collector settings of the
``reconcile`` command, ``--default-gc`` under Python's. Figures only: nothing is asserted.

    .venv/bin/python bench/manifest_load_bench.py [--images 1000] [--tags-per-image 3] [--repeat 20] \
        [--retention] [--default-gc] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import pstats
import statistics
import tempfile
import time

from reconciler.cli.collector import tune_collector
from reconciler.loading.loader import load_manifest
from reconciler.model.manifest import Manifest

RETENTION = """\
retention:
  min_age: 2h
  protect: ["registry.example:5000/base/*", "**/*:release-*", {labels: {keep: true}}]
  unmatched: keep
  max_removal_percent: 40
  disk: {max_total: 40GB, high: 85%, low: 80%}
  rules:
    - name: ci-builds
      select: {repositories: ["registry.example:5000/ci/**"], tags: {include: ".*", exclude: "^release-"}}
      keep_last: 5
      keep_within: 14d
      older_than: 30d
    - name: releases
      select: {repositories: ["registry.example:5000/apps/*"]}
      keep_last: 3
      order: semver
    - name: dangling
      select: {untagged: true, labels: {team: "ci"}}
      older_than: 1d
"""


def manifest_text(images: int, tags: int, retention: bool) -> str:
    lines = ["version: 1", "prune:", "  unlisted_tags: true", "  dangling: true", "images:"]
    for number in range(images):
        group = ("apps", "ci/team", "base")[number % 3]
        name = f"registry.example:5000/{group}/svc-{number:05d}"
        if number % 50 == 49:
            lines += [f"  - name: {name}", "    state: absent"]
            continue
        tag_list = ", ".join(_tag(number, k) for k in range(tags))
        lines += [f"  - name: {name}", f"    tags: [{tag_list}]"]
        if number % 10 == 0:
            lines.append(f'    aliases: ["registry.example:5000/mirror/svc-{number:05d}:stable"]')
        if number % 20 == 5:
            lines += [f'    digest: "sha256:{number:064x}"', "    pull: always"]
    text = "\n".join(lines) + "\n"
    return text + RETENTION if retention else text


def _tag(number: int, k: int) -> str:
    # Plain scalars as people write them: versions (1.10 must stay text), words, build numbers.
    return (f"v{number % 7}.{k}.{number % 13}", "latest", f"build-{number}-{k}", f"1.{10 + k}")[
        k % 4
    ]


def timed_load(path: str) -> tuple[float, float, Manifest]:
    start, cpu_start = time.perf_counter(), time.process_time()
    manifest = load_manifest(path, environ={})
    return time.perf_counter() - start, time.process_time() - cpu_start, manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--tags-per-image", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--retention", action="store_true", help="add a retention: section")
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of the timed loads"
    )
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep Python's default collector thresholds instead of the reconcile command's",
    )
    options = parser.parse_args()
    if not options.default_gc:
        tune_collector()
    text = manifest_text(options.images, options.tags_per_image, options.retention)
    with tempfile.TemporaryDirectory(prefix="manifest-load-bench-") as directory:
        path = os.path.join(directory, "images.yaml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        first_wall, first_cpu, manifest = timed_load(path)
        digest = _digest(manifest, directory)
        profile = cProfile.Profile() if options.profile else None
        walls, cpus = [], []
        for _ in range(options.repeat):
            if profile is not None:
                profile.enable()
            wall, cpu, again = timed_load(path)
            if profile is not None:
                profile.disable()
            walls.append(wall)
            cpus.append(cpu)
            if _digest(again, directory) != digest:
                print("UNEXPECTED: a later load gave another result")
    tags = sum(len(spec.tags) for spec in manifest.images)
    collector = "default collector" if options.default_gc else "the command's collector settings"
    print(
        f"load_manifest of {options.images:,} entries x {options.tags_per_image} tags"
        f" ({tags:,} tags, {len(text):,} bytes{', retention section' if options.retention else ''},"
        f" {collector}):"
    )
    print(
        f"  first load in the process: {first_wall * 1e3:.1f} ms wall, {first_cpu * 1e3:.1f} ms CPU"
    )
    print(
        f"  then, over {options.repeat} loads: median {statistics.median(walls) * 1e3:.1f} ms wall"
        f" (min {min(walls) * 1e3:.1f} ms), CPU median {statistics.median(cpus) * 1e3:.1f} ms"
        f" (min {min(cpus) * 1e3:.1f} ms)"
    )
    print(f"  {statistics.median(cpus) / max(tags, 1) * 1e6:.2f} us of CPU per tag")
    print(f"  digest of the Manifest {digest}")
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


def _digest(value: object, directory: str) -> str:
    """A short hash of ``repr(value)`` without the temporary directory's name: equal digests
    before and after a change mean equal output."""
    return hashlib.sha256(repr(value).replace(directory, "DIR").encode()).hexdigest()[:16]


if __name__ == "__main__":
    main()
