"""The usage facts retention decides by, on the sandbox daemon: when an image arrived (min_age),
where declared tags pointed (keep_previous), what was in use, and gaps in the daemon's events."""

from __future__ import annotations

import contextlib
import json
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from docker import APIClient

from tests.integration.conftest import (
    MANIFEST_V2,
    CliRun,
    DockerRun,
    Engine,
    ImageFactory,
    Sandbox,
    StartCli,
    _delete_from_registry,
    _split_ref,
)
from tests.integration.test_retention import Load, exists, load, manifest_text

__all__ = ["load"]  # the fixture, imported to be used here

Push = Callable[[str], None]


@pytest.fixture
def push(docker: DockerRun, sandbox: Sandbox) -> Iterator[Push]:
    """``push(ref)``: push a local image to the sandbox registry; deleted from it afterwards."""
    pushed: list[str] = []

    def run(ref: str) -> None:
        docker("push", ref)
        pushed.append(ref)

    yield run
    for ref in pushed:
        with contextlib.suppress(OSError):
            _delete_from_registry(sandbox.registry, ref)


def _arrived_just_now(
    load: Load, push: Push, docker: DockerRun, namespace: str, repo: str
) -> tuple[str, str]:
    """An image built 30 days ago that this host got a moment ago by `docker pull`: (id, ref)."""
    image_id = load(repo, "1", age_days=30)
    ref = f"{namespace}/{repo}:1"
    push(ref)
    docker("rmi", ref)
    docker("pull", ref)
    return image_id, ref


OLD_RULE = """\
  min_age: MIN_AGE
  rules:
    - name: stale
      select: {repositories: ["NS/old"]}
      older_than: 7d
"""


def test_min_age_protects_an_old_image_that_was_pulled_a_moment_ago(
    run_cli: CliRun,
    load: Load,
    push: Push,
    docker: DockerRun,
    namespace: str,
    api: APIClient,
    tmp_manifest: Callable[..., Path],
) -> None:
    image_id, _ = _arrived_just_now(load, push, docker, namespace, "old")
    path = tmp_manifest(manifest_text(namespace, OLD_RULE.replace("MIN_AGE", "1h")))
    planned = run_cli("plan", path, "--explain")
    assert planned.code == 0, planned.stderr
    assert "No changes" in planned.stdout, planned.stdout
    # The table's row names the rung; the decision below it says why.
    decided = [li for li in planned.stdout.splitlines() if "min-age" in li]
    assert any("arrived" in li and "within min_age 1h" in li for li in decided), decided
    data = json.loads(run_cli("plan", path, "--explain", "-o", "json").stdout)
    (entry,) = [i for i in data["images"] if i["image_id"] == image_id]
    assert entry["verdict"] == "keep" and entry["decisions"][0]["rung"] == "min-age"
    assert time.time() - 120 < entry["arrived"] <= time.time()
    assert entry["created"] < time.time() - 29 * 86_400
    applied = run_cli("apply", path)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert exists(api, image_id)


def test_an_arrived_image_goes_once_its_arrival_is_older_than_min_age(
    run_cli: CliRun,
    load: Load,
    push: Push,
    docker: DockerRun,
    namespace: str,
    api: APIClient,
    tmp_manifest: Callable[..., Path],
) -> None:
    image_id, _ = _arrived_just_now(load, push, docker, namespace, "old")
    pulled = time.time()
    path = tmp_manifest(manifest_text(namespace, OLD_RULE.replace("MIN_AGE", "3s")))
    first = run_cli("apply", path)
    assert first.code == 0, first.stdout + first.stderr
    assert exists(api, image_id), "removed by the run that saw it arrive"
    time.sleep(max(0.0, pulled + 4 - time.time()))
    second = run_cli("apply", path)
    assert second.code == 0, second.stdout + second.stderr
    assert "retention rule stale: older_than" in second.stdout, second.stdout
    assert not exists(api, image_id)


