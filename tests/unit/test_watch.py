"""reconcile watch on the fake daemon: rounds record usage facts; a daemon that goes away is waited for."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from reconciler.errors import DaemonUnavailable
from reconciler.flows import watch as watch_module
from reconciler.flows.watch import WatchOptions, watch_host
from reconciler.state.usage_store import read_usage

from ..fake_daemon import FakeDockerHost


def test_each_round_records_what_the_daemon_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = FakeDockerHost()
    image = host.add_image(["reg.local/app:1"])
    host.add_container(image, name="web")
    monkeypatch.setattr(watch_module, "connect", lambda address, context=None: host)
    rounds = watch_host(None, WatchOptions(state_dir=tmp_path, warn=print, interval=0.01, rounds=2), threading.Event())
    assert rounds == 2
    state = read_usage(tmp_path, host.address)
    assert image in state.last_used and image in state.arrived


def test_a_daemon_that_goes_away_is_warned_about_and_waited_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = FakeDockerHost()
    host.add_image(["reg.local/app:1"])
    answers: list[FakeDockerHost | DaemonUnavailable] = [DaemonUnavailable("Cannot reach the Docker daemon."), host]

    def connect(address: str | None, context: str | None = None) -> FakeDockerHost:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, DaemonUnavailable):
            raise answer
        return answer

    warnings: list[str] = []
    monkeypatch.setattr(watch_module, "connect", connect)
    options = WatchOptions(state_dir=tmp_path, warn=warnings.append, interval=0.01, rounds=1)
    assert watch_host(None, options, threading.Event()) == 1
    assert warnings and "Trying again" in warnings[0]


def test_a_stop_request_ends_it_before_another_round(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = FakeDockerHost()
    monkeypatch.setattr(watch_module, "connect", lambda address, context=None: host)
    stop = threading.Event()
    stop.set()
    assert watch_host(None, WatchOptions(state_dir=tmp_path, warn=print, interval=0.01), stop) == 0
