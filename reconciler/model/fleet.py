"""The hosts of an inventory file (``--inventory``): each by name, with its Docker address and manifest."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TlsSettings:
    """How to reach a ``tcp://`` daemon over TLS, as ``docker --tlsverify --tlscacert ...`` does."""

    ca_cert: str | None = None
    cert: str | None = None
    key: str | None = None
    verify: bool = True


@dataclass(frozen=True)
class FleetHost:
    """One host: its name (the run's label for it), its daemon, its groups, the manifest it must match."""

    name: str
    address: str
    groups: tuple[str, ...] = ()
    manifest: str | None = None  # a path; None: the FILE given on the command line
    tls: TlsSettings | None = None


@dataclass(frozen=True)
class Fleet:
    """Every host of an inventory in file order, and each group's members (nested groups resolved)."""

    hosts: tuple[FleetHost, ...]
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (group, host names), in file order
    path: str = ""

    def host(self, name: str) -> FleetHost:
        return next(h for h in self.hosts if h.name == name)
