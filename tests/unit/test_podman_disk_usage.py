"""Podman's disk usage from its images' layers: the figures Docker's ``/system/df`` gives."""

from __future__ import annotations

from pathlib import Path

from reconciler.daemon.host import DiskUsageReport, KnownLayersSource
from reconciler.daemon.podman_disk_usage import PodmanDiskUsage, SizedImage, usage_from_layers
from reconciler.flows.host_facts import cached_disk_usage
from reconciler.state.layer_cache import read_layer_cache
from tests.fake_daemon import FakeDockerHost


class PodmanHost(FakeDockerHost):
    """The fake, its disk usage sized from its layers as DockerEngine does on Podman, by one connection's reader."""

    def __init__(self, host: FakeDockerHost) -> None:
        self.__dict__.update(host.__dict__)
        self._reader = PodmanDiskUsage()

    def disk_usage(self, known: KnownLayersSource | None = None) -> DiskUsageReport:
        return self._reader.read(self, known)


def siblings_without_their_base() -> tuple[FakeDockerHost, str, str]:
    """Two images built on one base whose own image is gone: Podman's SharedSize says 0 for both."""
    host = FakeDockerHost()
    base = host.add_image(["base:1"], layers={"base": 1000})
    one = host.add_image(["one:1"], parent=base, layers={"one": 100})
    two = host.add_image(["two:1"], parent=base, layers={"two": 200})
    host.delete("base:1")
    return host, one, two


def test_sized_from_layers_it_gives_docker_s_total_and_shared_bytes() -> None:
    host, one, two = siblings_without_their_base()
    found = PodmanDiskUsage().read(host)
    docker = host.disk_usage()  # the fake computes them as dockerd does
    assert found.layers_size == docker.layers_size == 1300
    assert found.shared_sizes == {one: 1000, two: 1000} == {i: docker.shared_sizes[i] for i in (one, two)}


def test_an_image_s_bytes_beyond_its_layers_are_its_own() -> None:
    # Podman's Size counts the manifest and config too: they count once, for that image.
    shared = [("base", 1000)]
    found = usage_from_layers(
        {"a": SizedImage((*shared, ("a", 100)), 1100 + 30), "b": SizedImage((*shared, ("b", 200)), 1200 + 40)}
    )
    assert found.layers_size == 1000 + 100 + 200 + 30 + 40
    assert found.shared_sizes == {"a": 1000, "b": 1000}


def test_each_image_is_read_once_and_a_removed_one_no_longer_counts() -> None:
    host, one, _ = siblings_without_their_base()
    usage = PodmanDiskUsage()
    usage.read(host)
    reads = host.calls["inspect_image"]
    host.delete("two:1")
    after = usage.read(host)
    assert host.calls["inspect_image"] == reads
    assert after.layers_size == 1100
    assert after.shared_sizes == {one: 0}


def test_an_image_whose_layers_cannot_be_sized_leaves_the_total_unknown() -> None:
    # 0 is what a max_total budget refuses: never a total that leaves an image out.
    found = usage_from_layers({"a": SizedImage((("x", 10),), 10), "b": None})
    assert found.layers_size == 0
    assert found.shared_sizes == {"a": 0, "b": -1}


def test_a_warm_run_reads_no_image_the_layer_cache_knows(tmp_path: Path) -> None:
    # Each run has its own connection (a new PodmanDiskUsage); the state directory outlives it.
    host, one, two = siblings_without_their_base()
    cold = cached_disk_usage(PodmanHost(host), tmp_path)
    assert host.calls["inspect_image"] == 2 and host.calls["image_history"] == 2
    assert set(read_layer_cache(tmp_path)) == {one, two}
    three = host.add_image(["three:1"], layers={"three": 50})
    warm = cached_disk_usage(PodmanHost(host), tmp_path)
    assert host.calls["inspect_image"] == 3 and host.calls["image_history"] == 3  # the new image only
    assert warm.layers_size == cold.layers_size + 50
    assert warm.shared_sizes == {one: 1000, two: 1000, three: 0}
    assert set(warm.layers_read) == {three}
