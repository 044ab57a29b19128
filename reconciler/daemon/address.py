"""Which daemon to talk to: the address given, checked as docker-py will parse it, and how to reach it."""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

import docker

from reconciler.daemon.docker_engine import DEFAULT_TIMEOUT, DockerEngine
from reconciler.errors import UsageError
from reconciler.model.deadline import NO_DEADLINE, Deadline
from reconciler.model.fleet import TlsSettings

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


def client_options(address: str, tls_settings: TlsSettings | None = None) -> dict[str, Any]:
    """How docker-py reaches ``address``: TLS from ``tls_settings`` (an inventory's), else from
    DOCKER_TLS_VERIFY/DOCKER_CERT_PATH as the docker CLI reads them, and ssh:// through the ssh
    client rather than paramiko."""
    options: dict[str, Any] = {"base_url": address}
    tls = _tls_config(tls_settings) if tls_settings else docker.utils.kwargs_from_env().get("tls")
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


def _tls_config(settings: TlsSettings) -> docker.tls.TLSConfig:
    client_cert = (settings.cert, settings.key) if settings.cert and settings.key else None
    try:
        return docker.tls.TLSConfig(client_cert=client_cert, ca_cert=settings.ca_cert, verify=settings.verify)
    except docker.errors.TLSParameterError as exc:
        raise UsageError(f"The TLS settings of the Docker daemon cannot be used: {exc}") from exc


def connect(
    host: str | None,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: Deadline = NO_DEADLINE,
    tls: TlsSettings | None = None,
) -> DockerEngine:
    """The daemon at ``host`` (else DOCKER_HOST, else the local socket), checked to answer; no
    call to it waits past ``deadline``.

    Raises UsageError for an address that cannot be used, DaemonUnavailable for one that does not answer.
    """
    address = resolve_host(host)
    return DockerEngine.connect(address, client_options(address, tls), timeout, deadline)
