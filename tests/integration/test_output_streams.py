"""What goes to stdout and what to stderr: results on stdout, errors where errors go."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

from conftest import CliRun, DockerRun, ImageFactory, Sandbox
from docker import APIClient

from reconciler.cli.disk_usage import BAR_WIDTH
from reconciler.model.usage import UsageFacts
from reconciler.state.usage_store import record_usage

WriteManifest = Callable[..., Path]


def test_quiet_apply_puts_failures_and_an_incomplete_summary_on_stderr(
    run_cli: CliRun, tmp_manifest: WriteManifest, namespace: str
) -> None:
    manifest = tmp_manifest(
        f"version: 1\nimages:\n  - name: {namespace}/never-pushed\n    tags: ['1']\n"
    )
    result = run_cli("apply", manifest, "-q")
    assert result.code == 3, result.stdout + result.stderr
    assert result.stdout == ""
    assert "failed  pull" in result.stderr
    assert "Apply incomplete: 0 done, 0 skipped, 1 failed." in result.stderr


def test_images_deleted_counts_images_not_their_layers(
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    namespace: str,
    image_factory: ImageFactory,
    docker: DockerRun,
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
    for line in lines[header + 2 :]:
        if not line.strip():
            break
        rows.append(line.split())
    ours = [row for row in rows if row[1].startswith(namespace)]
    order = ["evict", "remove", "untag", "keep"]
    assert [row[0] for row in ours] == sorted((row[0] for row in ours), key=order.index)
    # keep_last 1 of three images made within a second or two: which one is newest may tie; how many is fixed.
    apps = sorted(row[0] for row in ours if row[1].startswith(f"{namespace}/app:"))
    assert apps == ["keep", "remove", "remove"]
    assert [row[0] for row in ours if row[1] == f"{namespace}/tool:1.0"] == ["keep"]
    removed = [row for row in rows if row[0] in ("evict", "remove")]
    # The last column adds up what goes, row by row, to the plan's "To free".
    to_free = re.search(r"To free: ([0-9.]+ [kMG]?B)\.", result.stdout)
    assert to_free is not None and " ".join(removed[-1][-2:]) == to_free.group(1)
    assert removed[0][-2:] != removed[-1][-2:]


def test_plan_explain_lists_evictions_in_eviction_order_with_the_budget_they_meet(
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    namespace: str,
    image_factory: ImageFactory,
    docker: DockerRun,
    api: APIClient,
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    day = 86_400
    sizes = {"a": 400, "b": 800, "c": 1200}
    refs = {name: image_factory(f"{name}:1", size_kb=kb, push=False, keep_local=True) for name, kb in sizes.items()}
    ids = {name: docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip() for name, ref in refs.items()}
    now = time.time()
    # Ours arrived five days ago, and were last used as they were made (the daemon's events say
    # so): a first, then b, then c. Every other image on the daemon arrives now for this state,
    # and min_age keeps it.
    state = tmp_path / "state"
    arrived = {image_id: now - 5 * day for image_id in ids.values()}
    record_usage(state, sandbox.docker_host, [UsageFacts(arrivals=arrived)], until=now - 5 * day)
    layers = int(api.df()["LayersSize"])
    # 1 MB over: a alone (410 kB) is not enough, a and b (1.23 MB) are.
    manifest = tmp_manifest(f"""
        version: 1
        images: []
        retention:
          min_age: 2d
          max_removal_percent: 100
          disk: {{max_total: {layers - 1_000_000}B}}
    """)
    env = {"RECONCILE_STATE_DIR": str(state), "COLUMNS": "200"}
    data = json.loads(run_cli("plan", manifest, "--explain", "-o", "json", env=env).stdout)
    evicted = sorted((i["eviction"], i["image_id"]) for i in data["images"] if i["verdict"] == "evict")
    assert evicted == [(1, ids["a"]), (2, ids["b"])], data["images"]
    budget = data["disk_budget"]
    assert budget["bytes_over_max_total"] == 1_000_000 and budget["evictions"] == 2
    assert budget["evictions_free_bytes"] >= (400 + 800) * 1024

    result = run_cli("plan", manifest, "--explain", env=env)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["verdict", "image"])
    rows = [line.split() for line in lines[header + 2 :] if line.strip()]
    rows = rows[: next(i for i, row in enumerate(rows) if row[0] not in ("evict", "remove", "untag", "keep"))]
    going = [row for row in rows if row[0] == "evict"]
    assert [row[1] for row in going] == [refs["a"], refs["b"]]
    # The last column runs up, eviction by eviction, to what the budget line says they free.
    totals = [" ".join(row[-2:]) for row in going]
    assert totals[0] != totals[1]
    line = next(line for line in lines if line.startswith("Disk budget:"))
    assert re.fullmatch(
        r"Disk budget: images take [0-9.]+ [kMG]?B; max_total [0-9.]+ [kMG]?B needs 1 MB freed;"
        r" these 2 evictions free ([0-9.]+ [kMG]?B)\.",
        line,
    ), line
    assert line.endswith(f"free {totals[1]}."), (line, totals)


def test_df_adds_up_disk_use_per_repository_and_what_the_manifest_would_free(
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    namespace: str,
    image_factory: ImageFactory,
    docker: DockerRun,
) -> None:
    image_factory("big:1", size_kb=1500, push=False, keep_local=True)
    image_factory("big:2", size_kb=1500, push=False, keep_local=True)
    small = image_factory("small:1", size_kb=300, push=False, keep_local=True)
    docker("tag", small, f"{namespace}/small:also")
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/big
            state: absent
        retention:
          disk: {{max_total: 100TB}}
    """)
    result = run_cli("df", manifest, "-o", "json")
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    mine = {
        r["repository"]: r
        for r in document["repositories"]
        if r["repository"].startswith(namespace)
    }
    big, little = mine[f"{namespace}/big"], mine[f"{namespace}/small"]
    assert (big["images"], big["tags"], little["images"], little["tags"]) == (2, 2, 1, 2)
    assert big["unique_bytes"] > 2 * 1500 * 1000 > little["unique_bytes"] > 300 * 1000
    assert (
        document["manifest"]["removals"] == 2
        and document["manifest"]["bytes_to_free"] == big["unique_bytes"]
    )
    assert document["manifest"]["max_total_bytes"] == 100 * 10**12
    text = run_cli("df", manifest, env={"COLUMNS": "160"})
    assert text.code == 0, text.stderr
    bars = {
        line.split()[0]: line.count("█")
        for line in text.stdout.splitlines()
        if line.split() and line.split()[0] in {r["repository"] for r in document["repositories"]}
    }
    # The bars scale to the largest repository on the daemon, whoever made it: against a large
    # image of another test both of ours may get the one-block minimum. Proportional, never empty.
    largest = max(r["unique_bytes"] for r in document["repositories"])
    for name in (f"{namespace}/big", f"{namespace}/small"):
        assert bars[name] == max(round(BAR_WIDTH * mine[name]["unique_bytes"] / largest), 1), text.stdout
    assert bars[f"{namespace}/big"] >= bars[f"{namespace}/small"] > 0
    listed = [bars[r["repository"]] for r in document["repositories"] if r["repository"] in bars]
    assert listed == sorted(listed, reverse=True)  # largest first, as the JSON lists them
    assert "would remove 2 image(s)" in text.stdout and "max_total 100 TB" in text.stdout
