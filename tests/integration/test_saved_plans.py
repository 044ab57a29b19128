"""Saved plans against the sandbox: plan --out, the host changes, apply PLAN refuses what went stale."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from docker import APIClient
from docker_state import image_id

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
    api: APIClient,
    docker: DockerRun,
) -> None:
    web = image_factory("web:1.0")
    tool = image_factory("tool:1", push=False, keep_local=True)
    old = image_factory("old:1", push=False, keep_local=True)
    gone = image_factory("gone:1", push=False, keep_local=True)
    other = image_factory("other:1", push=False, keep_local=True)
    multi = image_factory("multi:a", push=False, keep_local=True)
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
    assert saved["format"] == "reconciler-plan" and saved["version"] == 1
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

    # Another daemon: the engine the plan records is not the one that answers.
    document = json.loads(plan_file.read_text())
    assert document["engine"]
    document["engine"] = "another-engine-id"
    other_daemon = tmp_path / "other-daemon.json"
    other_daemon.write_text(json.dumps(document))
    elsewhere = run_cli("apply", other_daemon, env=own_state(tmp_path))
    assert elsewhere.code == 4, elsewhere.stdout + elsewhere.stderr
    assert "The plan was made for the daemon at" in elsewhere.stderr

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


def test_corrupt_plan_file_exits_65(run_cli: CliRun, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text('{"format": "reconciler-plan", "version": 1, "steps": [')
    result = run_cli("apply", plan_file, env=own_state(tmp_path))
    assert result.code == 65, result.stdout + result.stderr
    assert "is not a usable saved plan" in result.stderr
