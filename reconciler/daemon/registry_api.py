"""A tag's digest straight from the registry's v2 API: ``HEAD /v2/<path>/manifests/<tag>``.

Podman 4.3 answers ``GET /distribution/{ref}/json`` with 404, so for Podman ``pull: always``
asks the registry itself. A Docker daemon on this machine is asked this way too: the same
registry seen from the same network, for one HEAD on a kept connection where the daemon's
``/distribution`` costs a ping, a HEAD and a GET on new connections (and on Docker Hub a GET
counts against the pull rate limit, a HEAD does not); what the registry will not say here,
the daemon is asked (``DockerEngine.registry_digest``). The request names the manifest types
a pull accepts and reads ``Docker-Content-Digest``, the digest a pull then records in
RepoDigests (for a multi-platform image, its index's). Credentials are the pull's own (the
``X-Registry-Auth`` value registry_auth makes): HTTP basic, or a bearer token from the realm
a 401 names, as ``docker pull`` does. Loopback registries are spoken to over plain HTTP when
HTTPS fails, as both engines treat them as insecure by default.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import threading
import urllib.parse
from typing import Any

from reconciler.daemon.registry_connections import Answer, RegistryConnections
from reconciler.model.reference import InvalidReference, parse_reference

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


def on_this_machine(address: str, daemon_name: str) -> bool:
    """Whether the daemon at ``address`` runs here, so a registry (a loopback one above all) is the same
    registry from here: reached on a local socket or loopback, and naming our host name. A forwarded
    socket of another machine, or this process in a container, names another host."""
    if address.startswith(("unix://", "http+unix://")):
        local = True
    else:
        local = address.startswith("tcp://") and is_loopback(address.removeprefix("tcp://").split("/")[0])
    return local and daemon_name == socket.gethostname()


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


class RegistryLookups:
    """Tag digests asked of registries' v2 API, shared by every session of one daemon.

    Each thread keeps its connection to a registry for its next lookup there
    (:mod:`registry_connections`); which scheme a loopback registry answered on, the
    registries that could not be reached, the registries that asked for basic credentials and
    the bearer tokens given are known to all threads, so a run learns each once.
    """

    def __init__(self, connections: RegistryConnections | None = None) -> None:
        self._connections = connections or RegistryConnections()
        self._lock = threading.Lock()
        self._schemes: dict[str, str] = {}  # host -> the scheme it answered on
        self._unreachable: set[str] = set()
        self._basic: set[str] = set()  # hosts whose 401 asked for basic credentials
        self._tokens: dict[tuple[str, str, str, str], str] = {}  # (realm, service, scope, user) -> token

    def digest(self, reference: str, auth_header: str | None, timeout: float) -> str | None:
        """The digest the registry gives ``reference``'s tag now; None when it cannot say
        (refused, unknown tag, unreachable, or the reference names no tag)."""
        try:
            ref = parse_reference(reference)
        except InvalidReference:
            return None
        host = registry_host(ref.domain)
        path = ref.path if ref.domain else ref.name
        tag = ref.digest or ref.tag or "latest"
        creds = credentials(auth_header)
        for scheme in self._schemes_of(host):
            try:
                found = self._head_digest(f"{scheme}://{host}/v2/{path}/manifests/{tag}", host, creds, timeout)
            except (OSError, http.client.HTTPException, ValueError):
                continue
            with self._lock:
                self._schemes[host] = scheme
            return found
        with self._lock:
            self._unreachable.add(host)
        return None

    def unreachable(self, domain: str) -> bool:
        """Whether the registry of ``domain`` could not be spoken to earlier in this run."""
        with self._lock:
            return registry_host(domain) in self._unreachable

    def close(self) -> None:
        self._connections.close()

    def _schemes_of(self, host: str) -> tuple[str, ...]:
        with self._lock:
            if host in self._unreachable:
                return ()
            known = self._schemes.get(host)
        if known is not None:
            return (known,)
        return ("https", "http") if is_loopback(host) else ("https",)

    def _head_digest(self, url: str, host: str, creds: tuple[str, str] | None, timeout: float) -> str | None:
        headers = {"Accept": MANIFEST_TYPES}
        with self._lock:
            basic_first = host in self._basic
        if creds is not None and basic_first:
            headers["Authorization"] = _basic(creds)
        answer = self._connections.request("HEAD", url, headers, timeout)
        if answer.status == 401:
            challenge = answer.headers.get("WWW-Authenticate", "")
            if challenge.lower().startswith("basic") and creds is not None and not basic_first:
                with self._lock:
                    self._basic.add(host)
                answer = self._connections.request("HEAD", url, {**headers, "Authorization": _basic(creds)}, timeout)
            elif (params := bearer_challenge(challenge)) is not None:
                answer = self._with_token(url, headers, params, creds, timeout)
        if answer.status != 200:
            return None
        digest = answer.headers.get("Docker-Content-Digest", "")
        return digest if digest.startswith("sha256:") else None

    def _with_token(
        self, url: str, headers: dict[str, str], challenge: dict[str, str], creds: tuple[str, str] | None, timeout: float
    ) -> Answer:
        """The HEAD again with a bearer token for the challenge: a known one, or (refused: it expired) a new one."""
        key = (challenge["realm"], challenge.get("service", ""), challenge.get("scope", ""), creds[0] if creds else "")
        with self._lock:
            known = self._tokens.get(key)
        for cached in (known, None) if known is not None else (None,):
            token = cached or self._token(key, creds, timeout)
            if token is None:
                break
            answer = self._connections.request("HEAD", url, {**headers, "Authorization": f"Bearer {token}"}, timeout)
            if answer.status != 401:
                return answer
            with self._lock:
                self._tokens.pop(key, None)
        return Answer(401, http.client.HTTPMessage(), b"")

    def _token(self, key: tuple[str, str, str, str], creds: tuple[str, str] | None, timeout: float) -> str | None:
        realm, service, scope, _ = key
        query = urllib.parse.urlencode({k: v for k, v in (("service", service), ("scope", scope)) if v})
        url = realm + (("&" if "?" in realm else "?") + query if query else "")
        headers = {"Authorization": _basic(creds)} if creds is not None else {}
        answer = self._connections.request("GET", url, headers, timeout)
        if answer.status != 200:
            return None
        try:
            found: Any = json.loads(answer.body)
        except ValueError:
            return None
        token = (found.get("token") or found.get("access_token")) if isinstance(found, dict) else None
        if not token:
            return None
        with self._lock:
            self._tokens[key] = str(token)
        return str(token)


def _basic(creds: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode("ascii")
