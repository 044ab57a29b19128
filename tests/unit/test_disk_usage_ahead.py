"""A retention plan asks ``/system/df`` (its removals are sized with it) while it reads the events and
decides, on a session of its own, instead of after deciding; its errors stay where they were."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from reconciler.daemon.host import DiskUsageReport, KnownLayersSource
from reconciler.errors import DaemonUnavailable
from reconciler.flows import plan_host as plan_host_module
from reconciler.flows.outcomes import PlanOutcome
from reconciler.flows.plan_host import PlanOptions, plan_host
from reconciler.loading.loader import load_manifest_text
from reconciler.model.inventory import EventWindow

from ..fake_daemon import FakeDockerHost

DAY = 86_400
NOW = int(time.time())  # plan_host plans at the real time
RETENTION = """
version: 1
images: []
retention:
  min_age: 0s
  rules:
    - {name: old, select: {repositories: ["reg.local/**"]}, older_than: 30d}
"""


class WatchedDisk(FakeDockerHost):
    """The events answer only once ``/system/df`` was asked (or after 5 s): asked in turn, after
    deciding, it would not be."""

    def __init__(self) -> None:
        super().__init__(address="unix:///docker.sock", clock=lambda: NOW)
        self.disk_asked = threading.Event()
        self.asked_before_events: bool | None = None

    def disk_usage(self, known: KnownLayersSource | None = None) -> DiskUsageReport:
        self.disk_asked.set()
        return super().disk_usage(known)

    def events(self, since: float, until: float) -> EventWindow:
        self.asked_before_events = self.disk_asked.wait(5)
        return super().events(since, until)


def plan(host: FakeDockerHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PlanOutcome:
    monkeypatch.setattr(plan_host_module, "connect", lambda address, **how: host)
    manifest = load_manifest_text(RETENTION, "images.yaml", environ={})
    return plan_host(manifest, host.address, PlanOptions(state_dir=tmp_path, allow_large_removal=True))


def test_the_disk_usage_is_asked_while_the_events_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = WatchedDisk()
    old = host.add_image(["reg.local/app:old"], size=700, created=NOW - 90 * DAY)
    host.add_image(["reg.local/app:new"], size=300, created=NOW - DAY)
    outcome = plan(host, tmp_path, monkeypatch)
    assert host.asked_before_events is True
    assert host.calls["disk_usage"] == 1
    (step,) = outcome.plan.steps
    assert (step.action.value, step.image_id, step.bytes) == ("remove", old, 700)  # sized with that answer


def test_a_disk_usage_that_fails_fails_a_plan_that_removes_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = FakeDockerHost(clock=lambda: NOW)
    host.add_image(["reg.local/app:old"], size=700, created=NOW - 90 * DAY)
    host.fail_calls["disk_usage"] = DaemonUnavailable("the daemon went away")
    with pytest.raises(DaemonUnavailable, match="went away"):
        plan(host, tmp_path, monkeypatch)


def test_a_plan_that_removes_nothing_is_not_failed_by_the_disk_usage_it_does_not_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = FakeDockerHost(clock=lambda: NOW)
    host.add_image(["reg.local/app:new"], size=300, created=NOW - DAY)
    host.fail_calls["disk_usage"] = DaemonUnavailable("the daemon went away")
    outcome = plan(host, tmp_path, monkeypatch)
    assert outcome.plan.steps == ()
