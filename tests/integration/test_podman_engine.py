"""The sandbox's Podman service (``podman system service``) driven through the CLI.

Podman speaks Docker's API with differences the daemon seam handles; these tests show each
handled difference on the real service. Images are made with the sandbox dockerd and pushed
to the sandbox registry, then pulled by reconcile into Podman's own store.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import podman_address
from docker import APIClient
from docker.errors import NotFound

from reconciler.daemon.docker_engine import DockerEngine
from reconciler.state.lock_dir import daemon_identity

ImageFactory = Callable[..., str]
CliRun = Callable[..., Any]
WriteManifest = Callable[..., Path]


@pytest.fixture(scope="module")
def podman_host() -> str:
    """The Podman service's address from `scripts/sandbox env`."""
    return podman_address(os.environ)


@pytest.fixture
def podman_api(podman_host: str, namespace: str) -> Iterator[APIClient]:
    """A docker-py client on Podman; removes every image of the test's namespace afterwards."""
    client = APIClient(base_url=podman_host, version="1.41")
    yield client
    for image in client.images():
        refs = [*(image.get("RepoTags") or ()), *(image.get("RepoDigests") or ())]
        if any(ref.startswith(f"{namespace}/") for ref in refs):
            with contextlib.suppress(NotFound):
                client.remove_image(image["Id"], force=True)
    client.close()


def test_podman_has_one_identity_across_calls_and_connections(podman_host: str) -> None:
    # Podman's /info ID is random per call; the lock and saved plans need a stable one.
    first = DockerEngine.connect(podman_host, {"base_url": podman_host})
    second = DockerEngine.connect(podman_host, {"base_url": podman_host})
    try:
        assert first.engine().is_podman
        assert daemon_identity(first) == daemon_identity(second)
        assert first.identity().engine_id.startswith("podman-")
    finally:
        first.close()
        second.close()


def test_a_saved_plan_applies_on_the_podman_service_it_was_made_for(
    podman_host: str,
    podman_api: APIClient,
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    tmp_path: Path,
) -> None:
    web = image_factory("web:1.0")
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/web
            tags: ["1.0"]
    """)
    plan_file = tmp_path / "plan.json"
    planned = run_cli("plan", manifest, "--out", plan_file, "-H", podman_host)
    assert planned.code == 0, planned.stdout + planned.stderr
    applied = run_cli("apply", plan_file, "-H", podman_host)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert any(web in (image.get("RepoTags") or ()) for image in podman_api.images())
    again = run_cli("plan", manifest, "-H", podman_host, "--detailed-exitcode")
    assert again.code == 0, again.stdout + again.stderr


def test_an_alias_on_podman_converges_despite_its_digest_reference(
    podman_host: str,
    podman_api: APIClient,
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
) -> None:
    # Podman also records the pulled digest under the alias's repository; that is no drift.
    image_factory("app:2")
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/app
            tags: ["2"]
            aliases: ["{namespace}/app-stable:current"]
    """)
    applied = run_cli("apply", manifest, "-H", podman_host)
    assert applied.code == 0, applied.stdout + applied.stderr
    again = run_cli("plan", manifest, "-H", podman_host, "--detailed-exitcode")
    assert again.code == 0, again.stdout + again.stderr
