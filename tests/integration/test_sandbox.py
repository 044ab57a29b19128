"""The integration fixtures work against the sandbox's real daemon and registry."""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from docker import APIClient
from extra_daemons import ExtraDaemon, extra_daemon_down, extra_daemon_up

DockerRun = Callable[..., "subprocess.CompletedProcess[str]"]
ImageFactory = Callable[..., str]


def _registry_tags(sandbox: Any, repository: str) -> list[str]:
    with urllib.request.urlopen(
        f"http://{sandbox.registry}/v2/{repository}/tags/list", timeout=10
    ) as response:
        return list(json.load(response)["tags"] or [])


def test_pushed_image_can_be_pulled_back(
    sandbox: Any, namespace: str, image_factory: ImageFactory, docker: DockerRun, api: APIClient
) -> None:
    ref = image_factory("roundtrip:1.0", size_kb=128)

    assert ref == f"{namespace}/roundtrip:1.0"
    assert api.images(name=ref) == [], "image_factory should remove the local copy"
    assert _registry_tags(sandbox, ref.split("/", 1)[1].rsplit(":", 1)[0]) == ["1.0"]

    docker("pull", ref)

    # inspect, not images(name=...): a reference filter drops RepoDigests from the listing.
    image = api.inspect_image(ref)
    assert ref in image["RepoTags"]
    assert any(d.startswith(f"{namespace}/roundtrip@sha256:") for d in image["RepoDigests"])
    assert image["Size"] >= 128 * 1024


def test_derived_image_shares_the_base_layers(image_factory: ImageFactory, api: APIClient) -> None:
    base = image_factory("base:1", keep_local=True)
    derived = image_factory("derived:1", base=base, size_kb=32, keep_local=True)

    base_layers = api.inspect_image(base)["RootFS"]["Layers"]
    derived_layers = api.inspect_image(derived)["RootFS"]["Layers"]
    assert derived_layers[: len(base_layers)] == base_layers
    assert len(derived_layers) == len(base_layers) + 1


def test_created_container_is_listed(image_factory: ImageFactory, docker: DockerRun) -> None:
    ref = image_factory("holder:1", push=False, keep_local=True)
    name = f"holder-{uuid.uuid4().hex[:8]}"

    docker("create", "--name", name, ref, "/nothing-to-run")

    listed = docker("ps", "-a", "--filter", f"name={name}", "--format", "{{.Names}} {{.Image}}")
    assert listed.stdout.split() == [name, ref]
    # The daemon refuses to delete an image a container uses; teardown must cope.
    with pytest.raises(subprocess.CalledProcessError, match="conflict"):
        docker("image", "rm", ref)


def test_twin_daemons_share_an_id_and_an_extra_without_a_key_file_has_its_own(
    twin_daemons: tuple[ExtraDaemon, ExtraDaemon], api: APIClient
) -> None:
    first, second = twin_daemons
    assert first.info["ID"] == second.info["ID"]
    assert first.info["DockerRootDir"] != second.info["DockerRootDir"]
    assert first.docker_host != second.docker_host
    name = f"solo-{uuid.uuid4().hex[:8]}"
    solo = extra_daemon_up(name)
    try:
        assert solo.info["ID"] not in (first.info["ID"], api.info()["ID"])
    finally:
        extra_daemon_down(name)
    assert not Path(solo.docker_host.removeprefix("unix://")).parent.exists()  # down removes all it had
