"""The registry v2 digest lookup's translation: credentials, challenges, hosts."""

from __future__ import annotations

import base64
import json

from reconciler.daemon.registry_api import bearer_challenge, credentials, is_loopback, registry_host


def _header(found: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(found).encode()).decode()


def test_credentials_come_from_the_pull_auth_header() -> None:
    assert credentials(_header({"username": "u", "password": "p", "serveraddress": "r"})) == ("u", "p")
    assert credentials(None) is None
    assert credentials(_header({"identitytoken": "t"})) is None
    assert credentials("not base64 json!") is None


def test_a_bearer_challenge_gives_realm_service_and_scope() -> None:
    header = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"'
    assert bearer_challenge(header) == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/nginx:pull",
    }
    assert bearer_challenge('Basic realm="x"') is None
    assert bearer_challenge("Bearer service=x") is None


def test_docker_hub_is_asked_at_its_api_host_and_loopback_may_be_plain_http() -> None:
    assert registry_host("docker.io") == "registry-1.docker.io"
    assert registry_host("ghcr.io") == "ghcr.io"
    assert is_loopback("127.0.0.1:5000") and is_loopback("localhost") and is_loopback("[::1]:5000")
    assert not is_loopback("registry.example.com:5000")
