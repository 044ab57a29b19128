"""A fleet of real daemons in one run: --forks at once, --host-timeout per host, an inventory, the summary.

Eight extra dockerds (``scripts/sandbox extra``) plus an address nothing listens on; one daemon
answers 500 through ``daemon_proxy``, one is stopped with SIGSTOP while it pulls and resumed after.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, Sandbox, StartCli
from daemon_proxy import DaemonProxy, Rule
from docker import APIClient
from extra_daemons import ExtraDaemon, extra_daemon_down, extra_daemon_up
from registry_proxy import RegistryProxy

CliRun = Callable[..., CliResult]
DAEMONS = 8


@pytest.fixture(scope="module")
def fleet(sandbox: Sandbox) -> Iterator[list[ExtraDaemon]]:
    """Eight extra dockerds, each with its own key (so its own identity), stopped after the module."""
    if os.geteuid() != 0:
        pytest.fail("Extra daemons need root, as `scripts/sandbox up` does.", pytrace=False)
    token = uuid.uuid4().hex[:6]
    names = [f"fleet-{token}-{index}" for index in range(DAEMONS)]
    started: list[str] = []
    try:
        daemons = []
        for name in names:
            started.append(name)
            daemons.append(extra_daemon_up(name))
        yield daemons
    finally:
        for name in started:
            with_pid(name, lambda pid: os.kill(pid, signal.SIGCONT))
            extra_daemon_down(name)


def with_pid(name: str, act: Callable[[int], None]) -> None:
    pid_file = Path(os.environ["RECONCILE_SANDBOX_DIR"]) / "extra" / name / "dockerd.pid"
    with contextlib.suppress(OSError, ValueError):  # the daemon is already gone
        act(int(pid_file.read_text().strip()))


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    """What a test opens (proxies) and wants closed when it ends, however it ends."""
    with contextlib.ExitStack() as opened:
        yield opened


@pytest.fixture
def refusing(tmp_path: Path) -> str:
    """A unix socket nothing listens on: connections are refused."""
    path = tmp_path / "refusing.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()
    return f"unix://{path}"


def images_on(daemon: ExtraDaemon) -> set[str]:
    client = APIClient(base_url=daemon.docker_host, timeout=30)
    try:
        return {tag for image in client.images() for tag in image.get("RepoTags") or ()}
    finally:
        client.close()


def wait_for_line(stream: Any, needle: str, timeout: float) -> list[str]:
    """Lines of ``stream`` read until one contains ``needle`` (the process keeps writing to the pipe)."""
    seen: list[str] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    pytest.fail(f"{needle!r} never came; read: {''.join(seen)}", pytrace=False)


def test_a_fleet_converges_around_a_refusing_a_failing_and_a_stopped_daemon(
    sandbox: Sandbox,
    fleet: list[ExtraDaemon],
    refusing: str,
    image_factory: Callable[..., str],
    namespace: str,
    tmp_path: Path,
    start_cli: StartCli,
    run_cli: CliRun,
    stack: contextlib.ExitStack,
) -> None:
    refs = [image_factory(f"app{index}:1") for index in range(3)]
    state_dir = tmp_path / "state"
    stopped = fleet[7]
    slow = stack.enter_context(RegistryProxy(sandbox.registry, delay=0.3))
    failing = stack.enter_context(
        DaemonProxy(fleet[6].docker_host, [Rule("GET", r".*", status=500), Rule("POST", r".*", status=500)])
    )
    manifest = tmp_path / "images.yaml"
    entries = "".join(f'  - name: {slow.address}/{ref.split("/", 1)[1].split(":")[0]}\n    tags: ["1"]\n' for ref in refs)
    manifest.write_text(f"version: 1\nimages:\n{entries}")
    hosts = {f"build-{i}": d.docker_host for i, d in enumerate(fleet[:6])}
    hosts |= {"failing": failing.address, "stopped": stopped.docker_host, "refusing": refusing}
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(
        "version: 1\nhosts:\n"
        + "".join(f"  {name}:\n    address: {address}\n" for name, address in hosts.items())
        + "groups:\n  build:\n    hosts: [" + ", ".join(n for n in hosts if n.startswith("build")) + "]\n"
        "    manifest: images.yaml\n  broken:\n    hosts: [failing, stopped, refusing]\n    manifest: images.yaml\n"
    )
    env = {"RECONCILE_STATE_DIR": str(state_dir)}
    started = time.monotonic()
    process = start_cli(
        "apply", "--inventory", inventory, "--forks", "10", "--host-timeout", "25", "--pull-timeout", "120",
        "--metrics-file", tmp_path / "fleet.prom", env=env,
    )
    assert process.stderr is not None and process.stdout is not None
    try:
        wait_for_line(process.stderr, "stopped: pulling", 60)
        with_pid(stopped.name, lambda pid: os.kill(pid, signal.SIGSTOP))
        out, err = process.communicate(timeout=90)
    finally:
        with_pid(stopped.name, lambda pid: os.kill(pid, signal.SIGCONT))
    elapsed = time.monotonic() - started

    # The run ends within the stopped host's deadline (25 s, and the grace after it), not at its resumption.
    assert elapsed < 60, (elapsed, err)
    assert process.returncode == 69, err
    rows = summary_rows(out)
    assert set(rows) == set(hosts)
    for index in range(6):
        assert rows[f"build-{index}"][:3] == ["converged", "3", "0"] and rows[f"build-{index}"][-1] == "0", out
        assert f"== build-{index} ({hosts[f'build-{index}']}) ==" in out
    assert rows["refusing"][0] == "unreachable" and rows["refusing"][-1] == "69"
    assert rows["failing"][-1] != "0" and "500 Server Error" in out + err
    assert rows["stopped"][-1] == "69"
    assert "9 hosts: 6 ok, 3 not; exit code 69." in out
    for daemon in fleet[:6]:
        assert images_on(daemon) >= {f"{slow.address}/{r.split('/', 1)[1]}" for r in refs}
    metrics = (tmp_path / "fleet.prom").read_text()
    assert 'reconcile_last_run_steps{host="build-0",action="pull",outcome="done"} 3' in metrics
    # Every progress line of a run over several hosts names its host.
    assert all(line.split(":", 1)[0] in hosts or line.startswith("Error: ") for line in err.splitlines() if line), err

    # Resumed, the stopped host converges on the next run; the others have nothing left to do.
    again = run_cli(
        "apply", "--inventory", inventory, "--limit", "all,!failing,!refusing", "--pull-timeout", "60", "-o", "json",
        env=env,
    )
    assert again.code == 0, again.stdout + again.stderr
    document = json.loads(again.stdout)
    assert document["exit_code"] == 0 and document["summary"]["failed_hosts"] == []
    by_name = {h["name"]: h for h in document["hosts"]}
    assert sorted(by_name) == sorted([*(f"build-{i}" for i in range(6)), "stopped"])
    assert all(h["exit_code"] == 0 for h in by_name.values())
    assert document["summary"]["results"].get("no changes") == 6
    assert images_on(stopped) >= {f"{slow.address}/{r.split('/', 1)[1]}" for r in refs}


def summary_rows(stdout: str) -> dict[str, list[str]]:
    """The summary table's rows: host name -> its other cells."""
    table = stdout[stdout.rindex("\nhost ") + 1:].splitlines()
    rows = {}
    for line in table[1:]:
        if not line or line[0].isspace() or " hosts: " in line:
            continue
        name, *cells = line.split()
        rows[name] = [c for c in cells if c not in ("kB", "B", "MB")]
    return rows


