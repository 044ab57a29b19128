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
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from reconciler.errors import ExitCode, ReconcilerError

ENV_USER = "RECONCILE_REGISTRY_USER"
ENV_PASSWORD = "RECONCILE_REGISTRY_PASSWORD"
ENV_HOST = "RECONCILE_REGISTRY_HOST"
HELPER_PREFIX = "docker-credential-"


class CredentialsError(ReconcilerError):
    """The credentials settings are incomplete or a credential helper failed."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class BrokenConfig:
    """A Docker config docker-py would not parse: an ``auths`` entry's ``auth`` is not base64 of
    USER:PASSWORD. ``registries`` are those entries (the values themselves are never kept)."""

    path: str | None
    registries: tuple[str, ...] = ()

    def message(self, domain: str) -> str:
        """What to fix, for a registry ``domain`` that refused us: its own entry when it is one of
        the broken ones, else the first of them (one broken entry sets the whole file aside)."""
        own = next((r for r in self.registries if _same_registry(r, domain)), None)
        registry = own or (self.registries[0] if self.registries else None)
        where = f"the Docker config {self.path}" if self.path else "the Docker config"
        entry = f"the `auths` entry for {registry}" if registry else "an `auths` entry"
        login = f"docker login {registry}" if registry else "docker login REGISTRY"
        aside = "" if own is not None or registry is None else (
            f"; one such entry sets the whole file aside, so no credentials were sent to {domain} either"
        )
        return (
            f"In {where}, {entry} has an `auth` value that is not base64 of USER:PASSWORD{aside}. "
            f"Log in again with `{login}`, or delete that entry; or set {ENV_USER} and {ENV_PASSWORD} "
            "for every registry."
        )


@dataclass(frozen=True)
class RegistryAuth:
    """Where credentials come from; ``config`` is the parsed Docker config (no secrets shown)."""

    env_user: str | None = field(default=None, repr=False)
    env_password: str | None = field(default=None, repr=False)
    env_host: str | None = None
    read_docker_config: bool = False  # read the Docker config when first needed (docker-py is imported then)

    @property
    def config(self) -> Any:
        """The parsed Docker config (docker-py's ``AuthConfig``), None when there is none to use."""
        return self._docker_config[0]

    @property
    def broken_config(self) -> BrokenConfig | None:
        """Why the Docker config could not be used, said when a registry refuses us."""
        return self._docker_config[1]

    @cached_property
    def _docker_config(self) -> tuple[Any, BrokenConfig | None]:
        # Only pulls and registry lookups need credentials: a plan that asks no registry never reads them.
        return _read_docker_config() if self.read_docker_config else (None, None)

    def for_registry(self, domain: str) -> dict[str, str] | None:
        """The auth config docker-py expects for ``domain``, or None to pull anonymously."""
        if self._env_applies(domain):
            assert self.env_user is not None and self.env_password is not None
            return {"username": self.env_user, "password": self.env_password, "serveraddress": domain}
        if self.config is None:
            return None
        config = self.config
        import docker

        if self.missing_helper(domain):
            # A helper that is not installed gives nothing: pull as `auths` alone allows (often
            # anonymously). auth_failure_hint names it, for when the registry then asks for credentials.
            config = docker.auth.AuthConfig({"auths": self.config.auths})
        try:
            found = docker.auth.resolve_authconfig(config, domain)
        except docker.errors.DockerException as exc:
            # The helper's own words may echo what it was given; name the helper only.
            raise CredentialsError(
                f"The Docker credential helper for {domain} failed ({type(exc).__name__}); "
                "check `docker login` or the credHelpers/credsStore settings."
            ) from None
        return {str(k): str(v) for k, v in found.items()} if found else None

    def missing_helper(self, domain: str) -> str | None:
        """The credential helper program the Docker config names for ``domain`` when it is not
        installed (not on PATH); None when there is none to run or it is there."""
        if self.config is None or self._env_applies(domain):
            return None
        name = self.config.get_credential_store(domain)
        if not name:
            return None
        program = HELPER_PREFIX + str(name)
        import shutil  # here: shutil brings bz2, lzma and fnmatch, and only a refused pull asks

        return None if shutil.which(program) else program

    def auth_failure_hint(self, domain: str) -> str | None:
        """For a registry that refused us: a sentence naming a missing credential helper or a broken
        Docker config, else None."""
        if self.broken_config is not None and not self._env_applies(domain):
            return self.broken_config.message(domain)
        program = self.missing_helper(domain)
        if program is None:
            return None
        return (
            f"The Docker config names the credential helper {program} for {domain}, but it is not "
            f"installed or not on PATH, so no credentials were sent; install it, or set "
            f"{ENV_USER} and {ENV_PASSWORD}."
        )

    def _env_applies(self, domain: str) -> bool:
        if self.env_user is None or self.env_password is None:
            return False
        return self.env_host is None or _same_registry(self.env_host, domain)

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
        raise CredentialsError(f"Set both {ENV_USER} and {ENV_PASSWORD}, or neither.")  # exit 64
    host = environ.get(ENV_HOST) or None
    if user is not None and host is None:
        # The environment's credentials serve every registry: the Docker config is never read.
        return RegistryAuth(env_user=user, env_password=password)
    return RegistryAuth(env_user=user, env_password=password, env_host=host, read_docker_config=True)


def _read_docker_config() -> tuple[Any, BrokenConfig | None]:
    """The Docker config as docker-py parses it, or None and why it could not be used."""
    if not any(os.path.exists(path) for path in _config_paths()):
        return None, None  # no config: no credentials, without loading docker-py (a tenth of a second)
    import docker

    try:
        return docker.auth.load_config(credstore_env=None), None
    except docker.errors.DockerException:
        return None, None  # an unreadable config is read by docker-py as no credentials too
    except (ValueError, TypeError):  # an `auths` entry's `auth` is not base64 of USER:PASSWORD
        # As the docker CLI does, go on without the config: a registry that needs it will refuse
        # us, and the pull's error then says why. Neither docker-py's words nor the value are
        # repeated: both may carry part of the secret.
        path = docker.utils.config.find_config_file()
        return None, BrokenConfig(path, _bad_auth_registries(path) if path else ())


def _config_paths() -> tuple[str, ...]:
    """Where docker-py (``docker.utils.config.find_config_file``) and the docker CLI look for the config."""
    home = os.path.expanduser("~")
    configured = os.environ.get("DOCKER_CONFIG")
    return (
        *((os.path.join(configured, "config.json"),) if configured else ()),
        os.path.join(home, ".docker", "config.json"),
        os.path.join(home, ".dockercfg"),
    )


def _bad_auth_registries(path: str) -> tuple[str, ...]:
    """The registries whose ``auth`` value docker-py cannot decode, in the file's order."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return ()
    auths = document.get("auths") if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        return ()
    import docker

    found = []
    for registry, entry in auths.items():
        if not isinstance(entry, dict) or "identitytoken" in entry or "auth" not in entry:
            continue
        try:
            docker.auth.decode_auth(entry["auth"])
        except (ValueError, TypeError, AttributeError):
            found.append(str(registry))
    return tuple(found)


def _same_registry(configured: str, domain: str) -> bool:
    def norm(text: str) -> str:
        text = text.strip().lower().removeprefix("https://").removeprefix("http://").rstrip("/")
        return "docker.io" if text in ("index.docker.io", "registry-1.docker.io", "index.docker.io/v1") else text

    return norm(configured) == norm(domain)
