"""Connecting to a Docker daemon, and turning its transport failures into our errors.

docker-py reports a dead socket or a restarted daemon as ``requests``
exceptions, not as ``DockerException``; both are mapped here so that nothing
outside the daemon modules sees either.
"""

from __future__ import annotations

import binascii
import importlib.util
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import docker
import requests

from reconciler.errors import DaemonError, DaemonUnavailable, UsageError

DEFAULT_TIMEOUT = 60  # seconds for one API call; pulls set their own deadline
TRANSPORT_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


DEFAULT_HOST = "unix:///var/run/docker.sock"
ACCEPTED_ADDRESSES = (
    "Give unix:///PATH/TO/docker.sock, tcp://HOST:PORT or ssh://[USER@]HOST (npipe:// works on Windows only)."
)


def resolve_host(host: str | None) -> str:
    """The daemon address: the one given, else DOCKER_HOST, else the local socket.

    A malformed address, or one of a scheme docker-py cannot use here, is a usage error (exit 64).
    """
    if host:
        return check_address(host, "--host")
    from_env = os.environ.get("DOCKER_HOST")
    if from_env:
        return check_address(from_env, "DOCKER_HOST")
    return DEFAULT_HOST


def check_address(address: str, source: str) -> str:
    """``address`` unchanged when docker-py can connect to it; else a UsageError naming ``source``."""
    problem = _address_problem(address)
    if problem is not None:
        raise UsageError(
            f"The Docker daemon address {address!r} from {source} cannot be used: {problem}. {ACCEPTED_ADDRESSES}"
        )
    return address


def _address_problem(address: str) -> str | None:
    """Why docker-py would refuse ``address`` (checked as its client will parse it), or None."""
    text = address.strip()
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    windows = sys.platform == "win32"
    if scheme == "npipe" and not windows:
        return "npipe:// names a Windows named pipe, and this is not Windows"
    try:
        docker.utils.parse_host(text, windows)
    except ValueError as exc:  # urllib's own words, such as "Invalid IPv6 URL"
        return f"it is malformed ({exc})"
    except docker.errors.DockerException as exc:
        message = str(exc)
        if message.startswith("Invalid bind address protocol") or "not implemented" in message:
            return f"{scheme}:// is not a scheme reconcile can use" if scheme else "it has no scheme"
        detail = message.removeprefix("Invalid bind address format: ").removesuffix(text).strip(" :")
        return f"it is malformed ({detail})" if detail else "it is malformed"
    return None


@dataclass(frozen=True)
class Daemon:
    """A connected daemon: its address as the user knows it, and the low-level client."""

    address: str
    api: docker.APIClient

    def new_client(self, timeout: int = DEFAULT_TIMEOUT) -> docker.APIClient:
        """Another client to the same daemon and API version (one per thread: sessions are not thread-safe)."""
        return _api_client(client_options(self.address), version=self.api.api_version, timeout=timeout)


def client_options(address: str) -> dict[str, Any]:
    """How docker-py reaches ``address``: TLS from DOCKER_TLS_VERIFY/DOCKER_CERT_PATH as the
    docker CLI reads them, and ssh:// through the ssh client rather than paramiko."""
    options: dict[str, Any] = {"base_url": address}
    tls = docker.utils.kwargs_from_env().get("tls")
    if tls and address.startswith(("tcp://", "https://")):
        options["tls"] = tls
    if address.startswith("ssh://"):
        if importlib.util.find_spec("paramiko") is None:
            raise UsageError(
                f"The Docker daemon {address} is reached over ssh, and docker-py needs paramiko for that; "
                "install it with: pip install 'reconciler[ssh]'."
            )
        options["use_ssh_client"] = True
    return options


def connect(host: str | None, timeout: int = DEFAULT_TIMEOUT) -> Daemon:
    """Open a low-level client and check the daemon answers.

    Raises UsageError for an address that cannot be used, DaemonUnavailable for one that does not answer.
    """
    address = resolve_host(host)
    with unavailable_as_error(address):
        # "auto" asks the daemon for its API version: that call is also the reachability check.
        api = _api_client(client_options(address), version="auto", timeout=timeout)
        return Daemon(address=address, api=api)


_CONFIG_BYPASS = threading.Lock()


def _api_client(options: dict[str, Any], **more: Any) -> docker.APIClient:
    """docker-py's client, which parses the Docker config's credentials as it starts.

    A broken `auths` entry would stop it there, for every command and every registry;
    the connection needs no credentials (pulls take theirs from registry_auth, which
    says what is wrong when a registry refuses us), so the client then starts without.
    """
    try:
        return docker.APIClient(**options, **more)
    except (ValueError, TypeError, binascii.Error):
        with _CONFIG_BYPASS:  # pull threads open clients too: one swap at a time
            original = docker.api.client.auth.load_config
            docker.api.client.auth.load_config = lambda *args, **kwargs: docker.auth.AuthConfig({})
            try:
                return docker.APIClient(**options, **more)
            finally:
                docker.api.client.auth.load_config = original


def engine_id(api: docker.APIClient, address: str) -> str:
    """The daemon's own ID (``GET /info``, field ``ID``); empty when it does not give one."""
    with unavailable_as_error(address):
        try:
            info = api.info()
        except docker.errors.APIError as exc:
            raise DaemonError(
                f"The Docker daemon at {address} did not say which daemon it is "
                f"(GET /info failed: {exc.explanation or exc}); nothing was changed."
            ) from exc
    found = info.get("ID") if isinstance(info, dict) else None
    return found.strip() if isinstance(found, str) else ""


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