def _copy_in_registry(registry: str, source: str, target: str) -> None:
    """Make the registry's ``target`` (repo:tag) the manifest of ``source``, as a CI pipeline
    promoting a build would: no docker on this host ever tags ``target``, so only pulls move it."""
    (src_name, src_tag), (dst_name, dst_tag) = _split_ref(source), _split_ref(target)
    get = urllib.request.Request(
        f"http://{registry}/v2/{src_name}/manifests/{src_tag}", headers={"Accept": MANIFEST_V2}
    )
    with urllib.request.urlopen(get, timeout=10) as response:
        manifest = response.read()
    blobs = json.loads(manifest)
    for blob in (blobs["config"], *blobs["layers"]):
        mount = urllib.request.Request(
            f"http://{registry}/v2/{dst_name}/blobs/uploads/?mount={blob['digest']}&from={src_name}",
            method="POST",
        )
        urllib.request.urlopen(mount, timeout=10).close()
    put = urllib.request.Request(
        f"http://{registry}/v2/{dst_name}/manifests/{dst_tag}",
        data=manifest,
        method="PUT",
        headers={"Content-Type": MANIFEST_V2},
    )
    urllib.request.urlopen(put, timeout=10).close()


def test_keep_previous_keeps_the_image_a_deploy_just_replaced(
    run_cli: CliRun,
    load: Load,
    push: Push,
    docker: DockerRun,
    namespace: str,
    api: APIClient,
    sandbox: Sandbox,
    tmp_manifest: Callable[..., Path],
) -> None:
    """A deploy manifest without retention moves app:live by pulls (v0, v1, v2); the clean-up
    manifest's keep_previous: 1 keeps v1, the image the last deploy replaced."""
    live = f"{namespace}/app:live"
    deploy = tmp_manifest(
        f"version: 1\nimages:\n  - name: {namespace}/app\n    tags: [live]\n    pull: always\n",
        name="deploy.yaml",
    )
    versions = []
    for number in range(3):
        build = f"{namespace}/build:v{number}"
        versions.append(load("build", f"v{number}", age_days=20 - number))
        push(build)
        docker("rmi", build)
        _copy_in_registry(sandbox.registry, build, live)
        applied = run_cli("apply", deploy)
        assert applied.code == 0, applied.stdout + applied.stderr
        assert api.inspect_image(live)["Id"] == versions[-1]
    cleanup = tmp_manifest(
        manifest_text(
            namespace,
            """\
  min_age: 0s
  rules:
    - name: app
      select: {repositories: ["NS/app"]}
      keep_tags: "live"
      keep_previous: 1
    - name: leftovers
      select: {untagged: true, repositories: ["NS/app"]}
""",
        ),
        name="cleanup.yaml",
    )
    applied = run_cli("apply", cleanup)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert exists(api, versions[2]), "the tag's image stays"
    assert exists(api, versions[1]), "the image the last deploy replaced is kept: " + applied.stdout
    assert not exists(api, versions[0]), "the image from two moves back goes"


KEEP_ALL = """\
  rules:
    - name: all
      select: {repositories: ["NS/**"]}
      keep_within: 1000d
"""


