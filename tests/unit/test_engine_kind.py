"""Engine recognition and Podman's identity, from the documents the engines answer with."""

from __future__ import annotations

from reconciler.daemon.engine_kind import EngineKind, engine_from_version, podman_identity

PODMAN_VERSION = {
    "Platform": {"Name": "linux/amd64/debian-12"},
    "Components": [
        {"Name": "Podman Engine", "Version": "4.3.1", "Details": {"APIVersion": "4.3.1", "MinAPIVersion": "4.0.0"}},
        {"Name": "Conmon", "Version": "conmon version 2.1.6"},
    ],
    "Version": "4.3.1",
    "ApiVersion": "1.41",
}
DOCKER_VERSION = {
    "Components": [{"Name": "Engine", "Version": "20.10.24+dfsg1", "Details": {"ApiVersion": "1.41"}}],
    "Version": "20.10.24+dfsg1",
}
LIBPOD_INFO = {
    "host": {"hostname": "build-7"},
    "store": {"graphRoot": "/var/lib/containers/storage", "runRoot": "/run/containers/storage"},
}


def test_podman_is_recognised_by_its_component_and_gives_its_libpod_api() -> None:
    assert engine_from_version(PODMAN_VERSION) == EngineKind("podman", "4.3.1")


def test_docker_and_odd_documents_read_as_docker() -> None:
    assert engine_from_version(DOCKER_VERSION) == EngineKind()
    assert engine_from_version({}) == EngineKind()
    assert engine_from_version(None) == EngineKind()
    assert engine_from_version({"Components": None}).name == "docker"


def test_podman_identity_is_stable_and_names_the_store() -> None:
    first = podman_identity(LIBPOD_INFO)
    assert first == podman_identity(dict(LIBPOD_INFO))
    assert first.engine_id.startswith("podman-")
    assert first.name == "build-7"
    assert first.root_dir == "/var/lib/containers/storage"


def test_another_store_or_host_is_another_daemon() -> None:
    base = podman_identity(LIBPOD_INFO).engine_id
    other_store = {**LIBPOD_INFO, "store": {"graphRoot": "/srv/storage", "runRoot": "/run/containers/storage"}}
    other_host = {**LIBPOD_INFO, "host": {"hostname": "build-8"}}
    assert podman_identity(other_store).engine_id != base
    assert podman_identity(other_host).engine_id != base


def test_no_store_gives_no_engine_id_so_the_socket_keys_the_lock() -> None:
    assert podman_identity({"host": {"hostname": "h"}}).engine_id == ""
    assert podman_identity(None).engine_id == ""
