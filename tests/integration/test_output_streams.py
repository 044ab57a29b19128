"""What goes to stdout and what to stderr: results on stdout, errors where errors go."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from conftest import CliRun, DockerRun, ImageFactory

WriteManifest = Callable[..., Path]


def test_quiet_apply_puts_failures_and_an_incomplete_summary_on_stderr(
    run_cli: CliRun, tmp_manifest: WriteManifest, namespace: str
) -> None:
    manifest = tmp_manifest(f"version: 1\nimages:\n  - name: {namespace}/never-pushed\n    tags: ['1']\n")
    result = run_cli("apply", manifest, "-q")
    assert result.code == 3, result.stdout + result.stderr
    assert result.stdout == ""
    assert "failed  pull" in result.stderr
    assert "Apply incomplete: 0 done, 0 skipped, 1 failed." in result.stderr


def test_images_deleted_counts_images_not_their_layers(
    run_cli: CliRun, tmp_manifest: WriteManifest, namespace: str, image_factory: ImageFactory, docker: DockerRun
) -> None:
    base = image_factory("base:1", push=False, keep_local=True)
    child = image_factory("child:1", base=base, push=False, keep_local=True)
    ids = {docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip() for ref in (base, child)}
    manifest = tmp_manifest(
        f"version: 1\nimages:\n  - name: {namespace}/child\n    state: absent\n  - name: {namespace}/base\n    state: absent\n"
    )
    result = run_cli("apply", manifest, "-o", "json")
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["summary"]["images_deleted"] == 2
    assert {i for step in document["steps"] for i in step["deleted"]} == ids


def test_plan_explain_is_a_table_sorted_by_verdict_with_evictions_running_total(
    run_cli: CliRun, tmp_manifest: WriteManifest, namespace: str, image_factory: ImageFactory
) -> None:
    for tag, size_kb in (("v1", 400), ("v2", 800), ("v3", 1200)):
        image_factory(f"app:{tag}", size_kb=size_kb, push=False, keep_local=True)
    image_factory("tool:1.0", size_kb=900, push=False, keep_local=True)
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/tool
            tags: ["1.0"]
        retention:
          min_age: 0s
          max_removal_percent: 100
          rules:
            - name: apps
              select: {{repositories: ["{namespace}/app"]}}
              keep_last: 1
    """)
    result = run_cli("plan", manifest, "--explain", env={"COLUMNS": "160"})
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["verdict", "image"])
    assert "decided by" in lines[header] and "freed" in lines[header]
    rows = []
    for line in lines[header + 2:]:
        if not line.strip():
            break
        rows.append(line.split())
    ours = [row for row in rows if row[1].startswith(namespace)]
    order = ["evict", "remove", "untag", "keep"]
    assert [row[0] for row in rows] == sorted((row[0] for row in rows), key=order.index)
    assert sorted((row[0], row[1]) for row in ours) == [
        ("keep", f"{namespace}/app:v3"), ("keep", f"{namespace}/tool:1.0"),
        ("remove", f"{namespace}/app:v1"), ("remove", f"{namespace}/app:v2"),
    ]
    removed = [row for row in rows if row[0] == "remove"]
    # The last column adds up what goes, row by row, to the plan's "To free".
    to_free = re.search(r"To free: ([0-9.]+ [kMG]?B)\.", result.stdout)
    assert to_free is not None and " ".join(removed[-1][-2:]) == to_free.group(1)
    assert removed[0][-2:] != removed[-1][-2:]
