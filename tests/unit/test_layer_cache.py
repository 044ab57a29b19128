"""The layer cache: what is read of an image id's layers once is not read again; a bad file is ignored."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.flows.host_facts import read_inventory, with_shared_sizes
from reconciler.flows.sizing import read_freed_bytes
from reconciler.state.layer_cache import (
    CACHE_FILE,
    KnownLayers,
    read_layer_cache,
    write_layer_cache,
)
from tests.fake_daemon import FakeDockerHost


def _host() -> tuple[FakeDockerHost, list[str]]:
    """Two removed images on one base, with a kept image on the same base."""
    host = FakeDockerHost()
    base = host.add_image(["app/base:1"], layers={"base": 100})
    removed = [host.add_image([f"app/old:{n}"], parent=base, layers={f"own{n}": 10 * n}) for n in (1, 2)]
    host.add_image(["app/new:1"], parent=base, layers={"new": 5})
    host.delete("app/base:1")  # the base stays as the parent of the others
    return host, removed


def _freed(host: FakeDockerHost, removed: list[str], state_dir: Path | None) -> dict[str, int] | None:
    inventory = with_shared_sizes(host, read_inventory(host))
    return read_freed_bytes(host, inventory, removed, state_dir)


def _reads(host: FakeDockerHost) -> int:
    return host.calls["inspect_image"] + host.calls["image_history"]


def test_a_warm_cache_reads_no_layers_and_sizes_the_same(tmp_path: Path) -> None:
    host, removed = _host()
    uncached = _freed(host, removed, None)
    cold_reads = _reads(host)
    assert cold_reads > 0 and uncached == {removed[0]: 10, removed[1]: 20}
    assert _freed(host, removed, tmp_path) == uncached
    before = _reads(host)
    assert _freed(host, removed, tmp_path) == uncached
    assert _reads(host) == before  # every layer came from the cache


def test_a_corrupt_or_foreign_file_is_ignored_and_replaced(tmp_path: Path) -> None:
    host, removed = _host()
    for text in ("{not json", json.dumps({"format": 99, "images": {}}), json.dumps({"format": 1, "images": {
        removed[0]: {"layers": "x", "sizes": [1]}}}), "\xff"):
        (tmp_path / CACHE_FILE).write_text(text, encoding="latin-1")
        assert _freed(host, removed, tmp_path) == {removed[0]: 10, removed[1]: 20}
        assert removed[0] in read_layer_cache(tmp_path)


def test_writes_merge_with_what_another_run_wrote(tmp_path: Path) -> None:
    write_layer_cache(tmp_path, {"sha256:a": KnownLayers(("sha256:l1",), (5,))})
    write_layer_cache(tmp_path, {"sha256:b": KnownLayers(("sha256:l2",))})
    write_layer_cache(tmp_path, {"sha256:a": KnownLayers(("sha256:l1",))})  # knowing less forgets nothing
    assert read_layer_cache(tmp_path) == {
        "sha256:a": KnownLayers(("sha256:l1",), (5,)),
        "sha256:b": KnownLayers(("sha256:l2",)),
    }
    assert not [p for p in tmp_path.iterdir() if p.name != CACHE_FILE]  # no temporary file left


def test_an_unwritable_state_dir_costs_only_the_reads(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    host, removed = _host()
    assert _freed(host, removed, blocker / "state") == {removed[0]: 10, removed[1]: 20}
