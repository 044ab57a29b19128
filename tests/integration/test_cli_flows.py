"""The CLI driven as a user would, against the sandbox's real daemon and registry.

Each flow follows the pattern: plan, apply, plan again is empty, apply again changes nothing.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Engine
from docker import APIClient
from docker_state import image_id

ImageFactory = Callable[..., str]
DockerRun = Callable[..., "subprocess.CompletedProcess[str]"]
CliRun = Callable[..., Any]
WriteManifest = Callable[..., Path]



def assert_converged(run_cli: CliRun, manifest: Path) -> None:
    """A second plan is empty (exit 0 with --detailed-exitcode) and a second apply changes nothing."""
    again = run_cli("plan", manifest, "--detailed-exitcode")
    assert again.code == 0, again.stdout + again.stderr
    assert "No changes. The host matches" in again.stdout
    reapply = run_cli("apply", manifest, "-o", "json")
    assert reapply.code == 0, reapply.stdout + reapply.stderr
    assert json.loads(reapply.stdout)["steps"] == []


def test_tutorial_pull_alias_untag_and_absent(
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    engine: Engine,
) -> None:
    api = engine.api
    web = image_factory("web:1.0")
    tool = engine.local(image_factory, "tool:2.0")
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/web
            tags: ["1.0"]
            aliases: ["{namespace}/web:stable", "{namespace}/blog:live"]
          - name: {namespace}/tool
            state: absent
        prune:
          unlisted_tags: true
    """)

    planned = run_cli("plan", manifest, "--detailed-exitcode")
    assert planned.code == 2, planned.stdout + planned.stderr
    assert f"+ pull   {web}" in planned.stdout
    assert f"+ tag    {namespace}/web:stable -> {web}" in planned.stdout
    assert f"- remove {tool}" in planned.stdout

    applied = run_cli("apply", manifest)
    assert applied.code == 0, applied.stdout + applied.stderr
    pulled = image_id(api, web)
    assert pulled is not None
    assert image_id(api, f"{namespace}/web:stable") == pulled  # same image id under both names
    assert image_id(api, f"{namespace}/blog:live") == pulled
    assert image_id(api, tool) is None
    assert_converged(run_cli, manifest)

    # Dropping an alias only untags: the image stays under its other names.
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/web
            tags: ["1.0"]
          - name: {namespace}/tool
            state: absent
        prune:
          unlisted_tags: true
    """, name="no-alias.yaml")
    planned = run_cli("plan", manifest, "-o", "json")
    steps = json.loads(planned.stdout)["steps"]
    assert [(s["action"], s["ref"]) for s in steps] == [("untag", f"{namespace}/web:stable")]
    applied = run_cli("apply", manifest)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert image_id(api, f"{namespace}/web:stable") is None
    assert image_id(api, web) == pulled
    assert image_id(api, f"{namespace}/blog:live") == pulled  # not a repository named under images
    assert_converged(run_cli, manifest)


def test_dangling_images_removed_but_not_one_a_container_uses(
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    api: APIClient,
    docker: DockerRun,
) -> None:
    loose = image_factory("loose:1", push=False, keep_local=True)
    held = image_factory("held:1", push=False, keep_local=True)
    other = image_factory("other:1", push=False, keep_local=True)
    loose_id, held_id = image_id(api, loose), image_id(api, held)
    container = f"holder-{uuid.uuid4().hex[:8]}"
    docker("create", "--name", container, held, "/nothing")
    # Moving a tag away leaves the image it pointed at dangling, as a rebuild does.
    docker("tag", other, loose)
    docker("tag", other, held)
    assert image_id(api, loose_id or "") is not None
    assert api.inspect_image(loose_id)["RepoTags"] == []
    manifest = tmp_manifest("""
        version: 1
        prune:
          dangling: true
    """)
    planned = run_cli("plan", manifest, "-o", "json")
    refs = {s["image_id"]: s for s in json.loads(planned.stdout)["steps"]}
    assert refs[loose_id]["action"] == "remove"
    assert held_id not in refs

    applied = run_cli("apply", manifest)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert image_id(api, loose_id or "") is None
    assert image_id(api, held_id or "") is not None


def test_image_in_use_is_never_removed_and_apply_says_so(
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    api: APIClient,
    docker: DockerRun,
) -> None:
    used = image_factory("used:1", push=False, keep_local=True)
    free = image_factory("free:1", push=False, keep_local=True)
    container = f"user-{uuid.uuid4().hex[:8]}"
    docker("create", "--name", container, used, "/nothing")
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/used
            state: absent
          - name: {namespace}/free
            state: absent
    """)

    planned = run_cli("plan", manifest)
    assert "! blocked remove" in planned.stdout and container in planned.stdout

    applied = run_cli("apply", manifest)
    assert applied.code == 3, applied.stdout + applied.stderr
    assert container in applied.stdout
    assert "Apply incomplete: 1 done, 1 skipped, 0 failed." in applied.stdout
    assert image_id(api, used) is not None
    assert image_id(api, free) is None


