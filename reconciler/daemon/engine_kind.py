"""Which engine answers behind the Engine API, and Podman's answers translated into ours.

Podman's ``podman system service`` speaks Docker's API v1.41, but some answers differ
(measured on Debian's podman 4.3.1):

- ``GET /version`` lists a component named ``Podman Engine`` whose ``Details.APIVersion``
  is the libpod API version (``/_ping`` says the same in its ``Libpod-API-Version`` header).
  Docker lists ``Engine``.
- ``GET /info``'s ``ID`` is a new random UUID on every call: nothing to key the per-daemon
  lock or a saved plan's daemon on. ``GET /libpod/info`` gives the host name and the store's
  ``graphRoot`` and ``runRoot``, which stay the same for the life of the store; two services
  sharing one graph root share every image, so they are one daemon to us. The identity is a
  digest of the three (see :func:`podman_identity`).

These are pure functions of the API's documents, so they are tested on plain data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.daemon.host import DaemonIdentity

PODMAN_COMPONENT = "Podman Engine"


@dataclass(frozen=True)
class EngineKind:
    """The engine behind an address: ``docker`` or ``podman``; ``libpod_api`` is Podman's own API version."""

    name: str = "docker"
    libpod_api: str = ""

    @property
    def is_podman(self) -> bool:
        return self.name == "podman"


def engine_from_version(version: Any) -> EngineKind:
    """The engine ``GET /version`` describes; Docker unless a ``Podman Engine`` component is listed."""
    components = version.get("Components") if isinstance(version, Mapping) else None
    for component in components or ():
        if isinstance(component, Mapping) and component.get("Name") == PODMAN_COMPONENT:
            details = component.get("Details") or {}
            api = details.get("APIVersion") if isinstance(details, Mapping) else None
            return EngineKind("podman", str(api or component.get("Version") or ""))
    return EngineKind()


def podman_identity(libpod_info: Any) -> DaemonIdentity:
    """A stable identity from ``GET /libpod/info``: host name and storage roots, digested.

    Podman's ``/info`` ID changes on every call, so it is never used. The same host name and
    graph root mean the same image store, hence the same daemon for locks and saved plans.
    """
    info = libpod_info if isinstance(libpod_info, Mapping) else {}
    host = info.get("host") or {}
    store = info.get("store") or {}
    hostname = str(host.get("hostname") or "")
    graph_root = str(store.get("graphRoot") or "")
    run_root = str(store.get("runRoot") or "")
    if not graph_root:
        return DaemonIdentity(name=hostname)  # no store to know it by: the lock falls back to the socket
    digest = hashlib.sha256("\0".join((hostname, graph_root, run_root)).encode()).hexdigest()
    return DaemonIdentity(engine_id=f"podman-{digest[:32]}", name=hostname, root_dir=graph_root)
