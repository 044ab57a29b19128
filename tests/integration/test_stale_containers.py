"""Stale containers on the sandbox daemon: after pull: always moved a tag, plan and apply name the
containers still running the old image, in text and JSON, without changing the exit code."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from docker import APIClient

from tests.integration.conftest import CliRun, DockerRun, ImageFactory


def test_a_container_of_a_tag_that_pull_always_moved_is_reported_and_the_exit_code_is_unchanged(
    run_cli: CliRun, image_factory: ImageFactory, docker: DockerRun, api: APIClient, namespace: str,
    tmp_manifest: Callable[..., Path],
) -> None:
    ref = image_factory("web:1", keep_local=True)  # pushed and kept: the host runs it
    container = f"stale-{namespace.rsplit('/', 1)[1]}"
    docker("create", "--name", container, ref, "true")
    old = api.inspect_image(ref)["Id"]
    image_factory("web:1")  # the registry's web:1 moves on (the factory drops its local tag) ...
    docker("tag", old, ref)  # ... while the host's still points at the image the container runs
    path = tmp_manifest(f"""\
        version: 1
        images:
          - name: {namespace}/web
            tags: ["1"]
            pull: always
        """)

    planned = run_cli("plan", path, "-o", "json")
    assert planned.code == 0, planned.stderr
    [pending] = json.loads(planned.stdout)["stale_containers"]
    assert (pending["container"], pending["tag"], pending["old_image"], pending["pending"]) == (container, ref, old, True)

    applied = run_cli("apply", path, "-o", "json")
    assert applied.code == 0, applied.stderr
    [stale] = json.loads(applied.stdout)["stale_containers"]
    new = api.inspect_image(ref)["Id"]
    assert new != old
    assert (stale["container"], stale["tag"], stale["old_image"], stale["new_image"], stale["pending"]) == (
        container, ref, old, new, False
    )

    again = run_cli("plan", path, "--detailed-exitcode")
    assert again.code == 0, again.stdout + again.stderr  # reported, but no change is pending
    assert "No changes." in again.stdout
    assert f"~ {container} (" in again.stdout and f"{ref} points at {new.removeprefix('sha256:')[:12]}" in again.stdout
    assert api.inspect_container(container)["Image"] == old  # reported, never recreated
