"""Which daemon to talk to: the address given or the Docker context chosen, checked as docker-py
will parse it, and how to reach it.

The usual forms (``unix:///PATH``, ``tcp://HOST:PORT``) are checked here without docker-py, which
the read path does not load; any other form is checked by docker-py's own parser."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reconciler.daemon.contexts import (
    DEFAULT_CONTEXT,
    ContextEndpoint,
    read_context,
    selected_context,
)
from reconciler.daemon.docker_engine import DEFAULT_TIMEOUT, DockerEngine
from reconciler.daemon.engine_http import ClientTls, endpoint_for
from reconciler.errors import UsageError
from reconciler.model.deadline import NO_DEADLINE, Deadline

if TYPE_CHECKING:
    from reconciler.model.fleet import TlsSettings

DEFAULT_HOST = "unix:///var/run/docker.sock"
DISTRIBUTION = "docker-image-reconciler"  # the name pip installs it by (`reconciler` on PyPI is another project)
ACCEPTED_ADDRESSES = (
    "Give unix:///PATH/TO/docker.sock, tcp://HOST:PORT or ssh://[USER@]HOST (npipe:// works on Windows only)."
)


def resolve_host(host: str | None, context: str | None = None) -> str:
    """The daemon address: the one given, else the context's (see :func:`resolve_target`)."""
    return resolve_target(host, context)[0]


def resolve_target(host: str | None, context: str | None = None) -> tuple[str, ContextEndpoint | None]:
    """The daemon address, as the docker CLI picks it, and the stored context it came from (if any).

    ``-H``, else ``--context``, else ``DOCKER_HOST``, else ``DOCKER_CONTEXT``, else the Docker
    config's ``currentContext``, else the local socket. A malformed address, one of a scheme
    docker-py cannot use here, both ``-H`` and ``--context``, or an unknown context is a usage
    error (exit 64).
    """
    if host and context:
        raise UsageError("Give either --host or --context, not both (as for docker).")
    if host:
        return check_address(host, "--host"), None
    name, source = selected_context(context, hosts_given=False)
    if name != DEFAULT_CONTEXT:
        endpoint = read_context(name, source)
        return check_address(endpoint.host, f"the Docker context {name!r}"), endpoint
    from_env = os.environ.get("DOCKER_HOST")
    if from_env:
        return check_address(from_env, "DOCKER_HOST"), None
    return DEFAULT_HOST, None


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
    rest = text.partition("://")[2]
    windows = sys.platform == "win32"
    if scheme == "npipe" and not windows:
        return "npipe:// names a Windows named pipe, and this is not Windows"
    if scheme == "unix" and not rest:
        return "unix:// names no socket; give its path, such as unix:///var/run/docker.sock"
    if scheme == "ssh" and not rest.partition("@")[2 if "@" in rest else 0].strip("/"):
        return "ssh:// names no host; give one, such as ssh://user@host"
    if endpoint_for(text, {}) is not None:
        return None  # a form docker-py parses the same way
    import docker

    try:
        docker.utils.parse_host(text, windows)
    except ValueError as exc:  # urllib's own words, such as "Invalid IPv6 URL"
        return f"it is malformed ({exc})"
    except docker.errors.DockerException as exc:
        message = str(exc)
        if message.startswith("Invalid bind address protocol") or "not implemented" in message:
            return f"{scheme}:// is not a scheme reconcile can use" if scheme else "it has no scheme"
        detail = message.removeprefix("Invalid bind address format: ").removesuffix(text).strip(" :")
        if detail == "port is required":
            host = rest.split("/")[0] or "HOST"
            return f"it names no port; a daemon listens on tcp://{host}:2375, or tcp://{host}:2376 with TLS"
        return f"it is malformed ({detail})" if detail else "it is malformed"
    return None


