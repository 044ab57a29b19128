"""Which daemon, and errors about it, as the docker CLI has them: contexts made by the real
`docker context create`, a socket this user may not use, a state directory it may not write."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from conftest import (
    CliResult,
    CliRun,
    DockerRun,
    Sandbox,
    cli_env,
    skip_unless_others_can_run_this_checkout,
)

NOBODY = 65534
WriteManifest = Callable[..., Path]


def run_without_docker_host(sandbox: Sandbox, *args: str | os.PathLike[str], env: Mapping[str, str]) -> CliResult:
    """The CLI with no DOCKER_HOST at all, so that contexts decide, with ``env`` added."""
    child = {k: v for k, v in cli_env(sandbox).items() if k != "DOCKER_HOST"}
    child.update(env)
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", *(os.fspath(a) for a in args)],
        env=child, capture_output=True, text=True, timeout=120, check=False,
    )
    return CliResult(result.returncode, result.stdout, result.stderr)


@pytest.fixture
def docker_config(tmp_path: Path, sandbox: Sandbox, docker: DockerRun) -> Path:
    """A Docker config directory holding a context `sandbox`, made by `docker context create`."""
    config = tmp_path / "docker-config"
    config.mkdir()
    docker("context", "create", "sandbox", "--docker", f"host={sandbox.docker_host}", env={"DOCKER_CONFIG": str(config)})
    return config


def test_docker_contexts_choose_the_daemon_as_for_docker(
    sandbox: Sandbox, docker: DockerRun, docker_config: Path, tmp_manifest: WriteManifest, tmp_path: Path
) -> None:
    manifest = tmp_manifest("version: 1\n")
    config = {"DOCKER_CONFIG": str(docker_config)}
    on_sandbox = f"on {sandbox.docker_host}"
    elsewhere = f"unix://{tmp_path}/elsewhere.sock"

    by_flag = run_without_docker_host(sandbox, "plan", manifest, "--context", "sandbox", env=config)
    assert by_flag.code == 0, by_flag.stderr
    assert "No changes" in by_flag.stdout
    short = run_without_docker_host(sandbox, "plan", manifest, "-c", "sandbox", "-o", "json", env=config)
    assert short.code == 0 and f'"host": "{sandbox.docker_host}"' in short.stdout, short.stderr

    by_env = run_without_docker_host(sandbox, "export", env={**config, "DOCKER_CONTEXT": "sandbox"})
    assert by_env.code == 0 and f"# Images on {sandbox.docker_host} on" in by_env.stdout, by_env.stdout + by_env.stderr

    # Without a current context, the default is the usual socket ...
    default = run_without_docker_host(sandbox, "plan", manifest, env=config)
    assert "unix:///var/run/docker.sock" in default.stdout + default.stderr
    # ... and `docker context use` makes the context the current one, for reconcile as for docker.
    docker("context", "use", "sandbox", env=config)
    current = run_without_docker_host(sandbox, "plan", manifest, "-o", "json", env=config)
    assert current.code == 0 and f'"host": "{sandbox.docker_host}"' in current.stdout, current.stderr

    # DOCKER_HOST and -H win over the current context and DOCKER_CONTEXT; --context wins over DOCKER_HOST.
    overridden = run_without_docker_host(
        sandbox, "plan", manifest, env={**config, "DOCKER_HOST": elsewhere, "DOCKER_CONTEXT": "sandbox"}
    )
    assert overridden.code == 69 and elsewhere in overridden.stderr
    by_host = run_without_docker_host(sandbox, "plan", manifest, "-H", elsewhere, env=config)
    assert by_host.code == 69 and elsewhere in by_host.stderr
    flag_wins = run_without_docker_host(
        sandbox, "plan", manifest, "-c", "sandbox", "-o", "json", env={**config, "DOCKER_HOST": elsewhere}
    )
    assert flag_wins.code == 0 and f'"host": "{sandbox.docker_host}"' in flag_wins.stdout, flag_wins.stderr
    default_by_name = run_without_docker_host(sandbox, "plan", manifest, "-c", "default", env=config)
    assert "unix:///var/run/docker.sock" in default_by_name.stdout + default_by_name.stderr
    assert on_sandbox not in default_by_name.stdout

    both = run_without_docker_host(sandbox, "plan", manifest, "-c", "sandbox", "-H", elsewhere, env=config)
    assert both.code == 64 and "either --host or --context, not both" in both.stderr


def test_an_unknown_context_is_a_usage_error_where_docker_fails_too(
    sandbox: Sandbox, docker: DockerRun, docker_config: Path, tmp_manifest: WriteManifest
) -> None:
    manifest = tmp_manifest("version: 1\n")
    env = {"DOCKER_CONFIG": str(docker_config), "DOCKER_CONTEXT": "nosuch"}
    assert docker("image", "ls", env={**env, "DOCKER_HOST": ""}, check=False).returncode != 0
    for args in (("plan", manifest), ("apply", manifest), ("export",), ("watch", "--rounds", "1")):
        result = run_without_docker_host(sandbox, *args, env=env)
        assert result.code == 64, (args, result.stderr)
        assert "The Docker context 'nosuch' (from DOCKER_CONTEXT) does not exist" in result.stderr
        assert "docker context ls" in result.stderr
    flag = run_without_docker_host(sandbox, "plan", manifest, "--context", "nosuch", env={"DOCKER_CONFIG": str(docker_config)})
    assert flag.code == 64 and "'nosuch' (from --context)" in flag.stderr


def test_a_tls_context_hands_its_own_files_to_the_client(
    docker: DockerRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`docker context create` copies the TLS files into the config; the client is given those copies."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=box",
         "-keyout", certs / "key.pem", "-out", certs / "cert.pem"],
        check=True, capture_output=True,
    )
    shutil.copy(certs / "cert.pem", certs / "ca.pem")
    config = tmp_path / "docker-config"
    endpoint = f"host=tcp://box.invalid:2376,ca={certs}/ca.pem,cert={certs}/cert.pem,key={certs}/key.pem"
    docker("context", "create", "remote", "--docker", endpoint, env={"DOCKER_CONFIG": str(config)})
    from reconciler.daemon.address import client_options, resolve_target
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    address, context = resolve_target(None, "remote")
    assert address == "tcp://box.invalid:2376"
    tls = client_options(address, context=context)["tls"]
    stored = next((config / "contexts" / "tls").iterdir()) / "docker"
    assert tls.ca_cert == str(stored / "ca.pem") and tls.verify is True
    assert tls.cert == (str(stored / "cert.pem"), str(stored / "key.pem"))


def as_nobody(sandbox: Sandbox, *args: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> CliResult:
    """The CLI run as an unprivileged user (not in the socket's group), as a new user would run it."""
    skip_unless_others_can_run_this_checkout()
    child = cli_env(sandbox, {"HOME": "/nonexistent", **(env or {})})
    result = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         sys.executable, "-m", "reconciler", *(os.fspath(a) for a in args)],
        env=child, capture_output=True, text=True, timeout=120, check=False, cwd="/",
    )
    return CliResult(result.returncode, result.stdout, result.stderr)


