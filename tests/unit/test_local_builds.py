"""The daemon side of builds and loads that needs no daemon: the docker CLI's command line and
its absence, and the names a load reports."""

from __future__ import annotations

import time
from pathlib import Path

import docker
import pytest

from reconciler.daemon import local_builds
from reconciler.daemon.host import BuildFailed, BuildRequest


def test_buildkit_without_a_docker_cli_fails_the_build_and_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    request = BuildRequest(context="/nowhere", dockerfile="Dockerfile", tag="app:1", buildkit=True)
    with pytest.raises(BuildFailed, match=r"there is no `docker` on PATH; install the docker CLI .* or use builder: legacy"):
        local_builds.cli_build("unix:///run/docker.sock", None, request, 10.0, lambda line: None)


def test_the_docker_cli_is_pointed_at_the_runs_daemon_and_tls_files(tmp_path: Path) -> None:
    ca, cert, key = (str(tmp_path / name) for name in ("ca.pem", "cert.pem", "key.pem"))
    for path in (ca, cert, key):
        Path(path).write_text("not read here\n")
    tls = docker.tls.TLSConfig(client_cert=(cert, key), ca_cert=ca, verify=True)
    assert local_builds._connection_flags("tcp://build:2376", tls) == [
        "-H", "tcp://build:2376", "--tlsverify", "--tlscacert", ca, "--tlscert", cert, "--tlskey", key,
    ]  # fmt: skip
    assert local_builds._connection_flags("unix:///run/docker.sock", None) == ["-H", "unix:///run/docker.sock"]


def test_the_cli_runs_without_the_environments_daemon_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONTEXT", "elsewhere")
    monkeypatch.setenv("DOCKER_HOST", "tcp://elsewhere:2375")
    environment = local_builds._cli_environment()
    assert "DOCKER_CONTEXT" not in environment and "DOCKER_HOST" not in environment
    assert environment["DOCKER_BUILDKIT"] == "1"


def test_a_load_names_images_by_reference_or_by_id() -> None:
    assert local_builds._loaded_name("Loaded image: app:1") == ["app:1"]
    assert local_builds._loaded_name("Loaded image ID: sha256:" + "a" * 64) == ["sha256:" + "a" * 64]
    assert local_builds._loaded_name("Loading layer  1.2kB/1.2kB") == []


def test_a_cli_build_past_its_deadline_is_ended_and_reported_as_timed_out() -> None:
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(BuildFailed, match=r"did not finish within 0.5s") as caught:
        # The child (as buildx is the CLI's) holds the output pipe: it must end with the CLI.
        local_builds._run(["sh", "-c", "echo started; sleep 60; echo late"], {"PATH": "/usr/bin:/bin"}, 0.5, lines.append)
    assert caught.value.timed_out and lines == ["started"]
    assert time.monotonic() - started < 30  # not when the child would have ended


def test_a_failing_cli_build_reports_its_error_line() -> None:
    script = "echo '#5 [2/2] RUN false'; echo 'ERROR: process \"/bin/sh -c false\" did not complete'; exit 1"
    with pytest.raises(BuildFailed, match=r'^ERROR: process "/bin/sh -c false" did not complete$'):
        local_builds._run(["sh", "-c", script], {"PATH": "/usr/bin:/bin"}, 10.0, lambda line: None)
