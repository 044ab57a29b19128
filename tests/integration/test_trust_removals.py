"""Removals that must not take what a user still needs, on the real daemon: a removal is one unit,
a failed pull breaks nothing it was to replace, and a daemon that dies mid-apply leaves a full report."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from daemon_proxy import DaemonProxy, Rule
from docker import APIClient
from registry_proxy import RegistryProxy

from tests.integration.conftest import StartCli

ImageFactory = Callable[..., str]
DockerRun = Callable[..., "subprocess.CompletedProcess[str]"]
CliRun = Callable[..., Any]
WriteManifest = Callable[..., Path]


def tags_of(api: APIClient, ref: str) -> list[str]:
    return sorted(api.inspect_image(ref)["RepoTags"])


def test_a_saved_removal_of_an_image_a_container_now_uses_keeps_every_tag(
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    tmp_path: Path,
    api: APIClient,
    docker: DockerRun,
) -> None:
    first = image_factory("old:1", push=False, keep_local=True)
    second = f"{namespace}/old:2"
    docker("tag", first, second)
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/old
            state: absent
    """)
    plan_file = tmp_path / "plan.json"
    planned = run_cli("plan", manifest, "--out", plan_file)
    assert planned.code == 0, planned.stderr
    docker("create", "--name", f"user-{namespace.rsplit('/', 1)[-1]}", first, "/none")

    applied = run_cli("apply", plan_file, "-o", "json")
    assert applied.code == 4, applied.stderr
    results = json.loads(applied.stdout)["steps"]
    assert {r["outcome"] for r in results} == {"stale"}, results
    assert all("kept with all its tags" in r["detail"] for r in results)
    assert tags_of(api, first) == sorted([first, second])  # before: old:1 was untagged, old:2 refused


def test_a_failed_pull_leaves_the_working_tag_it_was_to_replace(
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    api: APIClient,
    docker: DockerRun,
) -> None:
    working = image_factory("dep:1.0", push=False, keep_local=True)
    docker("tag", working, f"{namespace}/dep:stable")
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/dep
            tags: ["1.1"]          # never pushed: the pull fails
            aliases: ["{namespace}/dep:stable"]
        prune:
          unlisted_tags: true
    """)
    applied = run_cli("apply", manifest, "-o", "json")
    assert applied.code == 3, applied.stderr
    results = {(r["action"], r["ref"]): r for r in json.loads(applied.stdout)["steps"]}
    assert results[("pull", f"{namespace}/dep:1.1")]["outcome"] == "failed"
    kept = results[("remove", f"{namespace}/dep:1.0")]
    assert kept["outcome"] == "skipped" and "nothing it was to replace is touched" in kept["detail"]
    assert tags_of(api, working) == sorted([working, f"{namespace}/dep:stable"])


def test_a_daemon_that_dies_during_the_pulls_leaves_a_report_of_every_step_and_the_history(
    sandbox: Any,
    namespace: str,
    image_factory: ImageFactory,
    tmp_manifest: WriteManifest,
    tmp_path: Path,
    start_cli: StartCli,
    run_cli: CliRun,
) -> None:
    wanted = image_factory("app:1")
    old = image_factory("old:1", push=False, keep_local=True)
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/app
            tags: ["1"]
          - name: {namespace}/old
            state: absent
    """)
    state = tmp_path / "state"
    env = {"RECONCILE_STATE_DIR": str(state), "RECONCILE_LOCK_DIR": str(tmp_path)}
    with DaemonProxy(sandbox.docker_host, [Rule("POST", r".*/images/create")]) as proxy:
        child = start_cli("apply", manifest, "-H", proxy.address, "-o", "json", env=env)
        deadline = time.monotonic() + 60
        while not proxy.hung and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proxy.hung, "the pull never reached the daemon"
        proxy.close()  # the daemon is gone: the held pull's connection drops, new ones are refused
        stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 69, stderr
    results = {(r["action"], r["ref"]): r for r in json.loads(stdout)["steps"]}
    assert results[("pull", wanted)]["outcome"] == "failed"
    not_done = results[("remove", old)]
    assert (not_done["outcome"], not_done["detail"]) == ("skipped", "not done: the daemon stopped answering")
    history = run_cli("history", "-o", "json", "--state-dir", state, env=env)
    assert history.code == 0, history.stderr
    recorded = {(r["action"], r["outcome"]) for r in json.loads(history.stdout)}
    assert recorded == {("pull", "failed"), ("remove", "skipped")}