def test_permission_denied_on_the_socket_says_what_to_do(sandbox: Sandbox, tmp_path: Path) -> None:
    manifest = Path("/tmp") / f"reconcile-nobody-{os.getpid()}.yaml"  # readable by nobody
    manifest.write_text("version: 1\n")
    try:
        result = as_nobody(sandbox, "plan", manifest, env={"RECONCILE_STATE_DIR": "/tmp"})
    finally:
        manifest.unlink()
    assert result.code == 69, result.stderr
    assert f"Permission denied while trying to connect to the Docker daemon socket at {sandbox.docker_host}" in result.stderr
    assert "`docker` group" in result.stderr and "rootless Docker" in result.stderr and "-H" in result.stderr
    assert "PermissionError" not in result.stderr and "Traceback" not in result.stderr


def test_an_unwritable_state_directory_is_a_usage_error(sandbox: Sandbox, tmp_path: Path) -> None:
    state = Path("/tmp") / f"reconcile-readonly-state-{os.getpid()}"
    state.mkdir(mode=0o755)
    manifest = state / "images.yaml"
    manifest.write_text("version: 1\n")
    try:
        # nobody cannot use the socket either: the state directory is refused first, before the daemon.
        result = as_nobody(sandbox, "apply", manifest, "--state-dir", state)
    finally:
        shutil.rmtree(state)
    assert result.code == 64, result.stderr
    assert f"The state directory {state} is not writable by this user" in result.stderr
    assert "--state-dir" in result.stderr


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("http://box", "it names no port; a daemon listens on tcp://box:2375, or tcp://box:2376 with TLS"),
        ("unix://", "unix:// names no socket; give its path"),
        ("ssh://", "ssh:// names no host"),
    ],
)
def test_unusable_addresses_are_usage_errors(
    address: str, words: str, run_cli: CliRun, tmp_manifest: WriteManifest
) -> None:
    manifest = tmp_manifest("version: 1\n")
    result = run_cli("plan", manifest, "-H", address)
    assert result.code == 64, result.stderr
    assert words in result.stderr


@pytest.mark.parametrize("daemon_option", [False, True], ids=["from-the-environment", "with--H"])
def test_a_plan_reads_each_list_of_the_daemon_once_whether_read_early_or_not(
    run_cli: CliRun, sandbox: Sandbox, tmp_path: Path, daemon_option: bool
) -> None:
    """Without -H the lists are asked for as the process starts; with it, once parsed. Once either way."""
    manifest = tmp_path / "images.yaml"
    manifest.write_text("version: 1\nimages:\n  - {name: reconcile-test/nothing-here, state: absent}\n")
    logged = sandbox.dockerd_log.stat().st_size
    args = ["-H", sandbox.docker_host] if daemon_option else []
    result = run_cli("plan", manifest, *args)
    assert result.code == 0, result.stdout + result.stderr
    calls = sandbox.dockerd_log.read_bytes()[logged:].decode(errors="replace")
    for endpoint in ("/images/json", "/containers/json", "/version"):
        assert calls.count(f"{endpoint}") == 1, (endpoint, calls)
