"""Prometheus text-format metrics of a run: format, values, last success kept, atomic file."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from reconciler.model.plan import Action, Step
from reconciler.model.report import Outcome, Report, StepResult
from reconciler.state.atomic_file import write_atomically
from reconciler.state.metrics import (
    LAST_SUCCESS,
    MetricsRun,
    metrics_text,
    parse_metrics,
    read_last_success,
    run_metrics,
    update_metrics_file,
)

PULL = Step(action=Action.PULL, ref="nginx:latest", reason="missing")
REMOVE = Step(action=Action.REMOVE, ref="old:1", image_id="sha256:" + "ab" * 32, reason="absent", bytes=5000)
DONE = Report(results=(
    StepResult(PULL, Outcome.DONE, "pulled", bytes=7000),
    StepResult(REMOVE, Outcome.DONE, "removed", bytes=5000),
))
FAILED = Report(results=(StepResult(PULL, Outcome.FAILED, "registry down"),))

# One sample line of the exposition format: name, optional labels, a float.
SAMPLE_LINE = re.compile(r'[a-z_]+(\{([a-z_]+="[^"]*",?)+\})? -?[0-9.e+]+')


def test_every_line_is_help_type_or_a_sample_and_each_family_is_declared() -> None:
    text = metrics_text(run_metrics(DONE, finished=1_700_000_000.5, duration=2.25, previous_success=None))
    assert text.endswith("\n")
    families = set()
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            families.add(line.split()[2])
            continue
        assert SAMPLE_LINE.fullmatch(line), line
        assert line.split("{")[0].split()[0] in families, f"{line} has no HELP/TYPE before it"
    assert families == {
        "reconcile_last_run_steps", "reconcile_last_run_freed_bytes", "reconcile_last_run_pulled_bytes",
        "reconcile_run_duration_seconds", "reconcile_last_run_timestamp_seconds", LAST_SUCCESS,
    }


def test_values_of_a_successful_run() -> None:
    samples = parse_metrics(metrics_text(run_metrics(DONE, finished=1000.0, duration=2.25, previous_success=5.0)))
    assert samples[("reconcile_last_run_steps", (("action", "pull"), ("outcome", "done")))] == 1
    assert samples[("reconcile_last_run_steps", (("action", "remove"), ("outcome", "done")))] == 1
    assert samples[("reconcile_last_run_steps", (("action", "tag"), ("outcome", "failed")))] == 0
    assert samples[("reconcile_last_run_freed_bytes", ())] == 5000
    assert samples[("reconcile_last_run_pulled_bytes", ())] == 7000
    assert samples[("reconcile_run_duration_seconds", ())] == 2.25
    assert samples[("reconcile_last_run_timestamp_seconds", ())] == 1000.0
    assert samples[(LAST_SUCCESS, ())] == 1000.0


def test_a_run_that_did_not_succeed_keeps_the_last_success() -> None:
    failed = parse_metrics(metrics_text(run_metrics(FAILED, finished=2000.0, duration=1, previous_success=1000.0)))
    assert failed[(LAST_SUCCESS, ())] == 1000.0
    assert failed[("reconcile_last_run_timestamp_seconds", ())] == 2000.0
    assert failed[("reconcile_last_run_steps", (("action", "pull"), ("outcome", "failed")))] == 1
    aborted = parse_metrics(metrics_text(run_metrics(None, finished=2000.0, duration=1, previous_success=None)))
    assert aborted[(LAST_SUCCESS, ())] == 0  # no success ever: 0, so an age alert fires without absent()


def test_the_file_round_trip_keeps_the_last_success(tmp_path: Path) -> None:
    path = tmp_path / "reconcile.prom"
    assert read_last_success(path) is None
    update_metrics_file(path, DONE, duration=1.0, now=1000.0)
    update_metrics_file(path, FAILED, duration=1.0, now=2000.0)
    update_metrics_file(path, None, duration=1.0, now=3000.0)
    samples = parse_metrics(path.read_text())
    assert samples[(LAST_SUCCESS, ())] == 1000.0
    assert samples[("reconcile_last_run_timestamp_seconds", ())] == 3000.0
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reconcile.prom"]  # no temporary left


def test_metrics_run_times_the_run(tmp_path: Path) -> None:
    ticks = iter([10.0, 13.5])
    run = MetricsRun(tmp_path / "m.prom", monotonic=lambda: next(ticks), wall_clock=lambda: 500.0)
    run.finished(DONE)
    run.write()
    samples = parse_metrics((tmp_path / "m.prom").read_text())
    assert samples[("reconcile_run_duration_seconds", ())] == 3.5
    assert samples[(LAST_SUCCESS, ())] == 500.0


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.prom"
    path.write_text("old\n")

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        write_atomically(path, "new\n")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.prom"]


def test_parse_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_metrics("# HELP x y\nnot a sample line at all\n")


def test_several_hosts_each_carry_a_host_label_and_keep_their_own_last_success(tmp_path: Path) -> None:
    from reconciler.state.metrics import update_hosts_metrics_file

    path = tmp_path / "fleet.prom"
    update_hosts_metrics_file(path, [("build-1", DONE, 1.5), ("web-1", DONE, 2.0)], now=1000.0)
    update_hosts_metrics_file(path, [("build-1", FAILED, 1.0), ("web-1", None, 3.0)], now=2000.0)
    text = path.read_text()
    samples = parse_metrics(text)
    assert samples[(LAST_SUCCESS, (("host", "build-1"),))] == 1000.0
    assert samples[(LAST_SUCCESS, (("host", "web-1"),))] == 1000.0
    assert samples[("reconcile_last_run_timestamp_seconds", (("host", "web-1"),))] == 2000.0
    assert samples[("reconcile_run_duration_seconds", (("host", "web-1"),))] == 3.0
    assert text.count("# TYPE reconcile_last_run_steps gauge") == 1
    assert read_last_success(path, "build-1") == 1000.0