def _push_as_architecture(registry: str, ref: str, new_tag: str, architecture: str) -> None:
    """Serve ``ref``'s layers under ``new_tag`` with a config that says ``architecture``."""
    path, tag = ref.removeprefix(f"{registry}/").rsplit(":", 1)
    base = f"http://{registry}/v2/{path}"
    kind = "application/vnd.docker.distribution.manifest.v2+json"
    manifest = requests.get(f"{base}/manifests/{tag}", headers={"Accept": kind}, timeout=30).json()
    config = requests.get(f"{base}/blobs/{manifest['config']['digest']}", timeout=30).json()
    config["architecture"] = architecture
    body = json.dumps(config).encode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    upload = requests.post(f"{base}/blobs/uploads/", timeout=30)
    location = upload.headers["Location"]
    location = location if location.startswith("http") else f"http://{registry}{location}"
    joiner = "&" if "?" in location else "?"
    done = requests.put(f"{location}{joiner}digest={digest}", data=body, timeout=30)
    assert done.status_code == 201, done.text
    manifest["config"].update(digest=digest, size=len(body))
    put = requests.put(f"{base}/manifests/{new_tag}", data=json.dumps(manifest), headers={"Content-Type": kind}, timeout=30)
    assert put.status_code == 201, put.text


def test_a_pull_of_another_platform_than_declared_fails_and_tags_nothing(
    sandbox: Any,
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    api: APIClient,
) -> None:
    amd64 = image_factory("tool:amd64")
    _push_as_architecture(sandbox.registry, amd64, "arm-only", "arm64")
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/tool
            tags: ["arm-only"]
            platform: linux/amd64
            aliases: ["{namespace}/tool:stable"]
    """)
    applied = run_cli("apply", manifest, "-o", "json")
    assert applied.code == 3, applied.stderr
    results = {(r["action"], r["ref"]): r for r in json.loads(applied.stdout)["steps"]}
    pull = results[("pull", f"{namespace}/tool:arm-only")]
    assert pull["outcome"] == "failed" and "not the declared linux/amd64" in pull["detail"], pull
    assert results[("tag", f"{namespace}/tool:stable")]["outcome"] == "skipped"
    listed = {t for image in api.images(name=f"{namespace}/tool") for t in image.get("RepoTags") or ()}
    assert listed == set()  # before: the arm64 image was tagged and the host "matched"


@pytest.mark.parametrize(("signal_number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_during_a_slow_pull_stops_at_once_and_reports_what_was_not_done(
    signal_number: int,
    code: int,
    sandbox: Any,
    namespace: str,
    image_factory: ImageFactory,
    tmp_manifest: WriteManifest,
    tmp_path: Path,
    start_cli: StartCli,
    run_cli: CliRun,
) -> None:
    ref = image_factory("slow:1", size_kb=256)
    old = image_factory("old:1", push=False, keep_local=True)
    with RegistryProxy(sandbox.registry, delay=3.0) as proxy:  # every registry request takes 3 s
        slow = ref.replace(sandbox.registry, proxy.address, 1)
        manifest = tmp_manifest(f"""
            version: 1
            images:
              - name: {slow.rsplit(":", 1)[0]}
                tags: ["1"]
              - name: {namespace}/old
                state: absent
        """)
        state = tmp_path / "state"
        env = {"RECONCILE_STATE_DIR": str(state), "RECONCILE_LOCK_DIR": str(tmp_path)}
        child = start_cli("apply", manifest, "-o", "json", env=env)
        deadline = time.monotonic() + 60
        while proxy.requests == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.requests, "the pull never reached the registry"
        time.sleep(0.5)
        child.send_signal(signal_number)
        sent = time.monotonic()
        stdout, stderr = child.communicate(timeout=120)
        took = time.monotonic() - sent
    assert child.returncode == code, stderr
    assert took < 10, f"the run went on for {took:.1f}s after the signal"
    results = {(r["action"], r["ref"]): r for r in json.loads(stdout)["steps"]}
    assert results[("pull", slow)]["outcome"] == "skipped" and "cancelled" in results[("pull", slow)]["detail"]
    assert results[("remove", old)]["detail"].startswith("not done: the run was interrupted")
    history = run_cli("history", "-o", "json", "--state-dir", state, env=env)
    assert history.code == 0, history.stderr
    assert {r["outcome"] for r in json.loads(history.stdout)} == {"skipped"}
    assert len(json.loads(history.stdout)) == 2
