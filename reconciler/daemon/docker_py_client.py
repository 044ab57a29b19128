"""docker-py's low-level client, made only when a call needs it: a write, a pull, or a daemon
reached over ssh://. Importing docker-py (with requests and urllib3) costs a third of a second,
so nothing imports this module's dependencies before then.
"""

from __future__ import annotations

import binascii
import threading
from collections.abc import Mapping
from typing import Any

from reconciler.daemon.engine_http import ClientTls

_CONFIG_BYPASS = threading.Lock()


def api_client(options: Mapping[str, Any], **more: Any) -> Any:
    """docker-py's ``APIClient`` for ``options`` (our :class:`ClientTls` as its ``TLSConfig``), which
    parses the Docker config's credentials as it starts.

    A broken `auths` entry would stop it there, for every command and every registry;
    the connection needs no credentials (pulls take theirs from registry_auth, which
    says what is wrong when a registry refuses us), so the client then starts without.
    """
    import docker

    settings = dict(options)
    tls = settings.get("tls")
    if isinstance(tls, ClientTls):
        settings["tls"] = docker.tls.TLSConfig(client_cert=tls.cert, ca_cert=tls.ca_cert, verify=tls.verify)
    try:
        return _local_without_proxies(docker.APIClient(**settings, **more))
    except (ValueError, TypeError, binascii.Error):
        with _CONFIG_BYPASS:  # pull threads open clients too: one swap at a time
            original = docker.api.client.auth.load_config
            docker.api.client.auth.load_config = lambda *args, **kwargs: docker.auth.AuthConfig({})
            try:
                return _local_without_proxies(docker.APIClient(**settings, **more))
            finally:
                docker.api.client.auth.load_config = original


def _local_without_proxies(client: Any) -> Any:
    """A client of a unix socket reads no proxy, netrc or CA settings from the environment: none
    applies to a socket, and requests looks them up again on every call (about a third of the time
    of each of an apply's many deletes)."""
    if str(getattr(client, "base_url", "")).startswith("http+docker://localhost"):
        client.trust_env = False
    return client
