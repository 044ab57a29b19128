"""A run over several daemons: each in turn, and an address that reaches a daemon already done is named."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.errors import DaemonUnavailable
from reconciler.flows.outcomes import HostFailure
from reconciler.flows.several_hosts import for_each_host


@dataclass(frozen=True)
class Turn:
    host: str
    daemon: str | None


DAEMONS = {"unix:///a.sock": "engine ID A", "unix:///link.sock": "engine ID A", "tcp://b:2375": "engine ID B"}


def run(address: str | None) -> Turn:
    assert address is not None
    if address not in DAEMONS:
        raise DaemonUnavailable(f"Cannot reach {address}.")
    return Turn(address, DAEMONS[address])


def test_a_second_address_of_one_daemon_is_named_and_still_has_its_turn() -> None:
    said: list[str] = []
    hosts = ("unix:///a.sock", "tcp://b:2375", "unix:///gone.sock", "unix:///link.sock", "unix:///a.sock")
    outcomes = for_each_host(hosts, run, on_same_daemon=said.append)
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
    for_each_host(("x", "y"), lambda address: Turn(str(address), None), on_same_daemon=said.append)
    assert said == []
