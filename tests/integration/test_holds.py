"""Holds on the sandbox daemon: a held image survives a policy that would remove it, goes once the
hold expires, and a hold placed after a plan was saved still keeps its image when that plan runs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from docker import APIClient

from tests.integration.conftest import CliResult, CliRun, ImageFactory


def _policy(namespace: str) -> str:
    return f"""\
version: 1
images: []
retention:
  min_age: 0s
  max_removal_percent: 100
  rules:
    - name: scratch
      select: {{repositories: ["{namespace}/**"]}}
"""


def _tags(api: APIClient) -> set[str]:
    return {tag for image in api.images() for tag in image.get("RepoTags") or ()}


@pytest.fixture
def held_cli(run_cli: CliRun, tmp_path: Path) -> Callable[..., CliResult]:
    """The CLI with a lock (and holds) directory of this test's own."""
    lock_dir = tmp_path / "locks"
    lock_dir.mkdir()

    def run(*args: str | Path, env: Mapping[str, str] | None = None) -> CliResult:
        return run_cli(*args, env={"RECONCILE_LOCK_DIR": str(lock_dir), **(env or {})})

    return run


def test_a_held_image_survives_a_policy_that_removes_it_and_goes_once_the_hold_expires(
    held_cli: Callable[..., CliResult], image_factory: ImageFactory, namespace: str, api: APIClient,
    tmp_manifest: Callable[..., Path],
) -> None:
    kept = image_factory("job:1", push=False, keep_local=True)
    other = image_factory("job:2", push=False, keep_local=True)
    path = tmp_manifest(_policy(namespace))
    # Long enough for the plans and the apply below on a busy machine; the test then waits it out.
    placed = held_cli("hold", kept, "--for", "40s", "--reason", "build 7", "-o", "json")
    assert placed.code == 0, placed.stderr
    hold_id, expires = json.loads(placed.stdout)["id"], json.loads(placed.stdout)["expires"]

    listed = json.loads(held_cli("holds", "-o", "json").stdout)["holds"]
    assert [(h["id"], h["reason"]) for h in listed] == [(hold_id, "build 7")]
    explained = held_cli("plan", path, "--explain")
    assert "keep by held: held by" in explained.stdout and "(build 7)" in explained.stdout
    assert f"hold {hold_id}" in explained.stdout

    applied = held_cli("apply", path)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert kept in _tags(api) and other not in _tags(api)

    time.sleep(max(0.0, expires - time.time() + 0.5))
    assert json.loads(held_cli("holds", "-o", "json").stdout)["holds"] == []
    applied = held_cli("apply", path)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert kept not in _tags(api)


def test_a_hold_placed_after_the_plan_was_saved_keeps_its_image_when_the_plan_runs(
    held_cli: Callable[..., CliResult], image_factory: ImageFactory, namespace: str, api: APIClient,
    tmp_manifest: Callable[..., Path], tmp_path: Path,
) -> None:
    first = image_factory("ci:1", push=False, keep_local=True)
    second = image_factory("ci:2", push=False, keep_local=True)
    saved = tmp_path / "plan.json"
    assert held_cli("plan", tmp_manifest(_policy(namespace)), "--out", saved).code == 0
    assert held_cli("hold", first, "--for", "1h").code == 0

    applied = held_cli("apply", saved)
    assert applied.code == 3, applied.stdout + applied.stderr
    assert "held by" in applied.stdout
    assert first in _tags(api) and second not in _tags(api)

    released = held_cli("release", first)
    assert released.code == 0 and "Released" in released.stdout
    assert held_cli("holds", "-o", "json").stdout.count('"id"') == 0


def test_an_absent_repository_keeps_a_held_image_and_the_plan_says_so(
    held_cli: Callable[..., CliResult], image_factory: ImageFactory, namespace: str, api: APIClient,
    tmp_manifest: Callable[..., Path],
) -> None:
    retired = image_factory("retired:1", push=False, keep_local=True)
    path = tmp_manifest(f"version: 1\nimages:\n  - name: {namespace}/retired\n    state: absent\n")
    assert held_cli("hold", retired, "--for", "1h", "--reason", "release check").code == 0
    planned = held_cli("plan", path, "-o", "json")
    step = json.loads(planned.stdout)["steps"][0]
    assert step["action"] == "remove" and "release check" in step["blocked"]
    assert held_cli("apply", path).code == 3
    assert retired in _tags(api)
    assert held_cli("release", retired).code == 0
    assert held_cli("apply", path).code == 0
    assert retired not in _tags(api)