def _flood(api: APIClient, image_id: str, namespace: str, count: int = 300) -> None:
    """``count`` events or more on the daemon (tag and untag of ``image_id``): its buffer keeps 256."""
    for n in range(count // 2):
        api.tag(image_id, f"{namespace}/flood", str(n))
        api.remove_image(f"{namespace}/flood:{n}")


def _explained(run_cli: CliRun, path: Path) -> dict[str, dict[str, object]]:
    planned = run_cli("plan", path, "--explain", "-o", "json")
    assert planned.code == 0, planned.stderr
    return {entry["image_id"]: entry for entry in json.loads(planned.stdout)["images"]}


def test_an_image_a_container_uses_counts_as_used_even_when_its_events_are_lost(
    run_cli: CliRun,
    load: Load,
    docker: DockerRun,
    namespace: str,
    api: APIClient,
    tmp_manifest: Callable[..., Path],
) -> None:
    used = load("svc", "1")
    other = load("noise", "1")
    docker("create", "--name", f"svc-{namespace.rsplit('/', 1)[1]}", f"{namespace}/svc:1")
    _flood(api, other, namespace)  # the container's create event is gone from the daemon's buffer
    path = tmp_manifest(manifest_text(namespace, KEEP_ALL))
    before = time.time()
    applied = run_cli("apply", path)
    assert applied.code == 0, applied.stdout + applied.stderr
    last_used = _explained(run_cli, path)[used]["last_used"]
    assert isinstance(last_used, float) and before - 1 <= last_used <= time.time(), last_used


def test_a_container_event_is_not_credited_to_an_image_its_tag_moved_to_later(
    run_cli: CliRun,
    load: Load,
    docker: DockerRun,
    namespace: str,
    api: APIClient,
    tmp_manifest: Callable[..., Path],
) -> None:
    load("app", "live", age_days=20)
    name = f"ran-{namespace.rsplit('/', 1)[1]}"
    docker("create", "--name", name, f"{namespace}/app:live")  # names its image by the tag only
    docker("rm", name)
    moved = load("app", "live", age_days=10)  # `docker load` moves the tag; no tag event says so
    path = tmp_manifest(manifest_text(namespace, KEEP_ALL))
    assert run_cli("apply", path).code == 0
    entries = _explained(run_cli, path)
    assert entries[moved]["last_used"] is None, (
        "the container ran before this image was on the host"
    )


def test_a_container_created_since_the_last_run_is_its_images_last_use(
    engine: Engine,
    image_factory: ImageFactory,
    run_cli: CliRun,
    namespace: str,
    tmp_manifest: Callable[..., Path],
) -> None:
    """The use is known from the engine's events alone (the container is gone by the next run).
    Podman 4.3 answers `GET /events` with an `until` with part of its log, or nothing."""
    ref = engine.local(image_factory, "ran:1")
    image_id = engine.api.inspect_image(ref)["Id"]
    path = tmp_manifest(manifest_text(namespace, KEEP_ALL))
    first = run_cli("apply", path)
    assert first.code == 0, first.stdout + first.stderr
    name = f"used-{namespace.rsplit('/', 1)[1]}"
    used_at = time.time()
    engine.docker("create", "--name", name, ref, "/none")  # never started: an image of data only
    engine.docker("rm", name)
    planned = run_cli("plan", path, "--explain", "-o", "json")
    assert planned.code == 0, planned.stderr
    assert "may be incomplete" not in planned.stderr, planned.stderr
    entries = {e["image_id"]: e for e in json.loads(planned.stdout)["images"]}
    last_used = entries[image_id]["last_used"]
    assert isinstance(last_used, float) and used_at - 1 <= last_used <= time.time(), last_used


def test_a_gap_in_the_daemons_events_is_warned_about_and_explained(
    run_cli: CliRun,
    load: Load,
    namespace: str,
    api: APIClient,
    tmp_manifest: Callable[..., Path],
) -> None:
    noise = load("noise", "1")
    path = tmp_manifest(manifest_text(namespace, KEEP_ALL))
    assert run_cli("apply", path).code == 0  # records where it read the events up to
    _flood(api, noise, namespace)
    planned = run_cli("plan", path, "--explain")
    assert planned.code == 0, planned.stderr
    assert "Warning: The daemon's events since the last run may be incomplete" in planned.stderr
    assert "events: The daemon's events since the last run may be incomplete" in planned.stdout
    applied = run_cli("apply", path)
    assert "may be incomplete" in applied.stderr


def test_watch_records_a_use_the_daemon_forgets_before_the_next_apply(
    run_cli: CliRun,
    load: Load,
    docker: DockerRun,
    namespace: str,
    api: APIClient,
    tmp_manifest: Callable[..., Path],
    tmp_path: Path,
    start_cli: StartCli,
) -> None:
    used = load("ran", "1")
    other = load("noise", "1")
    state = tmp_path / "watch-state"
    watcher = start_cli("watch", "--interval", "0.5", env={"RECONCILE_STATE_DIR": str(state)})
    try:
        deadline = time.monotonic() + 30
        while not (state / "usage.sqlite3").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (state / "usage.sqlite3").exists(), "watch recorded no round"
        name = f"once-{namespace.rsplit('/', 1)[1]}"
        ran_at = time.time()
        docker("create", "--name", name, f"{namespace}/ran:1")
        docker("rm", name)  # its use is now only in the daemon's events ...
        time.sleep(2)
        _flood(api, other, namespace)  # ... and then not even there
    finally:
        watcher.send_signal(signal.SIGTERM)
        _, stderr = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, stderr
    path = tmp_manifest(manifest_text(namespace, KEEP_ALL))
    planned = run_cli(
        "plan", path, "--explain", "-o", "json", env={"RECONCILE_STATE_DIR": str(state)}
    )
    assert planned.code == 0, planned.stderr
    last_used = {e["image_id"]: e for e in json.loads(planned.stdout)["images"]}[used]["last_used"]
    assert isinstance(last_used, float) and ran_at - 1 <= last_used <= time.time(), last_used
