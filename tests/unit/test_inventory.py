"""Inventory files (--inventory): read with the manifests' located diagnostics, and --limit as ansible reads it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.loading.inventory_loader import load_inventory
from reconciler.planning.host_limit import LimitError, select_hosts

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "images.yaml").write_text("version: 1\n")
    (tmp_path / "web.yaml").write_text("version: 1\n")
    path = tmp_path / "fleet.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_inventory(path)
    return [str(d) for d in caught.value.diagnostics]


def test_the_example_inventory_loads_with_groups_children_and_manifests() -> None:
    fleet = load_inventory(ROOT / "examples" / "fleet.yaml")
    assert [h.name for h in fleet.hosts] == ["build-1", "build-2", "web-1", "web-2", "local"]
    groups = dict(fleet.groups)
    assert groups["production"] == ("build-1", "build-2", "web-1", "web-2")
    assert fleet.host("web-1").manifest == str(ROOT / "manifests" / "blog.yaml")
    assert fleet.host("local").manifest == str(ROOT / "manifests" / "demo.yaml")
    assert fleet.host("build-2").groups == ("build", "production")


def test_tls_paths_are_read_relative_to_the_inventory(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    path = write(tmp_path, """\
        version: 1
        hosts:
          a:
            address: tcp://a:2376
            tls: {ca_cert: ca.pem, cert: cert.pem, key: key.pem}
        groups:
          all-of-them: {hosts: [a], manifest: images.yaml}
    """)
    host = load_inventory(path).host("a")
    assert host.tls is not None and host.tls.ca_cert == str(tmp_path / "ca.pem") and host.tls.verify
    assert host.manifest == str(tmp_path / "images.yaml")


def test_every_problem_is_located_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        version: 1
        hosts:
          a:
            address: unix:///a.sock
            tls: {ca_cert: ca.pem}
          b:
            adress: tcp://b:2375
          c:
            address: http://c
          d:
            address: tcp://d:2375
        groups:
          web: {hosts: [a, ghost], manifest: web.yaml}
          build: {hosts: [a, d], manifest: images.yaml, children: [nowhere]}
          d: {hosts: [d]}
    """)
    found = problems(path)
    assert any(":7:" in p and "unknown key 'adress'; did you mean 'address'?" in p for p in found), found
    assert any(":7:" in p and "hosts.b: missing required key 'address'" in p for p in found), found
    assert any(":9:" in p and "hosts.c.address" in p for p in found), found


def test_what_the_schema_cannot_say(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        version: 1
        hosts:
          a: {address: unix:///a.sock, tls: {verify: false}}
          d: {address: tcp://d:2375}
          e: {address: tcp://e:2375, manifest: missing.yaml}
        groups:
          web: {hosts: [a, ghost], manifest: web.yaml}
          build: {hosts: [a, d], manifest: images.yaml, children: [nowhere]}
          d: {hosts: [d]}
          loop: {children: [loop2]}
          loop2: {children: [loop]}
    """)
    found = "\n".join(problems(path))
    assert "fleet.yaml:3:" in found and "hosts.a: the host is in groups that name different manifests: web" in found
    assert "hosts.a.tls: TLS settings are for tcp:// addresses only." in found
    assert "hosts.e.manifest: no file" in found
    assert "groups.web.hosts[1]: no host 'ghost' under hosts:" in found
    assert "groups.build.children[0]: no group 'nowhere' under groups:." in found
    assert "groups.d: 'd' names both a group and a host" in found
    assert "the group is inside itself (loop -> loop2 -> loop)" in found


HOSTS = ["build-1", "build-2", "web-1", "web-2", "db"]
GROUPS = {"build": ["build-1", "build-2"], "web": ["web-1", "web-2"], "prod": ["web-1", "web-2", "db"]}


@pytest.mark.parametrize(
    ("pattern", "chosen"),
    [
        ("all", HOSTS),
        ("*", HOSTS),
        ("web", ["web-1", "web-2"]),
        ("build-1,db", ["build-1", "db"]),
        ("build-1:db", ["build-1", "db"]),
        ("*-1", ["build-1", "web-1"]),
        ("prod,!web-2", ["web-1", "db"]),
        ("!build", ["web-1", "web-2", "db"]),
        ("prod,&web", ["web-1", "web-2"]),
        ("db,build-2", ["build-2", "db"]),  # the inventory's order, not the pattern's
    ],
)
def test_limit_reads_patterns_as_ansible_does(pattern: str, chosen: list[str]) -> None:
    assert list(select_hosts(pattern, HOSTS, GROUPS).hosts) == chosen


def test_a_limit_term_that_matches_nothing_is_named_and_an_empty_selection_refused() -> None:
    assert select_hosts("web,nosuch", HOSTS, GROUPS).unmatched == ("nosuch",)
    with pytest.raises(LimitError, match="selects no host"):
        select_hosts("nosuch", HOSTS, GROUPS)
    with pytest.raises(LimitError):
        select_hosts("web,!web", HOSTS, GROUPS)
