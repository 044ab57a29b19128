"""Daemons and registries at their edges, on the sandbox: a busy ``/system/df``, a registry too
slow to answer, a Docker config reconcile cannot use for ``pull: always``, and a daemon that
reports no layer sizes under a ``max_total`` budget.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from docker import APIClient
from docker.errors import NotFound
from docker_state import image_id

from tests.integration.conftest import CliResult, CliRun, DockerRun, ImageFactory, Sandbox
from tests.integration.daemon_proxy import DaemonProxy, Rule
from tests.integration.registry_proxy import RegistryProxy

ManifestWriter = Callable[..., Path]

DF_BUSY = "a disk usage operation is already running"
# The sandbox daemon may be shared: wait for another apply's lock rather than fail with exit 75.
WAIT_FOR_LOCK = ("--lock-timeout", "120")


def _no_crash(result: CliResult) -> None:
    """Neither a traceback (exit 1) nor the 'daemon unreachable' of exit 69."""
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text
    assert "Cannot reach the Docker daemon" not in text, text
    assert result.code not in (1, 69), text


# --- a second /system/df while an apply reads it --------------------------------------------------


@pytest.fixture
def slow_disk_usage(docker: DockerRun, image_factory: ImageFactory, tmp_path: Path) -> Iterator[None]:
    """A volume of many small files: dockerd walks it on every ``/system/df``, so each one takes
    a few hundred milliseconds and a second one, from another client, is all the likelier to
    arrive while the first runs (an empty sandbox answers in a few milliseconds)."""
    base = image_factory("df-base:1", push=False, keep_local=True)
    volume = f"reconcile-df-{uuid.uuid4().hex[:8]}"
    files = tmp_path / "files"
    files.mkdir()
    for number in range(8000):
        (files / f"f{number}").write_bytes(b"x")
    docker("volume", "create", volume)
    container = docker("create", "-v", f"{volume}:/data", base, "/none").stdout.strip()
    try:
        docker("cp", f"{files}/.", f"{container}:/data/")
        yield
    finally:
        docker("rm", "-f", container, check=False)
        docker("volume", "rm", "-f", volume, check=False)


def test_disk_usage_requests_of_other_clients_do_not_fail_an_apply(
    slow_disk_usage: None,
    docker: DockerRun,
    image_factory: ImageFactory,
    namespace: str,
    run_cli: CliRun,
    tmp_manifest: ManifestWriter,
    api: APIClient,
) -> None:
    # An apply that removes reads /system/df twice: sizing the plan (its figure is the one before the
    # removals, which follow at once) and after the removals.
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/gone
            state: absent
    """)
    stop = threading.Event()
    refused_others = []  # the loops' own `docker system df` that the daemon refused: proof of the race

    def df_loop() -> None:
        while not stop.is_set():
            result = docker("system", "df", check=False)
            if DF_BUSY in result.stderr:
                refused_others.append(result.stderr)

    loops = [threading.Thread(target=df_loop, daemon=True) for _ in range(3)]
    for loop in loops:
        loop.start()
    applied = []
    try:
        for round_ in range(4):
            ref = image_factory(f"gone:{round_}", push=False, keep_local=True)
            result = run_cli("apply", manifest, "-o", "json", *WAIT_FOR_LOCK, timeout=400)
            applied.append((ref, result))
            if result.code != 0:
                break
    finally:
        stop.set()
        for loop in loops:
            loop.join(timeout=60)
    for ref, result in applied:
        assert result.code == 0, result.stdout + result.stderr
        assert DF_BUSY not in result.stdout + result.stderr
        steps = [(s["action"], s["ref"], s["outcome"]) for s in json.loads(result.stdout)["steps"]]
        assert steps == [("remove", ref, "done")], steps
        assert image_id(api, ref) is None
    # The daemon did refuse concurrent requests meanwhile, so the applies met the race.
    assert refused_others, "no `docker system df` was refused: the race never happened"


# --- a registry that times out ------------------------------------------------------------


