"""What goes to stdout and what to stderr: results on stdout, errors where errors go."""

from __future__ import annotations

import json
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
