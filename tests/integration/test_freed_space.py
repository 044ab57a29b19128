"""Predicted freed space against what the engine's disk really lost, with shared layers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Engine

ImageFactory = Callable[..., str]
CliRun = Callable[..., Any]
WriteManifest = Callable[..., Path]


def store_bytes(engine: Engine) -> int:
    """What the engine's images take, measured without reconcile: dockerd's LayersSize; for Podman
    (whose /system/df says 0) the bytes of the files in its private store's layers."""
    if not engine.is_podman:
        return int(engine.api.df()["LayersSize"])
    root = Path(os.environ["RECONCILE_SANDBOX_DIR"]) / "podman" / "root" / "overlay"
    return sum(
        path.lstat().st_size
        for folder, _, names in os.walk(root)
        for path in (Path(folder) / name for name in names)
        if path.is_file() and not path.is_symlink()
    )


@pytest.mark.parametrize("remove_base", [True, False], ids=["with-base", "children-only"])
def test_freed_space_counts_layers_shared_only_by_removed_images(
    remove_base: bool,
    engine: Engine,
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
) -> None:
    base = engine.local(image_factory, "base:1", size_kb=1024)
    engine.local(image_factory, "one:1", base=base, size_kb=256)
    engine.local(image_factory, "two:1", base=base, size_kb=128)
    absent = ["one", "two", *(["base"] if remove_base else [])]
    manifest = tmp_manifest(
        "version: 1\nimages:\n"
        + "".join(f"  - name: {namespace}/{name}\n    state: absent\n" for name in absent)
    )

    planning = run_cli("plan", manifest, "-o", "json")
    assert planning.code == 0, planning.stderr
    planned = json.loads(planning.stdout)
    predicted = planned["summary"]["bytes_to_free"]
    before = store_bytes(engine)
    applied = run_cli("apply", manifest, "-o", "json")
    assert applied.code == 0, applied.stdout + applied.stderr
    measured_by_us = json.loads(applied.stdout)["summary"]["bytes_freed_measured"]
    measured = before - store_bytes(engine)

    expected_kb = 256 + 128 + (1024 if remove_base else 0)
    assert abs(measured - expected_kb * 1024) <= 0.02 * expected_kb * 1024 + 4096
    assert abs(predicted - measured) <= 0.01 * measured + (8192 if engine.is_podman else 0)
    if engine.is_podman:
        # The engine's own figures (layers as tars, manifests and configs), not the files on disk.
        assert predicted == measured_by_us
    else:
        assert measured_by_us == measured
