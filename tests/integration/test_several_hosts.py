"""Several daemons in one run: each planned and applied in turn, one failing daemon not stopping the others."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from docker import APIClient
from extra_daemons import ExtraDaemon

CliRun = Callable[..., Any]


def test_each_daemon_gets_its_turn_and_the_worst_exit_code_wins(
    sandbox: Any,
    namespace: str,
    image_factory: Callable[..., str],
    run_cli: CliRun,
    tmp_manifest: Callable[..., Path],
    api: APIClient,
    tmp_path: Path,
) -> None:
    ref = image_factory("app:1")
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/app
            tags: ["1"]
    """)
    # The same sandbox daemon under a second spelling of its address, and a daemon that is not there.
    same_daemon = sandbox.docker_host.replace("/run/", "/run//")
    missing = f"unix://{tmp_path}/absent.sock"
    hosts = ["-H", sandbox.docker_host, "-H", missing, "-H", same_daemon]

    planned = run_cli("plan", manifest, *hosts, "-o", "json")
    assert planned.code == 69, planned.stderr
    documents = json.loads(planned.stdout)["hosts"]
    assert [d["host"] for d in documents] == [sandbox.docker_host, missing, same_daemon]
    assert [s["action"] for s in documents[0]["steps"]] == ["pull"]
    assert documents[1]["exit_code"] == 69 and "Cannot reach" in documents[1]["error"]

    applied = run_cli("apply", manifest, *hosts)
    assert applied.code == 69, applied.stdout + applied.stderr
    assert f"== {missing} ==" in applied.stdout
    assert "Apply complete: 1 done" in applied.stdout  # the first daemon
    assert "No changes." in applied.stdout  # the same daemon again: already in sync
    assert api.inspect_image(ref)["Id"]

    in_sync = run_cli("plan", manifest, "-H", sandbox.docker_host, "-H", same_daemon, "--detailed-exitcode")
    assert in_sync.code == 0, in_sync.stdout + in_sync.stderr


def test_a_saved_plan_or_an_export_takes_one_daemon(
    sandbox: Any, run_cli: CliRun, tmp_manifest: Callable[..., Path], tmp_path: Path
) -> None:
    manifest = tmp_manifest("version: 1\n")
    two = ["-H", sandbox.docker_host, "-H", sandbox.docker_host]
    assert run_cli("plan", manifest, *two, "--out", tmp_path / "plan.json").code == 64
    assert run_cli("export", *two).code == 64


def test_two_addresses_of_one_daemon_are_named_and_two_daemons_with_one_id_are_not(
    sandbox: Any,
    run_cli: CliRun,
    tmp_manifest: Callable[..., Path],
    tmp_path: Path,
    twin_daemons: tuple[ExtraDaemon, ExtraDaemon],
) -> None:
    manifest = tmp_manifest("version: 1\n")
    link = tmp_path / "same.sock"
    link.symlink_to(sandbox.docker_host.removeprefix("unix://"))
    for command in ("plan", "apply"):
        twice = run_cli(command, manifest, "-H", sandbox.docker_host, "-H", f"unix://{link}")
        assert twice.code == 0, twice.stdout + twice.stderr
        assert f"unix://{link} is the same daemon as {sandbox.docker_host}" in twice.stderr, twice.stderr

    first, second = twin_daemons
    assert first.info["ID"] == second.info["ID"]
    both = run_cli("plan", manifest, "-H", first.docker_host, "-H", second.docker_host)
    assert both.code == 0, both.stdout + both.stderr
    assert "same daemon" not in both.stderr
