"""Loads of a manifest kept between runs (``state/manifest_cache``): taken only for the same file,
bytes, environment-free text and loading code; a refused, variable or locally built manifest is
never kept; an entry that is not ours is ignored, and nothing in it runs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ManifestError
from reconciler.loading import loader
from reconciler.loading.manifest_file import file_digest, load_manifest_file
from reconciler.model.manifest import Manifest
from reconciler.state import manifest_cache
from reconciler.state.manifest_cache import ManifestCache

MANIFEST = (
    "version: 1\nimages:\n"
    "  - {name: example.test/app, tags: ['1', '2'], aliases: ['example.test/other:1']}\n"
    "prune: {unlisted_tags: true}\n"
    "retention:\n  rules:\n    - {name: old, select: {repositories: ['example.test/**']}, keep_last: 2}\n"
)


class Loads:
    """Counts the manifests ``load_manifest_file`` had parsed and checked rather than taken from the
    cache (it hands the digest over; the tests' own ``loader.load_manifest`` does not, and is not counted)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = loader.manifest_from_bytes

        def counted(*args: Any, **kwargs: Any) -> Manifest:
            self.count += len(args) == 4
            return real(*args, **kwargs)

        monkeypatch.setattr(loader, "manifest_from_bytes", counted)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Loads:
    return Loads(monkeypatch)


def _entries(state: Path) -> list[str]:
    folder = state / manifest_cache.CACHE_DIR
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_the_same_bytes_are_loaded_once_and_the_kept_manifest_equals_a_fresh_load(tmp_path: Path, loads: Loads) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(MANIFEST)
    first = load_manifest_file(path, ManifestCache(tmp_path / "state"))
    again = load_manifest_file(path, ManifestCache(tmp_path / "state"))  # as the next run would
    assert loads.count == 1
    assert again == first == loader.load_manifest(path)
    assert again.declared == first.declared and again.retention == first.retention
    assert [s.source for s in again.images] == [s.source for s in first.images]  # positions, for messages
    assert len(_entries(tmp_path / "state")) == 1


def test_a_kept_manifest_comes_with_its_declared_set_made(tmp_path: Path, loads: Loads) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(MANIFEST)
    load_manifest_file(path, ManifestCache(tmp_path / "state"))
    again = load_manifest_file(path, ManifestCache(tmp_path / "state"))
    assert "declared" in again.__dict__  # made by the run that kept it, not by each plan
    assert again.declared == loader.load_manifest(path).declared
    assert again.declared.tag_texts >= {"example.test/app:1", "example.test/other:1"}


def test_a_changed_file_is_loaded_again(tmp_path: Path, loads: Loads) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(MANIFEST)
    cache = ManifestCache(tmp_path / "state")
    load_manifest_file(path, cache)
    path.write_text(MANIFEST.replace("'2'", "'3'"))
    changed = load_manifest_file(path, cache)
    assert loads.count == 2
    assert changed.images[0].tags == ("1", "3")


def test_the_same_bytes_under_another_file_name_are_not_taken_for_it(tmp_path: Path, loads: Loads) -> None:
    (tmp_path / "a.yaml").write_text(MANIFEST)
    (tmp_path / "b.yaml").write_text(MANIFEST)
    cache = ManifestCache(tmp_path / "state")
    load_manifest_file(tmp_path / "a.yaml", cache)
    other = load_manifest_file(tmp_path / "b.yaml", cache)
    assert loads.count == 2
    assert other.path == str(tmp_path / "b.yaml")


def test_a_manifest_with_variables_is_loaded_each_time_with_the_environment_of_the_run(
    tmp_path: Path, loads: Loads
) -> None:
    path = tmp_path / "images.yaml"
    path.write_text("version: 1\nimages:\n  - {name: example.test/app, tags: ['${TAG}']}\n")
    cache = ManifestCache(tmp_path / "state")
    assert load_manifest_file(path, cache, {"TAG": "1"}).images[0].tags == ("1",)
    assert load_manifest_file(path, cache, {"TAG": "2"}).images[0].tags == ("2",)
    assert loads.count == 2 and _entries(tmp_path / "state") == []


def test_a_manifest_with_a_local_source_is_loaded_each_time(tmp_path: Path, loads: Loads) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    path = tmp_path / "images.yaml"
    path.write_text("version: 1\nimages:\n  - {name: app, source: build, context: app}\n")
    cache = ManifestCache(tmp_path / "state")
    load_manifest_file(path, cache)
    (tmp_path / "app").rename(tmp_path / "gone")
    with pytest.raises(ManifestError):  # the context's absence is found: nothing was kept
        load_manifest_file(path, cache)
    assert _entries(tmp_path / "state") == []


def test_a_refused_manifest_is_never_kept_and_refused_again(tmp_path: Path, loads: Loads) -> None:
    path = tmp_path / "images.yaml"
    path.write_text("version: 1\nimages:\n  - {name: 'Bad Name', tags: ['1']}\n")
    cache = ManifestCache(tmp_path / "state")
    for _ in range(2):
        with pytest.raises(ManifestError) as caught:
            load_manifest_file(path, cache)
        assert caught.value.diagnostics[0].line == 3
    assert loads.count == 2 and _entries(tmp_path / "state") == []


def test_a_change_to_the_loading_code_finds_no_entry(
    tmp_path: Path, loads: Loads, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(MANIFEST)
    load_manifest_file(path, ManifestCache(tmp_path / "state"))
    monkeypatch.setattr(manifest_cache, "_code_signature", lambda: "another loader")
    load_manifest_file(path, ManifestCache(tmp_path / "state"))
    assert loads.count == 2


class _Planted:
    """What a hostile entry holds: unpickling it would create the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def _entry_path(tmp_path: Path, path: Path) -> Path:
    cache = ManifestCache(tmp_path / "state")
    load_manifest_file(path, cache)
    (entry,) = (tmp_path / "state" / manifest_cache.CACHE_DIR).iterdir()
    return entry


def test_an_entry_that_would_call_anything_else_is_ignored_and_nothing_in_it_runs(
    tmp_path: Path, loads: Loads
) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(MANIFEST)
    entry = _entry_path(tmp_path, path)
    marker = tmp_path / "planted"
    entry.write_bytes(pickle.dumps(_Planted(marker)))
    manifest = load_manifest_file(path, ManifestCache(tmp_path / "state"))
    assert not marker.exists()
    assert manifest == loader.load_manifest(path) and loads.count == 2


@pytest.mark.parametrize("damage", ["truncated", "another digest", "not a manifest", "a link"])
def test_a_corrupt_foreign_or_linked_entry_is_ignored(tmp_path: Path, loads: Loads, damage: str) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(MANIFEST)
    entry = _entry_path(tmp_path, path)
    fresh = loader.load_manifest(path)
    if damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:100])
    elif damage == "another digest":
        entry.write_bytes(pickle.dumps(Manifest(images=fresh.images[:0], path=str(path), digest=file_digest(b"x"))))
    elif damage == "not a manifest":
        entry.write_bytes(pickle.dumps(fresh.images[0]))
    else:
        elsewhere = tmp_path / "elsewhere.pickle"
        entry.rename(elsewhere)
        entry.symlink_to(elsewhere)
    assert load_manifest_file(path, ManifestCache(tmp_path / "state")) == fresh
    assert loads.count == 2


def test_only_the_newest_entries_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest_cache, "MAX_ENTRIES", 3)
    cache = ManifestCache(tmp_path / "state")
    for tag in range(5):
        path = tmp_path / f"m{tag}.yaml"
        path.write_text(f"version: 1\nimages:\n  - {{name: example.test/app, tags: ['{tag}']}}\n")
        load_manifest_file(path, cache)
    assert len(_entries(tmp_path / "state")) == 3


def test_a_state_directory_that_cannot_be_written_only_costs_the_cache(tmp_path: Path, loads: Loads) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(MANIFEST)
    (tmp_path / "state").write_text("a file, not a directory")
    cache = ManifestCache(tmp_path / "state")
    assert load_manifest_file(path, cache) == load_manifest_file(path, cache) == loader.load_manifest(path)
    assert loads.count == 2
