"""The reads a plan starts as the process starts: for which command lines, and when they are taken."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.cli.entry import reads_early
from reconciler.flows import prefetch


@pytest.mark.parametrize(
    ("args", "early"),
    [
        (["plan", "images.yaml"], True),
        (["plan", "images.yaml", "-o", "json", "--detailed-exitcode", "-q"], True),
        (["plan", "-", "--state-dir", "/var/lib/reconcile"], True),
        (["plan", "--", "-H"], True),  # a file named -H
        (["apply", "images.yaml"], False),  # apply reads under the daemon's lock, never before it
        (["validate", "images.yaml"], False),
        ([], False),
        (["plan", "images.yaml", "-H", "tcp://b:2375"], False),
        (["plan", "images.yaml", "--host=ssh://b"], False),
        (["plan", "images.yaml", "-qH", "tcp://b:2375"], False),  # a short-option cluster
        (["plan", "images.yaml", "-c", "prod"], False),
        (["plan", "images.yaml", "--context", "prod"], False),
        (["plan", "images.yaml", "-i", "hosts.yaml"], False),
        (["plan", "images.yaml", "--limit", "web"], False),
        (["plan", "images.yaml", "--host-timeout", "5"], False),
        (["plan", "--help"], False),
        (["plan", "-h"], False),
    ],
)
def test_a_plan_reads_early_only_when_no_option_picks_the_daemon_its_deadline_or_help(
    args: list[str], early: bool
) -> None:
    assert reads_early(args) is early


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Each start of reads, by its settings; a plain object stands for the reads."""
    calls: list[tuple[Any, ...]] = []

    def fake(*settings: Any) -> Any:
        calls.append(settings)
        return object()

    monkeypatch.setattr(prefetch, "_started", fake)
    monkeypatch.setattr(prefetch, "_early", {})
    return calls


def test_the_early_reads_are_taken_once_by_a_command_line_that_asks_for_the_same_daemon(
    started: list[tuple[Any, ...]],
) -> None:
    prefetch.start_early(1800.0)
    early = prefetch._early[(None, 1800.0, None, None)]
    assert prefetch.start_prefetch(None, 1800.0, None, None) is early
    assert len(started) == 1  # no second read of the daemon
    again = prefetch.start_prefetch(None, 1800.0, None, None)
    assert again is not early and len(started) == 2  # given out once: a later ask reads again


@pytest.mark.parametrize(
    "settings",
    [("tcp://b:2375", 1800.0, None, None), (None, 5.0, None, None), (None, 1800.0, None, "prod")],
    ids=["another-host", "another-host-timeout", "a-context"],
)
def test_the_early_reads_are_left_unread_when_the_command_line_asks_for_something_else(
    started: list[tuple[Any, ...]], settings: tuple[Any, ...]
) -> None:
    prefetch.start_early(1800.0)
    early = prefetch._early[(None, 1800.0, None, None)]
    taken = prefetch.start_prefetch(*settings)
    assert taken is not early
    assert started[-1] == settings
    assert prefetch._early == {}
