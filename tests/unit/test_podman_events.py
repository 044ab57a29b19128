"""Podman's event window: asked without `until` from the whole second before, cut here."""

from __future__ import annotations

from reconciler.daemon.podman_events import podman_event_params, within
from reconciler.model.inventory import DaemonEvent


def _at(when: float) -> DaemonEvent:
    return DaemonEvent("image", "tag", "i" * 64, {}, when)


def test_the_window_is_asked_from_the_whole_second_before_and_never_with_until() -> None:
    assert podman_event_params(1_700_000_000.25) == {"since": "1699999999", "stream": "false"}
    assert podman_event_params(0.5) == {"since": "0", "stream": "false"}


def test_the_answer_is_cut_to_the_window_oldest_first() -> None:
    found = within([_at(12.0), _at(9.9), _at(10.0), _at(11.5), _at(12.01)], 10.0, 12.0)
    assert [e.time for e in found] == [10.0, 11.5, 12.0]
