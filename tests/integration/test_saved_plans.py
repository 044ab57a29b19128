"""Saved plans against the sandbox: plan --out, the host changes, apply PLAN refuses what went stale."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from conftest import Engine
from docker import APIClient
from docker_state import image_id
from extra_daemons import ExtraDaemon

from reconciler.state.plan_file import plan_digest

ImageFactory = Callable[..., str]
DockerRun = Callable[..., "subprocess.CompletedProcess[str]"]
CliRun = Callable[..., Any]
WriteManifest = Callable[..., Path]



def own_state(tmp_path: Path) -> dict[str, str]:
    """A state directory of the test's own: applies of other tests on the daemon hold no lock on it."""
    return {"RECONCILE_STATE_DIR": str(tmp_path / "state")}


def test_stale_steps_are_refused_and_the_others_applied(
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    tmp_path: Path,
    engine: Engine,
) -> None:
    api, docker = engine.api, engine.docker
    web = image_factory("web:1.0")
    tool = engine.local(image_factory, "tool:1")
    old = engine.local(image_factory, "old:1")
    gone = engine.local(image_factory, "gone:1")
    other = engine.local(image_factory, "other:1")
    multi = engine.local(image_factory, "multi:a")
    docker("tag", multi, f"{namespace}/multi:b")
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/web
            tags: ["1.0"]
            aliases: ["{namespace}/web:stable"]
          - name: {namespace}/tool
            state: absent
          - name: {namespace}/old
            state: absent
          - name: {namespace}/gone
            state: absent
          - name: {namespace}/multi
            state: absent
    """)
    plan_file = tmp_path / "plan.json"
    planned = run_cli("plan", manifest, "--out", plan_file)
    assert planned.code == 0, planned.stdout + planned.stderr
    saved = json.loads(plan_file.read_text())
    assert saved["format"] == "reconciler-plan" and saved["version"] == 2
    expects = {(s["action"], s["ref"]): s["expect"] for s in saved["steps"]}
    old_id = image_id(api, old)
    assert expects[("remove", old)] == {"image_id": old_id, "containers": 0}
    assert expects[("pull", web)] == {"image_id": None}

    # The host moves on: a tag now points at another image, a container now uses an image.
    docker("tag", other, old)
    docker("tag", other, multi)
    container = f"user-{uuid.uuid4().hex[:8]}"
    docker("create", "--name", container, tool, "/nothing")

    applied = run_cli("apply", plan_file, "-o", "json", env=own_state(tmp_path))
    assert applied.code == 4, applied.stdout + applied.stderr
    outcomes = {(s["action"], s["ref"]): s for s in json.loads(applied.stdout)["steps"]}
    assert outcomes[("remove", old)]["outcome"] == "stale"
    assert "now points at" in outcomes[("remove", old)]["detail"]
    assert outcomes[("remove", tool)]["outcome"] == "stale"
    assert container in outcomes[("remove", tool)]["detail"]
    assert all(
        r["detail"].endswith("run `reconcile plan` again") for r in outcomes.values() if r["outcome"] == "stale"
    )
    assert outcomes[("pull", web)]["outcome"] == "done"
    assert outcomes[("tag", f"{namespace}/web:stable")]["outcome"] == "done"
    assert outcomes[("remove", gone)]["outcome"] == "done"
    assert outcomes[("untag", multi)]["outcome"] == "stale"
    assert outcomes[("remove", f"{namespace}/multi:b")]["outcome"] == "done"  # multi:b was its last tag by then

    assert image_id(api, old) == image_id(api, other)  # the moved tag was left alone
    assert image_id(api, old_id or "") == old_id
    assert image_id(api, tool) is not None
    assert image_id(api, gone) is None
    assert image_id(api, multi) == image_id(api, other)
    assert image_id(api, f"{namespace}/web:stable") == image_id(api, web) is not None


def test_changed_manifest_or_other_daemon_refuses_the_whole_plan(
    sandbox: Any,
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    tmp_path: Path,
    api: APIClient,
) -> None:
    gone = image_factory("gone:1", push=False, keep_local=True)
    text = f"""
        version: 1
        images:
          - name: {namespace}/gone
            state: absent
    """
    manifest = tmp_manifest(text)
    plan_file = tmp_path / "plan.json"
    assert run_cli("plan", manifest, "--out", plan_file).code == 0

    # Another daemon: the engine the plan records is not the one that answers. Edited by hand,
    # the file is refused for the edit; with its digest made anew, for the daemon.
    document = json.loads(plan_file.read_text())
    assert document["engine"]
    document["engine"] = "another-engine-id"
    other_daemon = tmp_path / "other-daemon.json"
    other_daemon.write_text(json.dumps(document))
    edited = run_cli("apply", other_daemon, env=own_state(tmp_path))
    assert edited.code == 65, edited.stdout + edited.stderr
    assert "was changed after it was saved" in edited.stderr
    other_daemon.write_text(json.dumps({**document, "digest": plan_digest(document)}))
    elsewhere = run_cli("apply", other_daemon, env=own_state(tmp_path))
    assert elsewhere.code == 4, elsewhere.stdout + elsewhere.stderr
    # The same address, another daemon behind it: the message names both.
    assert "The plan was made for the daemon another-engine-id, not the one now at" in elsewhere.stderr

    tmp_manifest(text + "# edited\n")
    changed = run_cli("apply", plan_file, env=own_state(tmp_path))
    assert changed.code == 4, changed.stdout + changed.stderr
    assert "changed since the plan was made" in changed.stderr
    assert "run `reconcile plan` again" in changed.stderr
    assert image_id(api, gone) is not None  # nothing was changed

    tmp_manifest(text)  # the same bytes as planned: the plan applies
    # ... also through another address of the same daemon: a symlink to its socket.
    link = tmp_path / "same.sock"
    link.symlink_to(sandbox.docker_host.removeprefix("unix://"))
    applied = run_cli("apply", plan_file, "--host", f"unix://{link}", env=own_state(tmp_path))
    assert applied.code == 0, applied.stdout + applied.stderr
    assert image_id(api, gone) is None


def test_a_plan_made_on_one_of_two_daemons_with_one_key_file_is_refused_by_the_other(
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    tmp_path: Path,
    twin_daemons: tuple[ExtraDaemon, ExtraDaemon],
) -> None:
    first, second = twin_daemons
    assert first.info["ID"] == second.info["ID"]  # what the plan used to be keyed on
    web = image_factory("web:1")
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/web
            tags: ["1"]
    """)
    plan_file = tmp_path / "plan.json"
    assert run_cli("plan", manifest, "--out", plan_file, "-H", first.docker_host).code == 0

    elsewhere = run_cli("apply", plan_file, "-H", second.docker_host, env=own_state(tmp_path))
    assert elsewhere.code == 4, elsewhere.stdout + elsewhere.stderr
    assert f"The plan was made for the daemon at {first.docker_host}, not {second.docker_host}" in elsewhere.stderr
    with closing(APIClient(base_url=second.docker_host)) as on_second:
        assert image_id(on_second, web) is None  # nothing was done there

    applied = run_cli("apply", plan_file, "-H", first.docker_host, env=own_state(tmp_path))
    assert applied.code == 0, applied.stdout + applied.stderr
    with closing(APIClient(base_url=first.docker_host)) as on_first:
        assert image_id(on_first, web) is not None


