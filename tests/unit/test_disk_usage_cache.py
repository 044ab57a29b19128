"""The images' part of ``/system/df`` is asked again only when the host lists other images than when
it was last read: the same images have the same shared bytes and layer total."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.daemon.host import DiskUsageReport
from reconciler.state.disk_usage_cache import CACHE_FILE, keep_disk_usage, kept_disk_usage
from tests.unit.test_disk_usage_ahead import DAY, NOW, plan

from ..fake_daemon import FakeDockerHost


def sized_removals(host: FakeDockerHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    return [(str(step.image_id), step.bytes) for step in plan(host, tmp_path, monkeypatch).plan.steps]


def host_with_shared_layers() -> tuple[FakeDockerHost, str]:
    host = FakeDockerHost(clock=lambda: NOW)
    base = {"base": 600}
    old = host.add_image(["reg.local/app:old"], created=NOW - 90 * DAY, layers={**base, "old": 100})
    host.add_image(["reg.local/app:new"], created=NOW - DAY, layers={**base, "new": 50})
    return host, old


def test_an_unchanged_host_is_sized_again_without_asking_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, old = host_with_shared_layers()
    first = sized_removals(host, tmp_path, monkeypatch)
    assert first == [(old, 100)] and host.calls["disk_usage"] == 1
    assert sized_removals(host, tmp_path, monkeypatch) == first
    assert host.calls["disk_usage"] == 1  # the same images: the kept answer


def test_a_host_that_lists_other_images_is_asked_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host, old = host_with_shared_layers()
    sized_removals(host, tmp_path, monkeypatch)
    # A new image on the same base: the old image's layers are shared with one more, its bytes unchanged,
    # but the answer is not the one kept.
    host.add_image(["reg.local/app:newer"], created=NOW - DAY, layers={"base": 600, "old": 100})
    assert sized_removals(host, tmp_path, monkeypatch) == [(old, 0)]
    assert host.calls["disk_usage"] == 2


def test_an_answer_that_misses_a_listed_image_is_not_kept(tmp_path: Path) -> None:
    usage = DiskUsageReport(layers_size=700, shared_sizes={"sha256:a": 0})
    keep_disk_usage(tmp_path, "unix:///docker.sock", ["sha256:a", "sha256:b"], usage)
    assert kept_disk_usage(tmp_path, "unix:///docker.sock", ["sha256:a", "sha256:b"]) is None
    keep_disk_usage(tmp_path, "unix:///docker.sock", ["sha256:a"], usage)
    assert kept_disk_usage(tmp_path, "unix:///docker.sock", ["sha256:a"]) == usage
    assert kept_disk_usage(tmp_path, "unix:///other.sock", ["sha256:a"]) is None


@pytest.mark.parametrize("text", ["", "{", '{"format": 9, "hosts": {}}', '{"format": 1, "hosts": []}'])
def test_a_corrupt_or_foreign_file_is_ignored(tmp_path: Path, text: str) -> None:
    (tmp_path / CACHE_FILE).write_text(text)
    assert kept_disk_usage(tmp_path, "unix:///docker.sock", ["sha256:a"]) is None
    keep_disk_usage(tmp_path, "unix:///docker.sock", ["sha256:a"], DiskUsageReport(5, {"sha256:a": 0}))
    assert json.loads((tmp_path / CACHE_FILE).read_text())["format"] == 1
    assert kept_disk_usage(tmp_path, "unix:///docker.sock", ["sha256:a"]) is not None
