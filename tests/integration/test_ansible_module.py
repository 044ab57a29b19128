"""The Ansible module (ansible_collections/reconciler/reconciler) driven by ansible-playbook, as a
fleet's controller runs it: inventory hosts with ``connection: local``, each its own daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, DockerRun, Sandbox
from docker import APIClient
from extra_daemons import ExtraDaemon, extra_daemon_down, extra_daemon_up

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

PLAYBOOK = """\
- hosts: docker_hosts
  connection: local
  gather_facts: false
  tasks:
    - name: Converge the host's images
      reconciler.reconciler.reconcile:
        manifest: "{{ manifest }}"
        docker_host: "{{ docker_host }}"
        state_dir: "{{ state_root }}/{{ inventory_hostname }}"
        executable: "{{ reconcile_executable }}"
      register: outcome
      ignore_errors: true
    - name: Keep what the module returned
      check_mode: false
      ansible.builtin.copy:
        content: "{{ outcome | to_json }}"
        dest: "{{ results_dir }}/{{ inventory_hostname }}.json"
"""


@pytest.fixture(scope="module")
def two_daemons() -> Iterator[list[ExtraDaemon]]:
    token = uuid.uuid4().hex[:6]
    started: list[str] = []
    try:
        daemons = []
        for suffix in ("a", "b"):
            started.append(f"ans-{token}-{suffix}")
            daemons.append(extra_daemon_up(started[-1]))
        yield daemons
    finally:
        for name in started:
            extra_daemon_down(name)


def test_a_playbook_plans_converges_and_then_changes_nothing_while_a_dead_host_fails(
    sandbox: Sandbox,
    namespace: str,
    image_factory: Callable[..., str],
    docker: DockerRun,
    two_daemons: list[ExtraDaemon],
    tmp_path: Path,
) -> None:
    app = image_factory("app:1")
    old = image_factory("old:1")
    hosts = {"main": sandbox.docker_host, **{d.name: d.docker_host for d in two_daemons}}
    for address in hosts.values():
        docker("-H", address, "pull", old)
    hosts["dead"] = f"unix://{tmp_path}/absent.sock"
    manifest = tmp_path / "images.yaml"
    manifest.write_text(textwrap.dedent(f"""\
        version: 1
        images:
          - name: {namespace}/app
            tags: ["1"]
            aliases: ["{namespace}/app:stable"]
          - name: {namespace}/old
            state: absent
    """))
    run = _playbook_runner(tmp_path, manifest, hosts)

    checked = run("--check", "--diff")
    assert "+ pull   " + app in checked.stdout  # the plan, as the diff
    for name in ("main", *[d.name for d in two_daemons]):
        result = checked.results[name]
        assert result["changed"] is True and not result.get("failed"), result
        (run_of,) = result["manifests"]
        assert run_of["rc"] == 2 and run_of["plan"]["summary"]["pull"] == 1
        assert [s["action"] for s in run_of["plan"]["steps"]] == ["pull", "tag", "remove"]
    for address in hosts.values():
        if address != hosts["dead"]:  # check mode changed nothing
            assert _refs(address, namespace) == {old}

    applied = run()
    for name, address in hosts.items():
        result = applied.results[name]
        if name == "dead":
            assert result["failed"] is True and result["rc"] == 69, result
            assert "exited 69" in result["msg"] and "absent.sock" in result["msg"]
            assert result["manifests"][0]["report"] is None
            continue
        assert result["changed"] is True and not result.get("failed"), result
        report = result["manifests"][0]["report"]
        assert {s["outcome"] for s in report["steps"]} == {"done"}
        assert _refs(address, namespace) == {app, f"{namespace}/app:stable"}

    again = run()
    rechecked = run("--check")
    for outcome in (again, rechecked):
        for name in hosts:
            result = outcome.results[name]
            assert result["failed"] is (name == "dead"), result
            assert result["changed"] is False, result


class PlaybookRun:
    def __init__(self, stdout: str, results: dict[str, dict[str, Any]]) -> None:
        self.stdout = stdout
        self.results = results


def _playbook_runner(tmp_path: Path, manifest: Path, hosts: dict[str, str]) -> Callable[..., PlaybookRun]:
    # One executable that runs this checkout's reconcile, as the module wants a command.
    executable = tmp_path / "reconcile"
    executable.write_text(
        f'#!/bin/sh\nPYTHONPATH={REPO_ROOT} exec {sys.executable} -m reconciler "$@"\n'
    )
    executable.chmod(0o755)
    results_dir = tmp_path / "results"
    inventory = {
        "all": {
            "vars": {
                "ansible_python_interpreter": sys.executable,
                "manifest": str(manifest),
                "state_root": str(tmp_path / "state"),
                "results_dir": str(results_dir),
                "reconcile_executable": str(executable),
            },
            "children": {
                "docker_hosts": {"hosts": {n: {"docker_host": a} for n, a in hosts.items()}}
            },
        }
    }
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "DOCKER_"))}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(REPO_ROOT),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOST_KEY_CHECKING="0",
    )

    def run(*options: str) -> PlaybookRun:
        results_dir.mkdir(exist_ok=True)
        for stale in results_dir.glob("*.json"):
            stale.unlink()
        completed = subprocess.run(
            [ANSIBLE_PLAYBOOK, "-i", tmp_path / "inventory.json", tmp_path / "site.yml", *options],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        results = {p.stem: json.loads(p.read_text()) for p in results_dir.glob("*.json")}
        assert set(results) == set(hosts), completed.stdout + completed.stderr
        return PlaybookRun(completed.stdout, results)

    return run


def _refs(address: str, namespace: str) -> set[str]:
    client = APIClient(base_url=address, timeout=30)
    try:
        images = client.images()
    finally:
        client.close()
    return {t for i in images for t in i.get("RepoTags") or () if t.startswith(namespace)}