def test_corrupt_plan_file_exits_65(run_cli: CliRun, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text('{"format": "reconciler-plan", "version": 2, "steps": [')
    result = run_cli("apply", plan_file, env=own_state(tmp_path))
    assert result.code == 65, result.stdout + result.stderr
    assert "is not a usable saved plan" in result.stderr


# --- tamper evidence --------------------------------------------------------

def _saved_digest(stderr: str) -> str:
    """The digest `plan --out` printed below its "Saved the plan to" line."""
    found = re.search(r"^Saved the plan to .*\n^Plan digest: (sha256:[0-9a-f]{64}) ", stderr, re.MULTILINE)
    assert found, f"no digest printed: {stderr}"
    return found.group(1)


def test_a_saved_plan_edited_to_remove_another_image_is_refused_and_nothing_removed(
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    tmp_path: Path,
    api: APIClient,
) -> None:
    gone = image_factory("gone:1", push=False, keep_local=True)
    precious = image_factory("precious:1", push=False, keep_local=True)
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/gone
            state: absent
    """)
    plan_file = tmp_path / "plan.json"
    assert run_cli("plan", manifest, "--out", plan_file).code == 0
    document = json.loads(plan_file.read_text())
    [step] = document["steps"]
    assert step["action"] == "remove"
    # Point the step at an unrelated image, expectation and all, so every per-step check passes.
    step["ref"] = precious
    step["expect"]["image_id"] = image_id(api, precious)
    plan_file.write_text(json.dumps(document, indent=2))

    edited = run_cli("apply", plan_file, env=own_state(tmp_path))
    assert edited.code == 65, edited.stdout + edited.stderr
    assert "changed after it was saved" in edited.stderr
    assert "reconcile plan" in edited.stderr
    assert image_id(api, precious) is not None  # nothing was removed
    assert image_id(api, gone) is not None


def test_a_step_added_to_a_saved_plan_is_refused(
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    tmp_path: Path,
    api: APIClient,
) -> None:
    web = image_factory("web:1")
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/web
            tags: ["1"]
    """)
    plan_file = tmp_path / "plan.json"
    assert run_cli("plan", manifest, "--out", plan_file).code == 0
    document = json.loads(plan_file.read_text())
    precious = image_factory("precious:1", push=False, keep_local=True)
    document["steps"].append({
        "action": "remove", "ref": precious, "reason": "added by hand", "bytes": None, "source": None,
        "platform": None, "expected_digest": None, "blocked": None,
        "expect": {"image_id": image_id(api, precious), "containers": 0},
    })
    plan_file.write_text(json.dumps(document, indent=2))

    added = run_cli("apply", plan_file, env=own_state(tmp_path))
    assert added.code == 65, added.stdout + added.stderr
    assert "changed after it was saved" in added.stderr
    assert image_id(api, precious) is not None
    assert image_id(api, web) is None  # not even the planned pull ran