def test_pinned_digest_and_pull_always(
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    engine: Engine,
) -> None:
    # On Podman, which answers /distribution with 404, pull: always reads the registry's v2 API.
    api, docker = engine.api, engine.docker
    ref = image_factory("app:1.0")
    docker("pull", ref)
    digest = next(d for d in api.inspect_image(ref)["RepoDigests"] if d.startswith(f"{namespace}/app@"))
    pin = digest.split("@", 1)[1]
    docker("image", "rm", ref)
    # Someone moves the tag in the registry to other content; the pin must win locally.
    image_factory("app:1.0")
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/app
            tags: ["1.0"]
            digest: "{pin}"
    """)
    applied = run_cli("apply", manifest)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert digest in api.inspect_image(f"{namespace}/app:1.0")["RepoDigests"]
    assert_converged(run_cli, manifest)

    always = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/app
            tags: ["1.0"]
            pull: always
        prune:
          dangling: true
    """, name="always.yaml")
    planned = run_cli("plan", always, "-o", "json")
    steps = [(s["action"], s["ref"]) for s in json.loads(planned.stdout)["steps"]]
    assert ("pull", f"{namespace}/app:1.0") in steps
    applied = run_cli("apply", always)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert digest not in api.inspect_image(f"{namespace}/app:1.0")["RepoDigests"]
    assert_converged(run_cli, always)


def test_failed_pull_is_reported_and_independent_steps_still_run(
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    api: APIClient,
) -> None:
    good = image_factory("good:1")
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/missing
            tags: ["nope"]
            aliases: ["{namespace}/missing:alias"]
          - name: {namespace}/good
            tags: ["1"]
    """)
    applied = run_cli("apply", manifest, "-o", "json")
    assert applied.code == 3, applied.stdout + applied.stderr
    outcomes = {(s["action"], s["ref"]): s for s in json.loads(applied.stdout)["steps"]}
    assert outcomes[("pull", f"{namespace}/missing:nope")]["outcome"] == "failed"
    assert "nothing was removed" in outcomes[("pull", f"{namespace}/missing:nope")]["detail"]
    assert outcomes[("tag", f"{namespace}/missing:alias")]["outcome"] == "skipped"
    assert outcomes[("pull", good)]["outcome"] == "done"
    assert image_id(api, good) is not None


def test_bad_manifest_exits_65_with_every_problem_located(
    namespace: str, run_cli: CliRun, tmp_manifest: WriteManifest, api: APIClient, image_factory: ImageFactory
) -> None:
    keep = image_factory("keep:1", push=False, keep_local=True)
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/keep
            state: absent
          - name: {namespace}/Bad
            tags: [1.10, "bad tag"]
          - name: {namespace}/x
            tagz: ["1"]
    """)
    for command in ("validate", "plan", "apply"):
        result = run_cli(command, manifest)
        assert result.code == 65, result.stdout + result.stderr
        assert f"{manifest}:6:" in result.stderr  # the upper-case name
        assert f"{manifest}:7:" in result.stderr  # the bad tag
        assert f"{manifest}:9:" in result.stderr and "tagz" in result.stderr
    assert image_id(api, keep) is not None  # nothing was removed on the way


def test_unreachable_daemon_and_usage_errors_have_their_exit_codes(
    run_cli: CliRun, tmp_manifest: WriteManifest, tmp_path: Path
) -> None:
    manifest = tmp_manifest("version: 1\n")
    down = run_cli("plan", manifest, "--host", f"unix://{tmp_path}/no-daemon.sock")
    assert down.code == 69
    assert "Cannot reach the Docker daemon" in down.stderr
    assert "Traceback" not in down.stderr
    assert run_cli("plan", manifest, "--no-such-option").code == 64
    assert run_cli("plan", tmp_path / "missing.yaml").code == 64
    assert run_cli("validate", manifest).code == 0
