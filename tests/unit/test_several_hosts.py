"""A run over several daemons: up to --forks at once, each within its deadline, outcomes in the order given."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from reconciler.errors import DaemonUnavailable, ExitCode, HostTimedOut, Interrupted
from reconciler.flows import several_hosts
from reconciler.flows.outcomes import HostFailure
from reconciler.flows.several_hosts import for_each_host
from reconciler.flows.turn import HostRun, Turn


@dataclass(frozen=True)
class Done:
    host: str
    daemon: str | None


DAEMONS = {"unix:///a.sock": "engine ID A", "unix:///link.sock": "engine ID A", "tcp://b:2375": "engine ID B"}


def run(turn: Turn) -> Done:
    address = str(turn.address)
    if address not in DAEMONS:
        raise DaemonUnavailable(f"Cannot reach {address}.")
    return Done(address, DAEMONS[address])


def test_a_second_address_of_one_daemon_is_named_and_still_has_its_turn() -> None:
    said: list[str] = []
    hosts = ("unix:///a.sock", "tcp://b:2375", "unix:///gone.sock", "unix:///link.sock", "unix:///a.sock")
    outcomes = for_each_host(hosts, run, HostRun(forks=3), on_same_daemon=said.append)
    assert [o.host for o in outcomes] == list(hosts)
    assert isinstance(outcomes[2], HostFailure)
    assert said == [
        "unix:///link.sock is the same daemon as unix:///a.sock (engine ID A): it had a turn for each. "
        "Give each daemon once.",
        "unix:///a.sock was given twice (engine ID A): it had a turn for each. Give each daemon once.",
    ]


def test_daemons_not_identified_or_different_are_not_named() -> None:
    said: list[str] = []
    for_each_host(("unix:///a.sock", "tcp://b:2375"), run, on_same_daemon=said.append)
    for_each_host(("x", "y"), lambda turn: Done(str(turn.address), None), on_same_daemon=said.append)
    assert said == []


def test_at_most_forks_hosts_run_at_once_and_outcomes_keep_the_order_given() -> None:
    lock = threading.Lock()
    running = peak = 0

    def slow(turn: Turn) -> Done:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05 * (5 - turn.index % 5))  # later hosts end first
        with lock:
            running -= 1
        return Done(str(turn.address), None)

    hosts = [f"tcp://h{i}:2375" for i in range(10)]
    ended: list[int] = []
    outcomes = for_each_host(hosts, slow, HostRun(forks=3), on_outcome=lambda turn, o: ended.append(turn.index))
    assert peak == 3
    assert [o.host for o in outcomes] == hosts
    assert sorted(ended) == list(range(10)) and ended != list(range(10))


def test_a_hung_host_is_given_up_after_its_deadline_and_cannot_write_afterwards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(several_hosts, "ABANDON_GRACE", 0.2)
    release = threading.Event()
    written: list[str] = []

    def hangs_on_one(turn: Turn) -> Done:
        if turn.address == "tcp://hung:2375":
            release.wait(10)
            turn.while_live(lambda: written.append("late"))  # the thread wakes after it was given up
            return Done(str(turn.address), None)
        turn.while_live(lambda: written.append(str(turn.address)))
        return Done(str(turn.address), None)

    started = time.monotonic()
    outcomes = for_each_host(
        ["tcp://a:2375", "tcp://hung:2375", "tcp://b:2375"], hangs_on_one, HostRun(forks=2, host_timeout=0.3)
    )
    elapsed = time.monotonic() - started
    release.set()
    time.sleep(0.1)
    assert elapsed < 3
    assert isinstance(outcomes[1], HostFailure) and isinstance(outcomes[1].error, HostTimedOut)
    assert outcomes[1].code is ExitCode.DAEMON_UNAVAILABLE
    assert [o.host for o in outcomes if isinstance(o, Done)] == ["tcp://a:2375", "tcp://b:2375"]
    assert written == ["tcp://a:2375", "tcp://b:2375"]  # never "late"


def test_an_unexpected_error_is_that_hosts_failure_only() -> None:
    def breaks(turn: Turn) -> Done:
        if turn.index == 0:
            raise KeyError("boom")
        return Done(str(turn.address), None)

    outcomes = for_each_host(["x", "y"], breaks, HostRun(forks=2))
    assert isinstance(outcomes[0], HostFailure) and outcomes[0].code is ExitCode.UNEXPECTED
    assert isinstance(outcomes[1], Done)


def test_an_interrupted_run_starts_no_further_host() -> None:
    stop: list[int] = []

    def first_interrupts(turn: Turn) -> Done:
        stop.append(2)  # SIGINT
        return Done(str(turn.address), None)

    outcomes = for_each_host(["a", "b", "c"], first_interrupts, HostRun(forks=1, stopped=lambda: stop[0] if stop else None))
    assert isinstance(outcomes[0], Done)
    assert all(isinstance(o, HostFailure) and isinstance(o.error, Interrupted) for o in outcomes[1:])


def test_one_host_runs_here_and_its_error_ends_the_command() -> None:
    with pytest.raises(DaemonUnavailable):
        for_each_host(["unix:///gone.sock"], run, HostRun(host_timeout=5))
