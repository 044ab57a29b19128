"""Predicted freed space against what the daemon's disk usage really lost, with shared layers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from docker import APIClient

ImageFactory = Callable[..., str]
CliRun = Callable[..., Any]
WriteManifest = Callable[..., Path]


def layers_size(api: APIClient) -> int:
    return int(api.df()["LayersSize"])


@pytest.mark.parametrize("remove_base", [True, False], ids=["with-base", "children-only"])
def test_freed_space_counts_layers_shared_only_by_removed_images(
    remove_base: bool,
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_manifest: WriteManifest,
    api: APIClient,
) -> None:
    base = image_factory("base:1", size_kb=1024, push=False, keep_local=True)
    image_factory("one:1", base=base, size_kb=256, push=False, keep_local=True)
    image_factory("two:1", base=base, size_kb=128, push=False, keep_local=True)
    absent = ["one", "two", *(["base"] if remove_base else [])]
    manifest = tmp_manifest(
        "version: 1\nimages:\n"
        + "".join(f"  - name: {namespace}/{name}\n    state: absent\n" for name in absent)
    )

    planning = run_cli("plan", manifest, "-o", "json")
    assert planning.code == 0, planning.stderr
    planned = json.loads(planning.stdout)
    predicted = planned["summary"]["bytes_to_free"]
    before = layers_size(api)
    applied = run_cli("apply", manifest, "-o", "json")
    assert applied.code == 0, applied.stdout + applied.stderr
    measured_by_us = json.loads(applied.stdout)["summary"]["bytes_freed_measured"]
    measured = before - layers_size(api)

    expected_kb = 256 + 128 + (1024 if remove_base else 0)
    assert abs(measured - expected_kb * 1024) <= 0.02 * expected_kb * 1024 + 4096
    assert abs(predicted - measured) <= 0.01 * measured
    assert measured_by_us == measured
