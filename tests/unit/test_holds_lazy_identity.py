"""A plan asks the daemon which daemon it is (``GET /info``, what its holds file is keyed on) only
when a hold was ever placed from its state directory: a host without holds costs no call for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.flows.holds import place_hold
from reconciler.flows.host_facts import read_host_facts
from reconciler.loading.loader import load_manifest_text

from ..fake_daemon import FakeDockerHost

MANIFEST = """
version: 1
images:
  - {name: reg.local/app, tags: ["1"]}
prune:
  dangling: true
"""


@pytest.fixture(autouse=True)
def own_lock_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Holds go where locks go (``/run/lock`` on this machine): each test has its own."""
    (tmp_path / "locks").mkdir()
    monkeypatch.setenv("RECONCILE_LOCK_DIR", str(tmp_path / "locks"))


def test_no_identity_is_asked_when_no_hold_was_ever_placed(tmp_path: Path) -> None:
    host = FakeDockerHost()
    host.add_image(["reg.local/app:1"])
    facts = read_host_facts(host, load_manifest_text(MANIFEST, "images.yaml", environ={}), None, tmp_path, 1e9)
    assert facts.holds == ()
    assert host.calls["identity"] == 0


def test_a_placed_hold_is_found_with_the_daemons_identity(tmp_path: Path) -> None:
    host = FakeDockerHost()
    host.add_image(["reg.local/app:1"])
    dangling = host.add_image([], digests=[])
    place_hold(host, tmp_path, dangling, 3600, "a job still needs it", now=1e9)
    before = host.calls["identity"]
    facts = read_host_facts(host, load_manifest_text(MANIFEST, "images.yaml", environ={}), None, tmp_path, 1e9)
    assert [hold.image_id for hold in facts.holds] == [dangling]
    assert host.calls["identity"] > before
