"""Daemons that misbehave, through a proxy in front of the sandbox daemon's socket.

One that answers an API call with a 500 is reported as that host's error while the other
daemons of the run are planned and applied; one that never answers a pull fails the pull
step within --pull-timeout instead of hanging the run.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from docker import APIClient

from tests.integration.conftest import CliRun, ImageFactory, Sandbox
from tests.integration.daemon_proxy import DaemonProxy, Rule

ManifestWriter = Callable[..., Path]

INJECTED = "the test proxy refused to list images"


def _one_image_manifest(image_factory: ImageFactory, namespace: str, tmp_manifest: ManifestWriter) -> tuple[str, Path]:
    ref = image_factory("app:1")  # pushed to the sandbox registry, not on the daemon
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/app
            tags: ["1"]
    """)
    return ref, manifest


def test_a_daemon_answering_500_does_not_stop_the_others(
    sandbox: Sandbox,
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: ManifestWriter,
    api: APIClient,
) -> None:
    ref, manifest = _one_image_manifest(image_factory, namespace, tmp_manifest)
    same_daemon = sandbox.docker_host.replace("/run/", "/run//")
    assert same_daemon != sandbox.docker_host
    refuses = Rule("GET", r"/v[\d.]+/images/json", status=500, message=INJECTED)
    with DaemonProxy(sandbox.docker_host, [refuses]) as proxy:
        order = [sandbox.docker_host, proxy.address, same_daemon]
        hosts = [arg for address in order for arg in ("-H", address)]

        def check_error(document: dict[str, Any]) -> None:
            # A daemon refusing a request is an error of that host (DaemonError: exit 1, unexpected).
            assert document["host"] == proxy.address
            assert document["exit_code"] == 1, document
            assert proxy.address in document["error"], document
            assert "GET /images/json" in document["error"], document
            assert INJECTED in document["error"], document
            assert "steps" not in document

        planned = run_cli("plan", manifest, *hosts, "-o", "json")
        # The most serious of the hosts' codes: 0, 1, 0 -> 1.
        assert planned.code == 1, planned.stdout + planned.stderr
        documents = json.loads(planned.stdout)["hosts"]
        assert [d["host"] for d in documents] == order
        for planned_host in (documents[0], documents[2]):
            assert [(s["action"], s["ref"]) for s in planned_host["steps"]] == [("pull", ref)], planned_host
            assert "error" not in planned_host
        check_error(documents[1])
        assert proxy.answered, "the proxy was never asked for the image list"

        applied = run_cli("apply", manifest, *hosts, "-o", "json")
        assert applied.code == 1, applied.stdout + applied.stderr
        documents = json.loads(applied.stdout)["hosts"]
        assert [d["host"] for d in documents] == order
        # Two addresses of one daemon take turns (at once, either may come first): one pulls, the other finds it in sync.
        pulled, in_sync = sorted((documents[0], documents[2]), key=lambda d: len(d["steps"]), reverse=True)
        assert [(s["action"], s["ref"], s["outcome"]) for s in pulled["steps"]] == [("pull", ref, "done")], pulled
        assert pulled["summary"]["complete"] is True
        assert in_sync["steps"] == [] and in_sync["summary"]["complete"] is True, in_sync
        check_error(documents[1])
        assert api.inspect_image(ref)["Id"]

        # Text output: each daemon's section as it ends (the other daemons' plans, none for the middle
        # one, whose error goes to stderr), then the summary, which names it with its error.
        api.remove_image(ref)
        text = run_cli("plan", manifest, *hosts)
        assert text.code == 1, text.stdout + text.stderr
        body, _, summary = text.stdout.rpartition("\nhost ")
        sections = {part.split(" ==", 1)[0]: part for part in body.split("\n== ")[1:]}
        assert sorted(sections) == sorted(order), text.stdout
        assert ref in sections[sandbox.docker_host] and ref in sections[same_daemon], text.stdout
        assert ref not in sections[proxy.address] and INJECTED not in sections[proxy.address], text.stdout
        assert proxy.address in text.stderr and INJECTED in text.stderr, text.stderr
        assert f"{proxy.address}: " in summary and INJECTED in summary, summary


def test_a_pull_to_a_hung_daemon_fails_within_the_pull_timeout(
    sandbox: Sandbox,
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: ManifestWriter,
    api: APIClient,
) -> None:
    ref, manifest = _one_image_manifest(image_factory, namespace, tmp_manifest)
    hang_pulls = Rule("POST", r".*/images/create")
    with DaemonProxy(sandbox.docker_host, [hang_pulls]) as proxy:
        started = time.monotonic()
        try:
            applied = run_cli("apply", manifest, "-H", proxy.address, "--pull-timeout", "5", "-o", "json", timeout=120)
        except subprocess.TimeoutExpired as exc:  # pragma: no cover - the failure this test exists for
            raise AssertionError(f"apply against a hung daemon did not end within 120s: {exc}") from None
        elapsed = time.monotonic() - started
        assert proxy.hung, "the pull never reached the proxy"
    assert elapsed < 30, f"apply took {elapsed:.1f}s with --pull-timeout 5"
    # A pull the daemon does not answer in time is a failed step: exit 3 (apply finished, a step failed).
    assert applied.code == 3, applied.stdout + applied.stderr
    report = json.loads(applied.stdout)
    steps = [(s["action"], s["ref"], s["outcome"]) for s in report["steps"]]
    assert steps == [("pull", ref, "failed")], report
    detail = report["steps"][0]["detail"]
    assert "5s" in detail, detail
    assert report["summary"]["complete"] is False
    assert not any(ref in tags for image in api.images() for tags in [image.get("RepoTags") or []])
