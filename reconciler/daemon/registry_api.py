"""A tag's digest straight from the registry's v2 API, for engines that cannot say it.

Docker answers ``GET /distribution/{ref}/json``; Podman 4.3 answers it with 404, so for
Podman ``pull: always`` asks the registry itself: ``HEAD /v2/<path>/manifests/<tag>`` with
the manifest types a pull accepts, and reads ``Docker-Content-Digest`` (the digest a pull
then records in RepoDigests; for a multi-platform image, its index's). Credentials are the
pull's own (the ``X-Registry-Auth`` value registry_auth makes): HTTP basic, or a bearer
token from the realm a 401 names, as ``docker pull`` does. Loopback registries are spoken to
over plain HTTP when HTTPS fails, as both engines treat them as insecure by default.
"""

from __future__ import annotations

import base64
import json
import re
from typing import TYPE_CHECKING, Any

from reconciler.model.reference import InvalidReference, parse_reference

if TYPE_CHECKING:
    import requests

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def registry_host(domain: str) -> str:
    """The host to speak to: Docker Hub's API lives at registry-1.docker.io."""
    return "registry-1.docker.io" if domain in ("docker.io", "") else domain


def is_loopback(host: str) -> bool:
    return host.rsplit(":", 1)[0] in LOOPBACK_HOSTS or host.startswith("[::1]")


def credentials(auth_header: str | None) -> tuple[str, str] | None:
    """User and password from an ``X-Registry-Auth`` value; None when there are none."""
    if not auth_header:
        return None
    try:
        found = json.loads(base64.urlsafe_b64decode(auth_header.encode("ascii")))
    except (ValueError, UnicodeError):
        return None
    user, password = found.get("username"), found.get("password")
    return (str(user), str(password)) if user and password else None


def bearer_challenge(header: str) -> dict[str, str] | None:
    """The parameters of a ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``; None otherwise."""
    if not header.lower().startswith("bearer "):
        return None
    params = dict(_CHALLENGE_PARAM.findall(header))
    return params if params.get("realm") else None


def manifest_digest(reference: str, auth_header: str | None, timeout: float) -> str | None:
    """The digest the registry gives ``reference``'s tag now; None when it cannot say (refused, unreachable)."""
    try:
        ref = parse_reference(reference)
    except InvalidReference:
        return None
    host = registry_host(ref.domain)
    path = ref.path if ref.domain else ref.name
    tag = ref.digest or ref.tag or "latest"
    creds = credentials(auth_header)
    import requests  # only Podman's `pull: always` comes here: the read path does not load it

    with requests.Session() as session:
        for scheme in ("https", "http") if is_loopback(host) else ("https",):
            url = f"{scheme}://{host}/v2/{path}/manifests/{tag}"
            try:
                return _head_digest(session, url, creds, timeout)
            except requests.exceptions.RequestException:
                continue
    return None


def _head_digest(session: requests.Session, url: str, creds: tuple[str, str] | None, timeout: float) -> str | None:
    headers = {"Accept": MANIFEST_TYPES}
    response = session.head(url, headers=headers, auth=creds, timeout=timeout)
    if response.status_code == 401:
        challenge = bearer_challenge(response.headers.get("WWW-Authenticate", ""))
        token = _token(session, challenge, creds, timeout) if challenge else None
        if token is None:
            return None
        response = session.head(url, headers={**headers, "Authorization": f"Bearer {token}"}, timeout=timeout)
    if response.status_code != 200:
        return None
    digest = response.headers.get("Docker-Content-Digest", "")
    return digest if digest.startswith("sha256:") else None


def _token(
    session: requests.Session, challenge: dict[str, str], creds: tuple[str, str] | None, timeout: float
) -> str | None:
    params = {k: v for k, v in challenge.items() if k in ("service", "scope")}
    response = session.get(challenge["realm"], params=params, auth=creds, timeout=timeout)
    if response.status_code != 200:
        return None
    answer: Any = response.json()
    token = answer.get("token") or answer.get("access_token") if isinstance(answer, dict) else None
    return str(token) if token else None
