"""A retention plan asks ``/system/df`` (its removals are sized with it) on a session of its own
while the image list, the events and the decision go on, instead of after deciding; its errors stay
where they were."""

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
from reconciler.flows.prefetch import Prefetch
from reconciler.loading.loader import load_manifest_text
from reconciler.model.inventory import EventWindow, ImageRecord

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


class DiskBeforeImages(WatchedDisk):
    """The image list answers only once ``/system/df`` was asked (or after 5 s)."""

    asked_before_images: bool | None = None

    def list_images(self) -> tuple[ImageRecord, ...]:
        self.asked_before_images = self.disk_asked.wait(5)
        return super().list_images()


def test_with_the_early_reads_the_disk_usage_is_asked_while_the_image_list_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = DiskBeforeImages()
    old = host.add_image(["reg.local/app:old"], size=700, created=NOW - 90 * DAY)
    early = Prefetch(lambda: host).start()  # type: ignore[arg-type, return-value]  # the fake stands in for the engine
    monkeypatch.setattr(plan_host_module, "connect", lambda address, **how: pytest.fail("connected again"))
    manifest = load_manifest_text(RETENTION, "images.yaml", environ={})
    options = PlanOptions(state_dir=tmp_path, allow_large_removal=True, prefetch=early)
    outcome = plan_host(manifest, host.address, options)
    assert host.asked_before_images is True
    assert host.calls["disk_usage"] == 1 and host.calls["list_images"] == 1
    assert [(s.action.value, s.image_id, s.bytes) for s in outcome.plan.steps] == [("remove", old, 700)]
