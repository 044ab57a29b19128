"""Registry credentials for pulls and registry lookups, from the environment or the Docker config.

Pipelines set ``RECONCILE_REGISTRY_USER`` and ``RECONCILE_REGISTRY_PASSWORD``; they
apply to every registry, or only to ``RECONCILE_REGISTRY_HOST`` when that is set.
Otherwise the Docker client's own config is read (``$DOCKER_CONFIG/config.json``,
else ``~/.docker/config.json``): ``auths`` entries, ``credHelpers`` and ``credsStore``,
resolved by docker-py exactly as ``docker pull`` would.

Secrets never leave this module except inside the ``X-Registry-Auth`` header or the
``auth_config`` argument handed to docker-py: no repr, message or log carries them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import docker

from reconciler.errors import ReconcilerError

ENV_USER = "RECONCILE_REGISTRY_USER"
ENV_PASSWORD = "RECONCILE_REGISTRY_PASSWORD"
ENV_HOST = "RECONCILE_REGISTRY_HOST"


class CredentialsError(ReconcilerError):
    """The credentials settings are incomplete or a credential helper failed."""


@dataclass(frozen=True)
class RegistryAuth:
    """Where credentials come from; ``config`` is the parsed Docker config (no secrets shown)."""

    env_user: str | None = field(default=None, repr=False)
    env_password: str | None = field(default=None, repr=False)
    env_host: str | None = None
    config: Any = field(default=None, repr=False)  # docker.auth.AuthConfig

    def for_registry(self, domain: str) -> dict[str, str] | None:
        """The auth config docker-py expects for ``domain``, or None to pull anonymously."""
        env_applies = self.env_host is None or _same_registry(self.env_host, domain)
        if self.env_user is not None and self.env_password is not None and env_applies:
            return {"username": self.env_user, "password": self.env_password, "serveraddress": domain}
        if self.config is None:
            return None
        try:
            found = docker.auth.resolve_authconfig(self.config, domain)
        except docker.errors.DockerException as exc:
            # The helper's own words may echo what it was given; name the helper only.
            raise CredentialsError(
                f"The Docker credential helper for {domain} failed ({type(exc).__name__}); "
                "check `docker login` or the credHelpers/credsStore settings."
            ) from None
        return {str(k): str(v) for k, v in found.items()} if found else None

    def header(self, domain: str) -> str | None:
        """The ``X-Registry-Auth`` header value for ``domain``, or None."""
        found = self.for_registry(domain)
        if not found:
            return None
        return base64.urlsafe_b64encode(json.dumps(found).encode("utf-8")).decode("ascii")


def load_registry_auth(environ: Mapping[str, str]) -> RegistryAuth:
    """Read the settings once: the environment variables, then the Docker config file."""
    user, password = environ.get(ENV_USER) or None, environ.get(ENV_PASSWORD)
    if (user is None) != (password is None):
        raise CredentialsError(f"Set both {ENV_USER} and {ENV_PASSWORD}, or neither.")
    host = environ.get(ENV_HOST) or None
    try:
        config = docker.auth.load_config(credstore_env=None)
    except docker.errors.DockerException:
        config = None  # an unreadable config is read by docker-py as no credentials too
    return RegistryAuth(env_user=user, env_password=password, env_host=host, config=config)


def _same_registry(configured: str, domain: str) -> bool:
    def norm(text: str) -> str:
        text = text.strip().lower().removeprefix("https://").removeprefix("http://").rstrip("/")
        return "docker.io" if text in ("index.docker.io", "registry-1.docker.io", "index.docker.io/v1") else text

    return norm(configured) == norm(domain)
