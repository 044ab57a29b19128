"""What goes to stdout and what to stderr: results on stdout, errors where errors go."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import CliRun

WriteManifest = Callable[..., Path]


def test_quiet_apply_puts_failures_and_an_incomplete_summary_on_stderr(
    run_cli: CliRun, tmp_manifest: WriteManifest, namespace: str
) -> None:
    manifest = tmp_manifest(f"version: 1\nimages:\n  - name: {namespace}/never-pushed\n    tags: ['1']\n")
    result = run_cli("apply", manifest, "-q")
    assert result.code == 3, result.stdout + result.stderr
    assert result.stdout == ""
    assert "failed  pull" in result.stderr
    assert "Apply incomplete: 0 done, 0 skipped, 1 failed." in result.stderr
