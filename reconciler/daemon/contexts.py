"""Docker contexts, read as the docker CLI reads them.

The CLI's order: ``--context``, else ``default`` when ``-H`` or ``DOCKER_HOST`` is given, else
``DOCKER_CONTEXT``, else the config's ``currentContext``, else ``default``. ``default`` is no
stored context: it means the address the other settings give (``DOCKER_HOST``, else the local
socket). A stored context lives in the Docker config directory (``$DOCKER_CONFIG``, else
``~/.docker``): its metadata in ``contexts/meta/<sha256 of name>/meta.json``, its TLS material
in ``contexts/tls/<sha256 of name>/docker/{ca,cert,key}.pem``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import UsageError

DEFAULT_CONTEXT = "default"


@dataclass(frozen=True)
class ContextEndpoint:
    """Where a stored context's docker endpoint points, and the TLS files it comes with."""

    name: str
    host: str
    skip_tls_verify: bool
    ca_cert: Path | None
    client_cert: Path | None
    client_key: Path | None

    @property
    def has_tls(self) -> bool:
        return self.skip_tls_verify or any((self.ca_cert, self.client_cert, self.client_key))


def docker_config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG``, else ``~/.docker``, as the docker CLI looks for its config."""
    env = os.environ if environ is None else environ
    configured = env.get("DOCKER_CONFIG")
    return Path(configured) if configured else Path(env.get("HOME") or Path.home()) / ".docker"


def selected_context(flag: str | None, hosts_given: bool, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The context the docker CLI would use, and where that choice came from."""
    env = os.environ if environ is None else environ
    if flag:
        return flag, "--context"
    if hosts_given:
        return DEFAULT_CONTEXT, "--host"
    if env.get("DOCKER_HOST"):
        return DEFAULT_CONTEXT, "DOCKER_HOST"
    if env.get("DOCKER_CONTEXT"):
        return env["DOCKER_CONTEXT"], "DOCKER_CONTEXT"
    config = docker_config_dir(env) / "config.json"
    current = _current_context(config)
    if current:
        return current, f"currentContext in {config}"
    return DEFAULT_CONTEXT, "the default"


def read_context(name: str, source: str, environ: Mapping[str, str] | None = None) -> ContextEndpoint:
    """The stored context ``name``; a UsageError (exit 64) when there is none or it is unreadable."""
    root = docker_config_dir(environ) / "contexts"
    key = hashlib.sha256(name.encode("utf-8")).hexdigest()
    meta = root / "meta" / key / "meta.json"
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"The Docker context {name!r} (from {source}) does not exist: there is no {meta}. "
            "`docker context ls` lists the contexts there are; `docker context create` makes one."
        ) from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"The Docker context {name!r} (from {source}) cannot be read from {meta}: {exc}.") from None
    endpoint = (data.get("Endpoints") or {}).get("docker") if isinstance(data, dict) else None
    host = endpoint.get("Host") if isinstance(endpoint, dict) else None
    if not isinstance(host, str) or not host:
        raise UsageError(
            f"The Docker context {name!r} (from {source}) has no docker endpoint in {meta}; "
            "recreate it with `docker context create NAME --docker host=...`."
        )
    tls = root / "tls" / key / "docker"
    return ContextEndpoint(
        name=name,
        host=host,
        skip_tls_verify=bool(endpoint.get("SkipTLSVerify")) if isinstance(endpoint, dict) else False,
        ca_cert=_file(tls / "ca.pem"),
        client_cert=_file(tls / "cert.pem"),
        client_key=_file(tls / "key.pem"),
    )


def _current_context(config: Path) -> str:
    """The config's ``currentContext``; a missing or unreadable config has none, as for docker."""
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    current = data.get("currentContext") if isinstance(data, dict) else None
    return current if isinstance(current, str) else ""


def _file(path: Path) -> Path | None:
    return path if path.is_file() else None