def test_a_registry_timeout_the_daemon_relays_is_retried(
    sandbox: Sandbox,
    image_factory: ImageFactory,
    namespace: str,
    run_cli: CliRun,
    tmp_manifest: ManifestWriter,
    docker: DockerRun,
    api: APIClient,
) -> None:
    ref = image_factory("slow:1")
    with RegistryProxy(sandbox.registry, hold_pings=1, hold_seconds=30) as proxy:
        proxied = ref.replace(sandbox.registry, proxy.address, 1)
        repository = proxied.rsplit(":", 1)[0]
        manifest = tmp_manifest(f"""
            version: 1
            images:
              - name: {repository}
                tags: ["1"]
        """)
        try:
            applied = run_cli("apply", manifest, "--pull-timeout", "50", *WAIT_FOR_LOCK, timeout=240)
        finally:
            if image_id(api, proxied) is not None:
                docker("image", "rm", proxied)
    # dockerd gives up on the held ping after 15 s ("context deadline exceeded", or "Client.Timeout
    # exceeded"): a transient failure, retried, and the second ping is answered.
    assert proxy.held == 1, "the registry's ping was never held"
    assert applied.code == 0, applied.stdout + applied.stderr
    assert f"done    pull   {proxied}: pulled" in applied.stdout, applied.stdout
    retried = re.search(rf"retrying {re.escape(proxied)} in \d+s: (.*)", applied.stderr)
    assert retried is not None, applied.stderr
    # Go words it either way, depending on where the deadline caught the request.
    assert re.search(r"context deadline exceeded|Client\.Timeout exceeded", retried.group(1)), applied.stderr


# --- pull: always with a Docker config reconcile cannot use -----------------------------------


def _auth_registry() -> tuple[str, str, str]:
    names = ("RECONCILE_SANDBOX_AUTH_REGISTRY", "RECONCILE_SANDBOX_AUTH_USER", "RECONCILE_SANDBOX_AUTH_PASSWORD")
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.skip(f"the sandbox's password-protected registry is not set up ({', '.join(missing)} missing)")
    return os.environ[names[0]], os.environ[names[1]], os.environ[names[2]]


def _config(kind: str, registries: list[str]) -> dict[str, Any]:
    if kind == "bad-auth":  # `auth` is not base64 of USER:PASSWORD
        return {"auths": {registry: {"auth": "not base64!"} for registry in registries}}
    # credsStore names a helper that is not installed (docker-credential-reconcile-missing)
    return {"credsStore": "reconcile-missing", "auths": {registry: {} for registry in registries}}