def client_options(
    address: str, tls_settings: TlsSettings | None = None, context: ContextEndpoint | None = None
) -> dict[str, Any]:
    """How to reach ``address`` (docker-py's ``APIClient`` arguments; ``tls`` a :class:`ClientTls`): TLS from ``tls_settings`` (an inventory's), else from the
    Docker context's files, else from DOCKER_TLS_VERIFY/DOCKER_CERT_PATH as the docker CLI reads
    them; ssh:// through the ssh client rather than paramiko."""
    options: dict[str, Any] = {"base_url": address}
    tls: ClientTls | None
    if tls_settings:
        tls = _tls_config(tls_settings)
    elif context is not None:
        tls = _context_tls(context)
    else:
        tls = _env_tls(os.environ)
    if tls and address.startswith(("tcp://", "https://")):
        options["tls"] = tls
    if address.startswith("ssh://"):
        if importlib.util.find_spec("paramiko") is None:
            raise UsageError(
                f"The Docker daemon {address} is reached over ssh, and docker-py needs paramiko for that; "
                f"install it with: pip install '{DISTRIBUTION}[ssh]'."
            )
        options["use_ssh_client"] = True
    return options


def _tls_config(settings: TlsSettings) -> ClientTls:
    client_cert = (settings.cert, settings.key) if settings.cert and settings.key else None
    return _client_tls(client_cert, settings.ca_cert, settings.verify, "The TLS settings of the Docker daemon")


def _context_tls(context: ContextEndpoint) -> ClientTls | None:
    """The TLS a context's files give, as the docker CLI uses them (no files: plain, unless SkipTLSVerify)."""
    if not context.has_tls:
        return None
    cert = (str(context.client_cert), str(context.client_key)) if context.client_cert and context.client_key else None
    ca = str(context.ca_cert) if context.ca_cert else None
    return _client_tls(cert, ca, not context.skip_tls_verify, f"The TLS files of the Docker context {context.name!r}")


def _env_tls(environ: Mapping[str, str]) -> ClientTls | None:
    """DOCKER_TLS_VERIFY and DOCKER_CERT_PATH as docker-py's ``kwargs_from_env`` reads them: TLS when
    either is set (an empty DOCKER_TLS_VERIFY means no verification), files from the cert path, else ~/.docker."""
    cert_path = environ.get("DOCKER_CERT_PATH") or None
    verify_value = environ.get("DOCKER_TLS_VERIFY")
    verify = verify_value is not None and verify_value != ""
    if not (cert_path or verify):
        return None
    folder = cert_path or os.path.join(os.path.expanduser("~"), ".docker")
    cert = (os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem"))
    return _client_tls(cert, os.path.join(folder, "ca.pem"), verify, "DOCKER_CERT_PATH and DOCKER_TLS_VERIFY")


def _client_tls(cert: tuple[str, str] | None, ca_cert: str | None, verify: bool, source: str) -> ClientTls:
    """The files checked as docker-py's ``TLSConfig`` checks them, in its words."""
    if cert and not (os.path.isfile(cert[0]) and os.path.isfile(cert[1])):
        problem = "Path to a certificate and key files must be provided through the client_cert param"
        raise UsageError(f"{source} cannot be used: {problem}")
    if verify and ca_cert and not os.path.isfile(ca_cert):
        raise UsageError(f"{source} cannot be used: Invalid CA certificate provided for `ca_cert`.")
    return ClientTls(cert=cert, ca_cert=ca_cert, verify=verify)


def connect(
    host: str | None,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: Deadline = NO_DEADLINE,
    tls: TlsSettings | None = None,
    context: str | None = None,
) -> DockerEngine:
    """The daemon at ``host`` (else the Docker context's, else DOCKER_HOST's, else the local socket),
    checked to answer; no call to it waits past ``deadline``.

    Raises UsageError for an address or context that cannot be used, DaemonUnavailable for a daemon
    that does not answer.
    """
    address, endpoint = resolve_target(host, context)
    return DockerEngine.connect(address, client_options(address, tls, endpoint), timeout, deadline)
