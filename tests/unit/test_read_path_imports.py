"""What each command loads: the commands that need no daemon load no daemon client, a
no-change plan on a unix socket reads the daemon without docker-py, requests or urllib3, and a
plan loads the modules of a feature (retention, builds and loads, saved plans, several hosts,
the other commands) only when its manifest or options use it."""

from __future__ import annotations

import importlib.util
import json
import os
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("docker", "requests", "urllib3", "jsonschema", "rich")
IMAGE = {
    "Id": "sha256:" + "a" * 64, "RepoTags": ["example.test/app:1"], "RepoDigests": [], "Created": 1_700_000_000,
    "Size": 10, "SharedSize": -1, "ParentId": "", "Labels": None, "Containers": -1,
}
ANSWERS = {
    "/version": {"ApiVersion": "1.41", "Version": "20.10.24", "Components": [{"Name": "Engine", "Version": "20.10.24"}]},
    "/v1.41/images/json": [IMAGE],
    "/v1.41/containers/json": [],
    "/v1.41/info": {"ID": "TEST:ID", "Name": "box", "DockerRootDir": "/var/lib/docker"},
}
MANIFEST = "version: 1\nimages:\n  - name: example.test/app\n    tags: ['1']\n"
PROBE = """
import json, sys
from reconciler.cli.commands import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
loaded = {m.split(".")[0] for m in sys.modules} & set(HEAVY_NAMES)
daemon = "reconciler.daemon.docker_engine" in sys.modules
modules = sorted(sys.modules)
print(json.dumps({"code": code, "loaded": sorted(loaded), "daemon_seam": daemon, "modules": modules}))
""".replace("HEAVY_NAMES", repr(HEAVY))
# What a no-change plan of MANIFEST (no retention:, build_cache: or source: build/load; one --host,
# no --out, no --explain) has no use for, by what needs it.
NOT_ON_A_PLAN = {
    "retention": (
        "reconciler.planning.retention", "reconciler.planning.retention_rules", "reconciler.planning.retention_rungs",
        "reconciler.planning.retention_steps", "reconciler.planning.retention_verdicts",
        "reconciler.planning.disk_budget", "reconciler.model.usage", "reconciler.state.usage_store",
        "reconciler.cli.explain", "sqlite3",
    ),
    "build and load": (
        "reconciler.daemon.local_builds", "reconciler.loading.build_context", "reconciler.flows.local_facts",
        "reconciler.planning.local_images", "reconciler.state.local_images", "reconciler.model.build_inputs",
    ),
    "build cache": (
        "reconciler.daemon.build_cache_records", "reconciler.planning.build_cache", "reconciler.model.build_cache",
    ),
    "podman": ("reconciler.daemon.podman_disk_usage", "reconciler.daemon.podman_events", "reconciler.daemon.registry_api"),
    "saved plans and the apply's lock": ("reconciler.state.plan_file", "reconciler.state.lock"),
    "several hosts": ("reconciler.flows.several_hosts",),
    "other commands": ("reconciler.cli.holds_commands", "reconciler.cli.report_commands", "reconciler.model.report"),
    "removals": ("reconciler.planning.freed_space", "reconciler.planning.sizing", "reconciler.state.layer_cache"),
    "standard library": ("shutil", "subprocess", "tempfile", "zipfile", "importlib.resources", "difflib", "getpass"),
}
COMMAND_MODULES = ("reconciler.cli.holds_commands", "reconciler.cli.report_commands")


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    block_on_close = False


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A unix socket answering the reads of a plan with one image; the paths asked, in order."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

        def address_string(self) -> str:
            return "unix"

        def do_GET(self) -> None:
            path = self.path.partition("?")[0]
            asked.append(path)
            status, answer = (200, ANSWERS[path]) if path in ANSWERS else (404, {"message": f"no {path} here"})
            body = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = _Server(str(tmp_path / "d.sock"), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"unix://{tmp_path}/d.sock", asked
    server.shutdown()
    server.server_close()


def _run(tmp_path: Path, *args: str, docker_host: str = "unix:///nonexistent.sock") -> dict[str, object]:
    env = {**os.environ, "DOCKER_HOST": docker_host, "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    env.pop("DOCKER_CONTEXT", None)
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, check=False,
                          cwd=tmp_path, timeout=60)
    assert done.stdout.strip(), done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _plan(tmp_path: Path, address: str, text: str, *more: str) -> dict[str, object]:
    """``plan`` of a manifest of ``text`` against the fake daemon at ``address``, in the probe."""
    manifest = tmp_path / "images.yaml"
    manifest.write_text(text)
    return _run(tmp_path, "plan", str(manifest), "--state-dir", str(tmp_path / "state"), *more, docker_host=address)


def test_a_no_change_plan_on_a_unix_socket_loads_no_docker_py_requests_or_rich(
    daemon: tuple[str, list[str]], tmp_path: Path
) -> None:
    address, asked = daemon
    result = _plan(tmp_path, address, MANIFEST)
    assert {key: result[key] for key in ("code", "loaded", "daemon_seam")} == {"code": 0, "loaded": [], "daemon_seam": True}
    assert asked[0] == "/version" and "/v1.41/images/json" in asked and "/v1.41/containers/json" in asked


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("schema",), ("validate", "images.yaml")])
def test_commands_without_a_daemon_load_no_daemon_client(args: tuple[str, ...], tmp_path: Path) -> None:
    (tmp_path / "images.yaml").write_text(MANIFEST)
    result = _run(tmp_path, *args)
    assert {key: result[key] for key in ("code", "loaded", "daemon_seam")} == {"code": 0, "loaded": [], "daemon_seam": False}


