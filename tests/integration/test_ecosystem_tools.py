"""What reconcile writes, checked by the tools that read it: promtool for the metrics file."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CliRun

from reconciler.state.metrics import LAST_SUCCESS, parse_metrics

WriteManifest = Callable[..., Path]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: `scripts/sandbox up` installs Debian's prometheus package.", pytrace=False)
    return found


def test_the_metrics_file_passes_promtool_from_the_first_failed_run(
    run_cli: CliRun, tmp_manifest: WriteManifest, namespace: str, tmp_path: Path
) -> None:
    metrics = tmp_path / "reconcile.prom"
    manifest = tmp_manifest(f"version: 1\nimages:\n  - name: {namespace}/never-pushed\n    tags: ['1']\n")
    failed = run_cli("apply", manifest, "--metrics-file", metrics)
    assert failed.code == 3, failed.stderr
    # No success yet: the timestamp is there, as 0, so `time() - LAST_SUCCESS > N` alerts without absent().
    assert parse_metrics(metrics.read_text())[(LAST_SUCCESS, ())] == 0
    checked = subprocess.run([promtool(), "check", "metrics"], input=metrics.read_text(), capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""