def test_require_digest_applies_the_reviewed_plan_and_refuses_another(
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    tmp_path: Path,
    api: APIClient,
) -> None:
    web = image_factory("web:1")
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/web
            tags: ["1"]
    """)
    reviewed = tmp_path / "reviewed.json"
    planned = run_cli("plan", manifest, "--out", reviewed)
    assert planned.code == 0, planned.stdout + planned.stderr
    digest = _saved_digest(planned.stderr)
    assert digest == json.loads(reviewed.read_text())["digest"]
    # Re-indenting the file (as an editor or jq would) keeps its digest.
    reviewed.write_text(json.dumps(json.loads(reviewed.read_text()), indent=None))

    # Another plan, made and saved honestly from another manifest, but not the one reviewed.
    other_manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/web
            tags: ["1"]
          - name: {namespace}/old
            state: absent
    """, name="other.yaml")
    other = tmp_path / "other.json"
    assert run_cli("plan", other_manifest, "--out", other).code == 0
    for plan_file, required in ((other, digest), (reviewed, "sha256:" + "0" * 64)):
        refused = run_cli("apply", plan_file, "--require-digest", required, env=own_state(tmp_path))
        assert refused.code == 65, refused.stdout + refused.stderr
        assert "is not the plan" in refused.stderr
        assert required in refused.stderr
    # Only a saved plan has a digest, and a digest is written as `plan --out` prints it.
    assert run_cli("apply", manifest, "--require-digest", digest, env=own_state(tmp_path)).code == 64
    assert run_cli("apply", reviewed, "--require-digest", "sha256:abc", env=own_state(tmp_path)).code == 64
    assert image_id(api, web) is None

    applied = run_cli("apply", reviewed, "--require-digest", digest, env=own_state(tmp_path))
    assert applied.code == 0, applied.stdout + applied.stderr
    assert image_id(api, web) is not None