def test_a_pull_always_plan_without_a_docker_config_loads_no_docker_py_or_requests(
    daemon: tuple[str, list[str]], tmp_path: Path
) -> None:
    address, asked = daemon
    result = _plan(tmp_path, address, MANIFEST + "    pull: always\n")
    # No Docker config under HOME: no credentials to resolve, so docker-py is not loaded to look.
    assert {key: result[key] for key in ("code", "loaded", "daemon_seam")} == {"code": 0, "loaded": [], "daemon_seam": True}
    # The daemon names another host ("box"): it is asked for the digest itself.
    assert "/v1.41/distribution/example.test/app:1/json" in asked


def test_a_plan_of_a_manifest_an_earlier_run_loaded_imports_neither_pyyaml_nor_the_loading_passes(
    daemon: tuple[str, list[str]], tmp_path: Path
) -> None:
    address, _ = daemon
    first, second = (_plan(tmp_path, address, MANIFEST, "--output", "json") for _ in range(2))
    passes = {"yaml", "reconciler.loading.loader", "reconciler.loading.yaml_source", "reconciler.loading.schema_check"}
    assert (first["code"], second["code"]) == (0, 0)
    assert passes <= _modules(first)
    assert sorted(passes & _modules(second)) == []


@pytest.mark.parametrize("feature", NOT_ON_A_PLAN)
def test_a_no_change_plan_loads_no_module_of_a_feature_its_manifest_and_options_do_not_use(
    feature: str, daemon: tuple[str, list[str]], tmp_path: Path
) -> None:
    address, _ = daemon
    result = _plan(tmp_path, address, MANIFEST + "prune:\n  unlisted_tags: true\n  dangling: true\n")
    assert result["code"] == 0
    assert sorted(set(NOT_ON_A_PLAN[feature]) & _modules(result)) == []


@pytest.mark.parametrize("args", [("--version",), ("validate", "images.yaml"), ("schema",)], ids=lambda a: a[0])
def test_a_command_loads_no_module_of_the_other_commands(args: tuple[str, ...], tmp_path: Path) -> None:
    (tmp_path / "images.yaml").write_text(MANIFEST)
    result = _run(tmp_path, *args)
    assert result["code"] == 0
    mine = {"schema": "reconciler.cli.report_commands"}.get(args[0])
    others = set(COMMAND_MODULES) - {mine}
    assert sorted(others & _modules(result)) == []


def _modules(result: dict[str, object]) -> set[str]:
    modules = result["modules"]
    assert isinstance(modules, list)
    return {str(name) for name in modules}


def test_the_modules_named_here_exist() -> None:
    """A module renamed or moved would make the tests above pass without checking anything."""
    names = [name for names in NOT_ON_A_PLAN.values() for name in names]
    assert [name for name in names if importlib.util.find_spec(name) is None] == []
