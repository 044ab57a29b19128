"""``source: build`` and ``source: load`` in the manifest: located errors for what cannot work,
paths resolved against the manifest's directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.loading.loader import load_manifest
from reconciler.model.manifest import Builder


def _problems(tmp_path: Path, entry: str) -> list[str]:
    path = tmp_path / "images.yaml"
    path.write_text("version: 1\nimages:\n" + entry)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, {})
    return [f"{d.path} (line {d.line}): {d.message}" for d in caught.value.diagnostics]


@pytest.fixture
def context(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    return tmp_path / "app"


def test_paths_are_relative_to_the_manifest_and_args_sorted(tmp_path: Path, context: Path) -> None:
    (tmp_path / "tool.tar").write_bytes(b"x")
    path = tmp_path / "images.yaml"
    path.write_text(
        "version: 1\nimages:\n"
        "  - {name: app, source: build, context: app, args: {B: '2', A: '1'}, target: run, builder: buildkit}\n"
        "  - {name: tool, source: load, archive: tool.tar}\n"
    )
    app, tool = load_manifest(path, {}).images
    assert app.build is not None and app.build.context == str(context)
    assert (app.build.args, app.build.target, app.build.builder) == ((("A", "1"), ("B", "2")), "run", Builder.BUILDKIT)
    assert tool.archive == str(tmp_path / "tool.tar")
    assert app.tags == ("latest",)


def test_a_build_with_a_digest_pin_or_a_pull_policy_is_refused(tmp_path: Path, context: Path) -> None:
    found = _problems(
        tmp_path,
        "  - name: app\n    source: build\n    context: app\n    pull: always\n"
        f"    digest: sha256:{'a' * 64}\n",
    )
    assert found == [
        "images[0].pull (line 6): 'pull' is about pulling from a registry, and source: build makes the image"
        " on this host; remove it (or the source).",
        "images[0].digest (line 7): 'digest' is about pulling from a registry, and source: build makes the image"
        " on this host; remove it (or the source).",
    ]


def test_missing_context_dockerfile_and_archive_are_located_errors(tmp_path: Path, context: Path) -> None:
    found = _problems(
        tmp_path,
        "  - {name: a, source: build, context: nowhere}\n"
        "  - {name: b, source: build, context: app, dockerfile: Other.Dockerfile}\n"
        "  - {name: c, source: load, archive: missing.tar}\n",
    )
    assert found == [
        f"images[0].context (line 3): the build context {tmp_path}/nowhere is not a directory;"
        " write a directory relative to the manifest's directory.",
        f"images[1].dockerfile (line 4): there is no Dockerfile {context}/Other.Dockerfile; add it, or name"
        " another with dockerfile: (relative to the context).",
        f"images[2].archive (line 5): the archive {tmp_path}/missing.tar is not a file; write the path of a"
        " `docker save` archive, relative to the manifest's directory.",
    ]


def test_build_keys_need_their_source_and_args_are_strings(tmp_path: Path, context: Path) -> None:
    found = _problems(
        tmp_path,
        "  - {name: a, context: app}\n"
        "  - {name: b, source: build}\n"
        "  - {name: c, source: build, context: app, args: {VERSION: 1}}\n",
    )
    assert found[0].startswith("images[0].context (line 3): 'context' belongs to source: build")
    assert found[1] == "images[1].source (line 4): source: build needs 'context'; add it."
    assert found[2].startswith("images[2].args.VERSION (line 5):") and "string" in found[2]
    assert len(found) == 3
