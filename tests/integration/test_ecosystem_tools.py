"""What reconcile writes, checked by the tools that read it: promtool for the metrics file,
systemd-analyze for the example units."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CliRun, Sandbox, cli_env, skip_unless_others_can_run_this_checkout
from daemon_proxy import DaemonProxy

from reconciler.state.metrics import LAST_SUCCESS, parse_metrics

WriteManifest = Callable[..., Path]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: `scripts/sandbox up` installs Debian's prometheus package.", pytrace=False)
    return found


def test_the_metrics_file_passes_promtool_from_the_first_failed_run(
    run_cli: CliRun, tmp_manifest: WriteManifest, namespace: str, tmp_path: Path
) -> None:
    metrics = tmp_path / "reconcile.prom"
    manifest = tmp_manifest(f"version: 1\nimages:\n  - name: {namespace}/never-pushed\n    tags: ['1']\n")
    failed = run_cli("apply", manifest, "--metrics-file", metrics)
    assert failed.code == 3, failed.stderr
    # No success yet: the timestamp is there, as 0, so `time() - LAST_SUCCESS > N` alerts without absent().
    assert parse_metrics(metrics.read_text())[(LAST_SUCCESS, ())] == 0
    checked = subprocess.run([promtool(), "check", "metrics"], input=metrics.read_text(), capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def installed_unit(name: str, directory: Path) -> Path:
    """The example unit as installed: its ExecStart pointing at this checkout's reconcile."""
    reconcile = Path(sys.executable).parent / "reconcile"
    if not reconcile.exists():
        pytest.fail(f"no {reconcile}: `make venv` installs the command", pytrace=False)
    text = (EXAMPLES / name).read_text(encoding="utf-8").replace("/usr/local/bin/reconcile", str(reconcile))
    unit = directory / name
    unit.write_text(text, encoding="utf-8")
    return unit


@pytest.mark.parametrize("name", ["reconcile-apply.service", "reconcile-watch.service"])
def test_the_example_units_verify_and_are_hardened(name: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing (Debian's systemd package)", pytrace=False)
    unit = installed_unit(name, tmp_path)
    if name == "reconcile-apply.service":
        shutil.copy(EXAMPLES / "reconcile-apply.timer", tmp_path)
    verified = subprocess.run([analyze, "verify", unit], capture_output=True, text=True)
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr
    security = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=20", unit], capture_output=True, text=True
    )
    assert security.returncode == 0, security.stdout + security.stderr
    exposure = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert exposure is not None and float(exposure.group(1)) <= 2.0, security.stdout


def test_the_units_user_reaches_the_socket_through_the_docker_group(
    run_cli: CliRun, tmp_manifest: WriteManifest, sandbox: Sandbox
) -> None:
    """What the hardened unit keeps: no root, no capability, only the docker group; enough for the socket."""
    text = (EXAMPLES / "reconcile-apply.service").read_text(encoding="utf-8")
    assert "DynamicUser=yes" in text and "SupplementaryGroups=docker" in text and "AF_UNIX" in text
    assert "PrivateUsers=" not in text and "PrivateNetwork=" not in text  # either would cut it off the socket
    skip_unless_others_can_run_this_checkout()
    group = Path(sandbox.docker_host.removeprefix("unix://")).stat().st_gid  # the sandbox socket's group
    state = Path("/tmp") / f"reconcile-unit-state-{os.getpid()}"
    state.mkdir()
    state.chmod(0o777)
    manifest = state / "images.yaml"
    manifest.write_text("version: 1\n")
    # A socket as dockerd makes one (root:docker, 0660) in a directory anyone may enter.
    with DaemonProxy(sandbox.docker_host) as proxy:
        proxy.socket_path.parent.chmod(0o755)
        os.chown(proxy.socket_path, 0, group)
        proxy.socket_path.chmod(0o660)

        def as_unit_user(*groups: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["setpriv", "--reuid=65534", "--regid=65534", *groups, "--inh-caps=-all", "--bounding-set=-all",
                 "--no-new-privs", sys.executable, "-m", "reconciler", "apply", manifest, "--quiet",
                 "--lock-timeout", "300", "--state-dir", state / "state", "-H", proxy.address],
                env=cli_env(sandbox, {"HOME": "/nonexistent", "RECONCILE_LOCK_DIR": str(state)}),
                capture_output=True, text=True, timeout=120, cwd="/",
            )

        try:
            member = as_unit_user(f"--groups={group}")
            outsider = as_unit_user("--clear-groups")
        finally:
            shutil.rmtree(state)
    assert member.returncode == 0, member.stderr
    assert member.stdout.startswith("No changes.")
    assert outsider.returncode == 69 and "Permission denied while trying to connect" in outsider.stderr
