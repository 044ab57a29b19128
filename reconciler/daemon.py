"""Connecting to a Docker daemon, and turning its transport failures into our errors.

docker-py reports a dead socket or a restarted daemon as ``requests``
exceptions, not as ``DockerException``; both are mapped here so that nothing
outside the daemon modules sees either.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import docker
import requests

from reconciler.errors import DaemonUnavailable

DEFAULT_TIMEOUT = 60  # seconds for one API call; pulls set their own deadline
TRANSPORT_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def resolve_host(host: str | None) -> str:
    """The daemon address: the one given, else DOCKER_HOST, else the local socket."""
    return host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class Daemon:
    """A connected daemon: its address as the user knows it, and the low-level client."""

    address: str
    api: docker.APIClient

    def new_client(self, timeout: int = DEFAULT_TIMEOUT) -> docker.APIClient:
        """Another client to the same daemon and API version (one per thread: sessions are not thread-safe)."""
        return docker.APIClient(**client_options(self.address), version=self.api.api_version, timeout=timeout)


def client_options(address: str) -> dict[str, Any]:
    """How docker-py reaches ``address``: TLS from DOCKER_TLS_VERIFY/DOCKER_CERT_PATH as the
    docker CLI reads them, and ssh:// through the ssh client rather than paramiko."""
    options: dict[str, Any] = {"base_url": address}
    tls = docker.utils.kwargs_from_env().get("tls")
    if tls and address.startswith(("tcp://", "https://")):
        options["tls"] = tls
    if address.startswith("ssh://"):
        options["use_ssh_client"] = True
    return options


def connect(host: str | None, timeout: int = DEFAULT_TIMEOUT) -> Daemon:
    """Open a low-level client and check the daemon answers; raises DaemonUnavailable."""
    address = resolve_host(host)
    with unavailable_as_error(address):
        # "auto" asks the daemon for its API version: that call is also the reachability check.
        api = docker.APIClient(**client_options(address), version="auto", timeout=timeout)
        return Daemon(address=address, api=api)


@contextmanager
def unavailable_as_error(address: str) -> Iterator[None]:
    """Map connection-level failures (not API answers) to DaemonUnavailable."""
    try:
        yield
    except TRANSPORT_ERRORS as exc:
        raise DaemonUnavailable(_unreachable(address, exc)) from exc
    except docker.errors.DockerException as exc:
        if isinstance(exc, docker.errors.APIError):
            raise
        raise DaemonUnavailable(_unreachable(address, exc)) from exc


def _unreachable(address: str, exc: BaseException) -> str:
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (
        f"Cannot reach the Docker daemon at {address} ({detail}). "
        "Check that it runs and that you may use its socket, or pick another with --host or DOCKER_HOST."
    )
