"""Load an inventory file (``--inventory``) into a :class:`Fleet`, reporting every problem at once.

The passes of images.yaml's loader, on another schema: bounded YAML with positions,
``${VAR}`` substitution, JSON Schema (``schemas/inventory.schema.json``), then what a schema
cannot say: groups naming hosts and groups that exist, no group inside itself, no group
named like a host (``--limit`` would not know which is meant), files that exist, TLS only
for ``tcp://``, and one manifest per host. Paths are relative to the inventory's directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from reconciler.errors import Diagnostic, ManifestError
from reconciler.loading.env_substitution import substitute_all
from reconciler.loading.manifest_file import read_file_bounded
from reconciler.loading.schema_messages import schema_diagnostics
from reconciler.loading.yaml_source import Plain, SourceDocument, YamlPath, read_yaml_bytes
from reconciler.model.fleet import Fleet, FleetHost, TlsSettings


def load_inventory(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Fleet:
    """Read and check the inventory at ``path``; raises ManifestError (exit 65) with every problem."""
    filename = os.fspath(path)
    document = read_yaml_bytes(read_file_bounded(filename), filename)
    data, diagnostics = substitute_all(document, os.environ if environ is None else environ)
    diagnostics += schema_diagnostics(document, data, "inventory")
    if not diagnostics:
        checks = _Checks(document, data, Path(filename).parent)
        fleet = checks.fleet()
        diagnostics += checks.diagnostics
    if diagnostics:
        ordered = sorted(dict.fromkeys(diagnostics), key=lambda d: (d.line, d.column, d.path, d.message))
        raise ManifestError(ordered)
    return fleet


class _Checks:
    """The semantic pass over schema-valid data; collects diagnostics, builds the Fleet."""

    def __init__(self, document: SourceDocument, data: dict[str, Plain], base: Path) -> None:
        self.document = document
        self.base = base
        self.diagnostics: list[Diagnostic] = []
        self.hosts: dict[str, dict[str, Plain]] = _mapping(data.get("hosts"))
        self.groups: dict[str, dict[str, Plain]] = _mapping(data.get("groups"))

    def fail(self, path: YamlPath, message: str, *, at_key: bool = False) -> None:
        self.diagnostics.append(self.document.diagnostic(path, message, at_key=at_key))

    def fleet(self) -> Fleet:
        for name in self.groups:
            if name in self.hosts:
                self.fail(("groups", name), f"'{name}' names both a group and a host; rename one.", at_key=True)
            self._check_names(name)
        members = {name: self._members(name, ()) for name in self.groups}
        hosts = tuple(self._host(name, members) for name in self.hosts)
        groups = tuple((name, tuple(h for h in self.hosts if h in found)) for name, found in members.items())
        return Fleet(hosts=hosts, groups=groups, path=self.document.filename)

    def _check_names(self, group: str) -> None:
        spec = self.groups[group]
        for index, host in enumerate(_texts(spec.get("hosts"))):
            if host not in self.hosts:
                self.fail(("groups", group, "hosts", index), f"no host '{host}' under hosts:; add it there or drop it.")
        for index, child in enumerate(_texts(spec.get("children"))):
            if child not in self.groups:
                self.fail(("groups", group, "children", index), f"no group '{child}' under groups:.")

    def _members(self, group: str, inside: tuple[str, ...]) -> set[str]:
        """The hosts of ``group`` and of its children, however deep; a group inside itself is an error."""
        if group in inside:
            chain = " -> ".join((*inside, group))
            self.fail(("groups", inside[0]), f"the group is inside itself ({chain}); remove one of the children.")
            return set()
        spec = self.groups.get(group, {})
        found = {h for h in _texts(spec.get("hosts")) if h in self.hosts}
        for child in _texts(spec.get("children")):
            if child in self.groups:
                found |= self._members(child, (*inside, group))
        return found

    def _host(self, name: str, members: Mapping[str, set[str]]) -> FleetHost:
        spec = self.hosts[name]
        address = str(spec["address"])
        groups = tuple(g for g, found in members.items() if name in found)
        tls = self._tls(name, spec, address)
        manifest = self._manifest_of(name, spec, groups)
        return FleetHost(name=name, address=address, groups=groups, manifest=manifest, tls=tls)

    def _manifest_of(self, name: str, spec: Mapping[str, Plain], groups: tuple[str, ...]) -> str | None:
        if isinstance(spec.get("manifest"), str):
            return self._file(("hosts", name, "manifest"), str(spec["manifest"]))
        named = [(g, str(self.groups[g]["manifest"])) for g in groups if isinstance(self.groups[g].get("manifest"), str)]
        paths = {self._resolved(path) for _, path in named}
        if len(paths) > 1:
            which = ", ".join(f"{g} ({path})" for g, path in named)
            self.fail(
                ("hosts", name),
                f"the host is in groups that name different manifests: {which}. A host matches one manifest: "
                "give it its own `manifest:`, or take it out of all but one of them.",
                at_key=True,
            )
            return None
        if not named:
            return None
        group, path = named[0]
        return self._file(("groups", group, "manifest"), path)

    def _tls(self, name: str, spec: Mapping[str, Plain], address: str) -> TlsSettings | None:
        raw = spec.get("tls")
        if not isinstance(raw, dict):
            return None
        if not address.startswith("tcp://"):
            self.fail(("hosts", name, "tls"), "TLS settings are for tcp:// addresses only.", at_key=True)
            return None
        paths = {key: self._file(("hosts", name, "tls", key), str(raw[key])) for key in ("ca_cert", "cert", "key") if key in raw}
        if ("cert" in raw) != ("key" in raw):
            self.fail(("hosts", name, "tls"), "give both cert and key (a client certificate and its key), or neither.", at_key=True)
        return TlsSettings(
            ca_cert=paths.get("ca_cert"), cert=paths.get("cert"), key=paths.get("key"), verify=raw.get("verify") is not False
        )

    def _resolved(self, path: str) -> str:
        return os.path.normpath(self.base / os.path.expanduser(path))

    def _file(self, where: YamlPath, path: str) -> str:
        resolved = self._resolved(path)
        if not os.path.isfile(resolved):
            self.fail(where, f"no file {resolved}; paths are relative to the inventory's directory.")
        return resolved


def _mapping(value: Plain) -> dict[str, dict[str, Plain]]:
    if not isinstance(value, dict):
        return {}
    return {key: item if isinstance(item, dict) else {} for key, item in value.items()}


def _texts(value: Plain) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
