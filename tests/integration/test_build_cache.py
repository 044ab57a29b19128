"""Build cache retention on the sandbox daemon: real BuildKit builds make cache records; plan lists
the ones that go with their sizes, apply prunes exactly those and reports the bytes the daemon freed."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from docker import APIClient

from tests.integration.conftest import CliRun, DockerRun, ImageFactory


def _build(docker: DockerRun, context: Path, ref: str, size: int) -> None:
    context.mkdir()
    (context / "data.bin").write_bytes(os.urandom(size))
    (context / "Dockerfile").write_text("FROM scratch\nCOPY data.bin /data.bin\n")
    docker("build", "-q", "-t", ref, context, env={"DOCKER_BUILDKIT": "1"})


def _records(api: APIClient) -> dict[str, dict[str, object]]:
    return {r["ID"]: r for r in api.df().get("BuildCache") or ()}


def test_cache_records_of_real_buildkit_builds_are_planned_and_exactly_those_pruned(
    run_cli: CliRun,
    docker: DockerRun,
    api: APIClient,
    image_factory: ImageFactory,
    tmp_path: Path,
    tmp_manifest: Callable[..., Path],
) -> None:
    refs = [image_factory.qualify("cached:1"), image_factory.qualify("cached:2")]
    before = set(_records(api))
    for number, ref in enumerate(refs):
        _build(docker, tmp_path / f"context{number}", ref, 150_000 + number)
    made = {key: r for key, r in _records(api).items() if key not in before}
    ours = {key for key, r in made.items() if not r["Shared"] and r["Size"] in (150_000, 150_001)}
    assert len(ours) == 2, made  # each build's context, 150 kB apiece, shared with nothing

    path = tmp_manifest("version: 1\nimages: []\nbuild_cache: {keep_storage: 0B}\n")
    planned = json.loads(run_cli("plan", path, "-o", "json").stdout)
    steps = {s["ref"]: s for s in planned["steps"] if s["action"] == "prune-cache"}
    assert ours <= set(steps)
    assert not {key for key, r in _records(api).items() if r["Shared"] or r["InUse"]} & set(steps)
    assert planned["summary"]["cache_bytes_to_free"] == sum(s["bytes"] for s in steps.values())
    text = run_cli("plan", path).stdout
    assert "prune-cache" in text and "Build cache to free: " in text

    applied = run_cli("apply", path, "-o", "json")
    assert applied.code == 0, applied.stdout + applied.stderr
    report = json.loads(applied.stdout)
    done = {
        s["ref"]: s["result_bytes"]
        for s in report["steps"]
        if s["action"] == "prune-cache" and s["outcome"] == "done"
    }
    assert set(done) == set(steps)
    assert report["summary"]["cache_bytes_freed"] == sum(done.values()) >= 300_001
    left = _records(api)
    assert not set(steps) & set(left)
    # Only what pruning cannot free stays: shared records, and empty ones (BuildKit makes a 0-byte
    # context record beside each build's; keep_storage counts bytes, so once the sized records are
    # gone such a record is within it, whether BuildKit last used it before or after them).
    kept = {key: (left[key]["Size"], left[key]["Shared"]) for key in made if key in left}
    assert all(shared or size == 0 for size, shared in kept.values()), kept
    again = json.loads(run_cli("plan", path, "-o", "json").stdout)
    assert [s for s in again["steps"] if s["action"] == "prune-cache"] == []


def test_the_plan_and_history_give_build_cache_sizes_in_human_units(
    run_cli: CliRun,
    docker: DockerRun,
    api: APIClient,
    image_factory: ImageFactory,
    tmp_path: Path,
    tmp_manifest: Callable[..., Path],
) -> None:
    _build(docker, tmp_path / "context", image_factory.qualify("sized:1"), 150_000)
    path = tmp_manifest("version: 1\nimages: []\nbuild_cache: {keep_storage: 0B}\n")
    state = tmp_path / "state"
    plan = run_cli("plan", path)
    assert plan.code in (0, 2), plan.stderr
    assert re.search(r"the cache takes [0-9.]+ [kMG]?B, over keep_storage 0 B", plan.stdout), plan.stdout
    applied = run_cli("apply", path, "--state-dir", state)
    assert applied.code == 0, applied.stdout + applied.stderr
    history = run_cli("history", "--state-dir", state)
    assert history.code == 0, history.stderr
    pruned = [line for line in history.stdout.splitlines() if "prune-cache" in line]
    assert pruned and all(re.search(r"reclaimed [0-9.]+ [kMG]?B", line) for line in pruned), history.stdout
    assert not re.search(r"\d+ bytes", history.stdout), history.stdout
    # JSON keeps the byte counts.
    records = json.loads(run_cli("history", "--state-dir", state, "-o", "json").stdout)
    assert all(isinstance(r["bytes"], int) for r in records if r["action"] == "prune-cache")
