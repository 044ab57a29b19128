"""The Docker config as a source of credentials: broken entries and missing helpers give sentences."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from reconciler.daemon.registry_auth import load_registry_auth

SECRET = "!!c2VjcmV0"  # what must never be echoed


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no credential helper anywhere
    return tmp_path / "config.json"


def test_invalid_base64_in_auths_names_the_file_and_registry_not_the_value(docker_config: Path) -> None:
    docker_config.write_text(json.dumps({"auths": {
        "good.example": {"auth": "dXNlcjpwYXNz"},
        "registry.example:5000": {"auth": SECRET},
    }}))
    auth = load_registry_auth({})  # like the docker CLI, go on without the config
    assert auth.config is None and auth.for_registry("good.example") is None
    message = auth.auth_failure_hint("registry.example:5000")
    assert message == (
        f"In the Docker config {docker_config}, the `auths` entry for registry.example:5000 has an `auth` "
        "value that is not base64 of USER:PASSWORD. Log in again with `docker login registry.example:5000`, "
        "or delete that entry; or set RECONCILE_REGISTRY_USER and RECONCILE_REGISTRY_PASSWORD for every registry."
    )
    assert SECRET not in message and "c2VjcmV0" not in message


@pytest.mark.parametrize("value", [5, "bm8tY29sb24=", "/w=="])  # not text; no ':'; not UTF-8
def test_other_undecodable_auth_values_are_explained_the_same_way(docker_config: Path, value: object) -> None:
    docker_config.write_text(json.dumps({"auths": {"r.example": {"auth": value}}}))
    hint = load_registry_auth({}).auth_failure_hint("r.example") or ""
    assert "the `auths` entry for r.example has an `auth` value" in hint


def test_a_broken_config_does_not_matter_when_the_environment_serves_every_registry(docker_config: Path) -> None:
    docker_config.write_text(json.dumps({"auths": {"r.example": {"auth": SECRET}}}))
    auth = load_registry_auth({"RECONCILE_REGISTRY_USER": "ci", "RECONCILE_REGISTRY_PASSWORD": "pw"})
    assert auth.for_registry("r.example") == {"username": "ci", "password": "pw", "serveraddress": "r.example"}


def test_a_missing_credential_helper_is_no_credentials_without_a_warning(docker_config: Path) -> None:
    docker_config.write_text(json.dumps({
        "credsStore": "nope",
        "credHelpers": {"private.example": "gone"},
        "auths": {"private.example": {}, "mirror.example": {"auth": "dXNlcjpwYXNz"}},
    }))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # docker-py's raw UserWarning would fail the test
        auth = load_registry_auth({})
        assert auth.for_registry("docker.io") is None
        assert auth.header("private.example") is None
        # An `auths` entry still serves its registry when the store it would ask first is missing.
        mirror = auth.for_registry("mirror.example")
        assert mirror is not None and (mirror["username"], mirror["password"]) == ("user", "pass")
    assert auth.missing_helper("docker.io") == "docker-credential-nope"
    assert auth.missing_helper("private.example") == "docker-credential-gone"
    hint = auth.auth_failure_hint("private.example")
    assert hint == (
        "The Docker config names the credential helper docker-credential-gone for private.example, but it is "
        "not installed or not on PATH, so no credentials were sent; install it, or set "
        "RECONCILE_REGISTRY_USER and RECONCILE_REGISTRY_PASSWORD."
    )


def test_an_installed_helper_is_not_reported_missing(docker_config: Path) -> None:
    helper = docker_config.parent / "bin" / "docker-credential-here"
    helper.parent.mkdir()
    helper.write_text("#!/bin/sh\necho 'credentials not found in native keychain'\nexit 1\n")
    helper.chmod(0o755)
    docker_config.write_text(json.dumps({"credsStore": "here"}))
    auth = load_registry_auth({})
    assert auth.missing_helper("docker.io") is None and auth.auth_failure_hint("docker.io") is None
    assert auth.for_registry("docker.io") is None  # the helper ran and knew nothing
