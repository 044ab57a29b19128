"""The Dockerfile's image, built offline on the sandbox's Debian base (``scripts/sandbox base-image``)
and run as on a fleet host: the daemon's socket, the manifest, the state and lock directories mounted."""

from __future__ import annotations

import fcntl
import json
import subprocess
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import REPO_ROOT, DockerRun, Sandbox
from docker import APIClient
from extra_daemons import SANDBOX_SCRIPT

# A cold base image (debootstrap from Debian's mirror) took 2.5 minutes here; the script's own
# timeout (RECONCILE_SANDBOX_BASE_TIMEOUT, 600 s) ends a debootstrap that hangs.
BASE_IMAGE_TIMEOUT = 700


@pytest.fixture(scope="module")
def reconcile_image(sandbox: Sandbox, docker: DockerRun) -> Iterator[str]:
    made = subprocess.run(
        ["bash", SANDBOX_SCRIPT, "base-image"],
        capture_output=True,
        text=True,
        timeout=BASE_IMAGE_TIMEOUT,
        check=False,
    )
    if made.returncode != 0:
        pytest.fail(f"`scripts/sandbox base-image` failed:\n{made.stderr}", pytrace=False)
    base = made.stdout.strip()
    name = f"reconciler-test-{uuid.uuid4().hex[:8]}:dev"
    # The sandbox daemon has no network (--bridge=none): the build must need none.
    docker("build", "-q", "--build-arg", f"BASE={base}", "-t", name, REPO_ROOT,
           env={"DOCKER_BUILDKIT": "0"}, timeout=300)
    yield name
    docker("image", "rm", name, check=False)


def test_the_container_applies_records_its_state_and_shares_the_host_lock(
    sandbox: Sandbox,
    reconcile_image: str,
    namespace: str,
    image_factory: Callable[..., str],
    docker: DockerRun,
    api: APIClient,
    tmp_path: Path,
) -> None:
    app = image_factory("app:1")
    old = image_factory("old:1", keep_local=True)
    config, state, locks = (tmp_path / d for d in ("config", "state", "lock"))
    for directory in (config, state, locks):
        directory.mkdir()
    (config / "images.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        images:
          - name: {namespace}/app
            tags: ["1"]
          - name: {namespace}/old
            state: absent
    """))
    socket = sandbox.docker_host.removeprefix("unix://")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return docker(
            "run", "--rm", "--init", "--network", "none",
            "-v", f"{socket}:/var/run/docker.sock",
            "-v", f"{config}:/etc/reconciler:ro",
            "-v", f"{state}:/var/lib/reconciler",
            "-v", f"{locks}:/run/lock",
            reconcile_image, *args, check=False, timeout=300,
        )  # fmt: skip

    applied = run("apply", "/etc/reconciler/images.yaml", "-o", "json")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    report = json.loads(applied.stdout)
    assert [(s["action"], s["ref"], s["outcome"]) for s in report["steps"]] == [
        ("pull", app, "done"),
        ("remove", old, "done"),
    ]
    assert api.inspect_image(app)["Id"]
    assert (state / "history.sqlite3").is_file()  # the history outlives the container

    planned = run("plan", "/etc/reconciler/images.yaml", "--detailed-exitcode")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "No changes." in planned.stdout

    # The lock the container took is a file of the mounted lock directory: while a process of
    # the host holds it, the container's apply is refused with exit 75.
    (lock_file,) = locks.glob("reconcile-*.lock")
    with lock_file.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        refused = run("apply", "/etc/reconciler/images.yaml")
    assert refused.returncode == 75, refused.stdout + refused.stderr
    assert "lock" in refused.stderr