def test_a_daemon_stopped_mid_apply_costs_its_pull_timeout_not_a_minute_a_call(
    sandbox: Sandbox,
    fleet: list[ExtraDaemon],
    image_factory: Callable[..., str],
    tmp_path: Path,
    start_cli: StartCli,
    docker: Callable[..., Any],
) -> None:
    """One host, no --host-timeout: once a pull times out on a daemon that no longer answers, no
    further call waits on it (each used to wait docker-py's 60 s: the run took minutes)."""
    refs = [image_factory(f"solo{index}:1") for index in range(6)]
    old = image_factory("old:1")
    daemon = fleet[5]
    docker("pull", old, env={"DOCKER_HOST": daemon.docker_host})
    with RegistryProxy(sandbox.registry, delay=0.3) as slow:
        entries = "".join(f'  - name: {slow.address}/{r.split("/", 1)[1].split(":")[0]}\n    tags: ["1"]\n' for r in refs)
        entries += f"  - name: {old.rsplit(':', 1)[0]}\n    state: absent\n"  # a removal: its checks call the daemon
        manifest = tmp_path / "images.yaml"
        manifest.write_text(f"version: 1\nimages:\n{entries}")
        process = start_cli(
            "apply", manifest, "-H", daemon.docker_host, "--pull-timeout", "8", "--parallelism", "2",
            env={"RECONCILE_STATE_DIR": str(tmp_path / "state")},
        )
        assert process.stderr is not None
        try:
            wait_for_line(process.stderr, "pulling", 60)
            with_pid(daemon.name, lambda pid: os.kill(pid, signal.SIGSTOP))
            started = time.monotonic()
            out, err = process.communicate(timeout=300)
            elapsed = time.monotonic() - started
        finally:
            with_pid(daemon.name, lambda pid: os.kill(pid, signal.SIGCONT))
    assert elapsed < 40, (elapsed, out)
    assert process.returncode == 69, out + err
    assert "the daemon stopped answering" in out


def test_a_daemon_stopped_before_its_turn_costs_its_host_timeout(
    fleet: list[ExtraDaemon], tmp_path: Path, run_cli: CliRun
) -> None:
    manifest = tmp_path / "images.yaml"
    manifest.write_text("version: 1\n")
    stopped, good = fleet[4], fleet[3]
    with_pid(stopped.name, lambda pid: os.kill(pid, signal.SIGSTOP))
    try:
        started = time.monotonic()
        result = run_cli("plan", manifest, "-H", stopped.docker_host, "-H", good.docker_host, "--host-timeout", "4")
        elapsed = time.monotonic() - started
    finally:
        with_pid(stopped.name, lambda pid: os.kill(pid, signal.SIGCONT))
    assert result.code == 69, result.stdout + result.stderr
    assert elapsed < 20, elapsed
    assert "No changes." in result.stdout
    assert "--host-timeout 4s" in result.stdout + result.stderr
    rows = summary_rows(result.stdout)
    assert rows[stopped.docker_host][0] == "timed out" or rows[stopped.docker_host][:2] == ["timed", "out"]
    assert rows[good.docker_host][:2] == ["no", "changes"]
