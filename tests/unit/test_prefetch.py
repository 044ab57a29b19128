"""A plan's lists are read while the manifest loads; what a user sees, errors and their order, is unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.daemon.docker_engine import DockerEngine
from reconciler.errors import DaemonUnavailable
from reconciler.flows.host_facts import read_inventory
from reconciler.flows.prefetch import Prefetch
from reconciler.model.inventory import ImageRecord
from tests.fake_daemon import FakeDockerHost
from tests.unit.test_read_path_imports import MANIFEST, REPO, daemon  # noqa: F401 - the fixture

BAD_MANIFEST = "version: 1\nimages:\n  - name: Example.test/App\n    tags: ['1']\n  - tags: [2]\n"


class CountingHost(FakeDockerHost):
    """A fake daemon that counts its reads and can fail the image list."""

    def __init__(self, images_error: Exception | None = None) -> None:
        super().__init__()
        self.images_error = images_error
        self.reads: list[str] = []

    def list_containers(self) -> Any:
        self.reads.append("containers")
        return super().list_containers()

    def list_images(self) -> tuple[ImageRecord, ...]:
        self.reads.append("images")
        if self.images_error is not None:
            raise self.images_error
        return super().list_images()

    def identity(self) -> Any:
        self.reads.append("identity")
        return super().identity()


def prefetched(host: CountingHost) -> Prefetch:
    fetch = Prefetch(lambda: host)  # type: ignore[arg-type, return-value]  # the fake stands in for the engine
    assert fetch.start().host(lambda: pytest.fail("connected again")) is host  # type: ignore[comparison-overlap]
    return fetch


def test_the_prefetched_lists_are_given_once_then_read_again() -> None:
    host = CountingHost()
    host.add_image(["example.test/app:1"])
    fetch = prefetched(host)
    assert host.reads == ["containers", "images"]
    inventory = read_inventory(host, None, None, fetch)
    assert [str(t) for i in inventory.images for t in i.tags] == ["example.test/app:1"]
    assert host.reads == ["containers", "images"]  # nothing read twice
    read_inventory(host, None, None, fetch)
    assert host.reads[2:] == ["containers", "images"]  # a second ask is a fresh read


def test_a_failed_read_is_raised_where_the_read_happens_and_stops_the_later_ones() -> None:
    failure = DaemonUnavailable("The Docker daemon at fake is not answering.")
    host = CountingHost(images_error=failure)
    fetch = prefetched(host)
    assert host.reads == ["containers", "images"]
    containers = fetch.list_containers(host)
    assert containers == ()
    with pytest.raises(DaemonUnavailable) as raised:
        fetch.list_images(host)
    assert raised.value is failure


def test_a_connection_that_failed_is_raised_by_host() -> None:
    failure = DaemonUnavailable("Cannot connect to the Docker daemon at fake.")

    def refuse() -> DockerEngine:
        raise failure

    fetch = Prefetch(refuse).start()
    with pytest.raises(DaemonUnavailable) as raised:
        fetch.host(lambda: pytest.fail("connected again"))
    assert raised.value is failure


def test_the_lists_are_asked_before_the_manifest_is_loaded(
    daemon: tuple[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """The manifest's loading waits (up to 10 s) for the daemon to be asked for its images: only a read
    started before the manifest loads can end that wait early."""
    from reconciler.cli import fleet
    from reconciler.cli.commands import main

    address, asked = daemon
    manifest = tmp_path / "images.yaml"
    manifest.write_text(MANIFEST)
    load = fleet.load_manifests
    seen_before: list[list[str]] = []

    def load_later(targets: Any, state_dir: Any) -> Any:
        until = time.monotonic() + 10
        while "/v1.41/images/json" not in asked and time.monotonic() < until:
            time.sleep(0.01)
        seen_before.append(list(asked))
        return load(targets, state_dir)

    monkeypatch.setattr(fleet, "load_manifests", load_later)
    monkeypatch.setenv("DOCKER_HOST", address)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(["plan", str(manifest), "--state-dir", str(tmp_path / "state"), "--output", "json"])
    assert exit_.value.code == 0
    assert seen_before[0][:3] == ["/version", "/v1.41/containers/json", "/v1.41/images/json"]
    assert asked.count("/v1.41/images/json") == 1  # handed over, not read again


def _reconcile(tmp_path: Path, docker_host: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "DOCKER_HOST": docker_host, "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    env.pop("DOCKER_CONTEXT", None)
    done = subprocess.run([sys.executable, "-m", "reconciler", *args], env=env, capture_output=True, text=True,
                          check=False, cwd=tmp_path, timeout=60)
    return done.returncode, done.stdout, done.stderr


def test_an_invalid_manifest_prints_its_diagnostics_alone_whether_or_not_the_daemon_answers(
    daemon: tuple[str, list[str]], tmp_path: Path  # noqa: F811
) -> None:
    address, _asked = daemon
    (tmp_path / "images.yaml").write_text(BAD_MANIFEST)
    args = ("plan", "images.yaml", "--state-dir", str(tmp_path / "state"))
    answering = _reconcile(tmp_path, address, *args)
    absent = _reconcile(tmp_path, "unix:///nonexistent.sock", *args)
    assert answering == absent
    code, stdout, stderr = answering
    assert code == 65 and stdout == ""
    assert "images.yaml" in stderr and "docker" not in stderr.lower()