@pytest.mark.parametrize("kind", ["bad-auth", "missing-helper"])
def test_pull_always_with_an_unusable_docker_config_behaves_as_pulls_do(
    kind: str,
    sandbox: Sandbox,
    image_factory: ImageFactory,
    namespace: str,
    run_cli: CliRun,
    tmp_manifest: ManifestWriter,
    docker: DockerRun,
    api: APIClient,
    tmp_path: Path,
) -> None:
    registry, user, password = _auth_registry()
    open_ref = image_factory("open:1")
    local = image_factory("private:1", push=False, keep_local=True)
    private = f"{registry}/{local.split('/', 1)[1]}"
    login = tmp_path / "login"
    login.mkdir()
    docker("tag", local, private)
    try:
        # What `docker login` writes when no credential helper is configured.
        (login / "config.json").write_text(json.dumps({"auths": {registry: {"auth": _basic(user, password)}}}))
        docker("push", private, env={"DOCKER_CONFIG": str(login)})
        docker("image", "rm", private)
        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / "config.json").write_text(json.dumps(_config(kind, [sandbox.registry, registry])))
        env = {"DOCKER_CONFIG": str(broken)}
        open_manifest = tmp_manifest(f"""
            version: 1
            images:
              - name: {open_ref.rsplit(":", 1)[0]}
                tags: ["1"]
                pull: always
        """, name="open.yaml")

        # A registry that needs no credentials: the digest is read anonymously, as pulls go on without.
        planned = run_cli("plan", open_manifest, env=env)
        _no_crash(planned)
        assert planned.code == 0 and open_ref in planned.stdout, planned.stdout + planned.stderr
        applied = run_cli("apply", open_manifest, *WAIT_FOR_LOCK, env=env)
        _no_crash(applied)
        assert applied.code == 0, applied.stdout + applied.stderr
        assert image_id(api, open_ref) is not None
        again = run_cli("plan", open_manifest, "--detailed-exitcode", env=env)
        _no_crash(again)
        # The registry's digest was read (else pull: always re-pulls): nothing to do.
        assert again.code == 0 and "No changes" in again.stdout, again.stdout + again.stderr

        # A registry that wants credentials refuses the digest lookup and then the pull, which names the fix.
        private_manifest = tmp_manifest(f"""
            version: 1
            images:
              - name: {private.rsplit(":", 1)[0]}
                tags: ["1"]
                pull: always
        """, name="private.yaml")
        planned = run_cli("plan", private_manifest, env=env)
        _no_crash(planned)
        assert planned.code == 0 and private in planned.stdout, planned.stdout + planned.stderr
        refused = run_cli("apply", private_manifest, *WAIT_FOR_LOCK, env=env)
        _no_crash(refused)
        assert refused.code == 3, refused.stdout + refused.stderr
        if kind == "bad-auth":
            assert f"In the Docker config {broken / 'config.json'}, the `auths` entry for {registry} has" in (
                refused.stdout
            ), refused.stdout
        else:
            assert "docker-credential-reconcile-missing" in refused.stdout, refused.stdout
        assert image_id(api, private) is None

        # With the image on the host, pull: always still cannot read the registry's digest: it plans the pull.
        docker("pull", private, env={"DOCKER_CONFIG": str(login)})
        on_host = run_cli("plan", private_manifest, env=env)
        _no_crash(on_host)
        assert on_host.code == 0, on_host.stdout + on_host.stderr
        assert "the registry's digest could not be read" in on_host.stdout, on_host.stdout
        for result in (planned, refused, on_host):
            assert password not in result.stdout + result.stderr
    finally:
        for ref in (private, open_ref):
            with contextlib.suppress(NotFound):
                api.remove_image(ref)


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


# --- a daemon that reports no layer sizes ---------------------------------------------------------


def _no_layer_sizes(document: Any) -> Any:
    """``/system/df`` with no layer sizes (LayersSize 0), as Podman's Docker API answers it."""
    return {**document, "LayersSize": 0}


def test_a_max_total_budget_on_a_daemon_without_layer_sizes_is_refused(
    sandbox: Sandbox,
    image_factory: ImageFactory,
    namespace: str,
    run_cli: CliRun,
    tmp_manifest: ManifestWriter,
) -> None:
    kept = image_factory("sized:1", size_kb=256, push=False, keep_local=True)
    # 1 byte: any real measure is over it; protect keeps every image, so the real daemon plans nothing.
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {kept.rsplit(":", 1)[0]}
            tags: ["1"]
        retention:
          protect: ["**"]
          disk:
            max_total: 1B
    """)
    measured = run_cli("plan", manifest)
    assert measured.code == 0, measured.stdout + measured.stderr

    rewrite = Rule("GET", r"/v[\d.]+/system/df", rewrite=_no_layer_sizes)
    with DaemonProxy(sandbox.docker_host, [rewrite]) as proxy:
        refused = run_cli("plan", manifest, "-H", proxy.address)
        assert proxy.rewritten, "the proxy never rewrote /system/df"
        as_json = run_cli("plan", manifest, "-H", proxy.address, "-o", "json")
    text = refused.stdout + refused.stderr
    assert "No changes" not in refused.stdout, text
    assert refused.code == 64, text
    assert proxy.address in refused.stderr, text
    assert "0 bytes of layers" in refused.stderr and "max_total" in refused.stderr, text
    assert "Traceback" not in text
    assert as_json.code == 64, as_json.stdout + as_json.stderr
