"""Daemon addresses: what docker-py cannot use is a usage error before any connection; /info's ID."""

from __future__ import annotations

from typing import Any

import docker
import pytest
import requests

from reconciler.daemon.address import resolve_host
from reconciler.daemon.docker_engine import DockerEngine, image_from_api
from reconciler.errors import DaemonError, DaemonUnavailable, ExitCode, UsageError

SCHEMES = "unix:///PATH/TO/docker.sock, tcp://HOST:PORT or ssh://[USER@]HOST (npipe:// works on Windows only)"


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("tcp://[::1", "it is malformed (Invalid IPv6 URL)"),
        ("foo://bar", "foo:// is not a scheme reconcile can use"),
        ("fd://", "fd:// is not a scheme reconcile can use"),
        ("npipe:////./pipe/docker_engine", "npipe:// names a Windows named pipe, and this is not Windows"),
        ("tcp://host", "it names no port; a daemon listens on tcp://host:2375, or tcp://host:2376 with TLS"),
        ("unix://", "unix:// names no socket; give its path, such as unix:///var/run/docker.sock"),
        ("ssh://", "ssh:// names no host; give one, such as ssh://user@host"),
        ("ssh://box/path", "it is malformed (no path allowed for this protocol)"),
    ],
)
def test_an_address_docker_cannot_use_is_a_usage_error(
    address: str, why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    with pytest.raises(UsageError) as caught:
        resolve_host(address)
    assert caught.value.exit_code is ExitCode.USAGE
    assert str(caught.value) == f"The Docker daemon address {address!r} from --host cannot be used: {why}. Give {SCHEMES}."


def test_docker_host_is_checked_and_named_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "foo://bar")
    with pytest.raises(UsageError, match="'foo://bar' from DOCKER_HOST cannot be used"):
        resolve_host(None)
    assert resolve_host("unix:///run/docker.sock") == "unix:///run/docker.sock"  # --host wins


@pytest.mark.parametrize(
    "address", ["unix:///var/run/docker.sock", "unix://docker.sock", "tcp://127.0.0.1:2375", "tcp://[::1]:2375",
                "ssh://me@box", "ssh://box:2222", "https://box:2376"],
)
def test_usable_addresses_are_kept_as_given(address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert resolve_host(address) == address


def test_no_address_is_the_local_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert resolve_host(None) == "unix:///var/run/docker.sock"


class Info:
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def info(self) -> Any:
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer

    def version(self) -> Any:
        return {"Components": [{"Name": "Engine", "Version": "20.10.24"}]}  # Docker's: /info's ID counts


def test_engine_id_is_the_id_of_get_info() -> None:
    assert DockerEngine("unix:///d.sock", Info({"ID": " ABCD:EFGH \n"})).identity().engine_id == "ABCD:EFGH"
    assert DockerEngine("unix:///d.sock", Info({"ID": ""})).identity().engine_id == ""
    assert DockerEngine("unix:///d.sock", Info({})).identity().engine_id == ""
    assert DockerEngine("unix:///d.sock", Info(["not", "a", "dict"])).identity().engine_id == ""


def test_engine_id_failures_are_our_errors() -> None:
    with pytest.raises(DaemonUnavailable, match=r"Cannot reach the Docker daemon at unix:///d\.sock"):
        DockerEngine("unix:///d.sock", Info(requests.exceptions.ConnectionError("refused"))).identity()
    refused = docker.errors.APIError("500 Server Error", explanation="boom")
    with pytest.raises(DaemonError, match=r"did not say which daemon it is \(GET /info failed: boom\)"):
        DockerEngine("unix:///d.sock", Info(refused)).identity()


def test_a_digest_reference_podman_lists_among_repo_tags_is_a_digest_not_a_tag() -> None:
    # Podman 4.3's /images/json for an image pulled by digest only.
    pinned = "reg.local/pin@sha256:" + "a" * 64
    record = image_from_api({"Id": "sha256:" + "b" * 64, "RepoTags": [pinned], "RepoDigests": [pinned]})
    assert record.tags == ()
    assert [ref.canonical() for ref in record.digests] == [pinned]


def test_listed_references_come_sorted_with_one_digest_per_canonical_form() -> None:
    digest = "@sha256:" + "c" * 64
    record = image_from_api({
        "Id": "sha256:" + "d" * 64,
        "RepoTags": ["reg.local/b:2", "reg.local/a:1", "<none>:<none>"],
        "RepoDigests": ["reg.local/b" + digest, "busybox" + digest, "docker.io/library/busybox" + digest],
    })
    assert [ref.canonical() for ref in record.tags] == ["reg.local/a:1", "reg.local/b:2"]
    assert [ref.canonical() for ref in record.digests] == ["docker.io/library/busybox" + digest, "reg.local/b" + digest]
    one = image_from_api({"Id": "sha256:" + "e" * 64, "RepoTags": ["app:1"], "RepoDigests": ["app" + digest]})
    assert [ref.canonical() for ref in one.digests] == ["docker.io/library/app" + digest]
    assert image_from_api({"Id": "sha256:" + "f" * 64, "RepoTags": None, "RepoDigests": None}).digests == ()


def test_a_unix_socket_client_reads_no_proxy_settings_and_a_tcp_client_still_does() -> None:
    """requests reads proxy, netrc and CA variables again on every call unless told not to; for a
    unix socket none applies, while a tcp:// daemon may sit behind the proxy the environment names."""
    from reconciler.daemon.docker_py_client import api_client

    assert api_client({"base_url": "unix:///run/none.sock"}, version="1.41").trust_env is False
    assert api_client({"base_url": "tcp://127.0.0.1:2375"}, version="1.41").trust_env is True
