"""Fixtures for tests against the sandbox's real dockerd and registry (scripts/sandbox).

Every test under tests/integration is marked ``integration``. Without the sandbox's
environment the tests are skipped, or fail when RECONCILE_REQUIRE_SANDBOX=1 (as in
``make test``). Each test builds its images under its own ``namespace`` and the
``image_factory`` fixture removes what was made there. ``twin_daemons`` starts two more
dockerds that share one key file (``scripts/sandbox extra``) and stops them after the module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from docker import APIClient
from docker.errors import APIError, DockerException, NotFound
from extra_daemons import ExtraDaemon, extra_daemon_down, extra_daemon_up

REPO_ROOT = Path(__file__).resolve().parents[2]
INTEGRATION_DIR = Path(__file__).resolve().parent

SANDBOX_ENV_VARS = (
    "DOCKER_HOST",
    "RECONCILE_SANDBOX_REGISTRY",
    "RECONCILE_SANDBOX_DIR",
    "RECONCILE_SANDBOX_DOCKERD_LOG",
)
HOW_TO_START = "run `make test` or `eval $(scripts/sandbox env)`"

# Variables that would send the docker CLI or docker-py somewhere other than DOCKER_HOST.
_FOREIGN_DOCKER_VARS = ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)


@dataclasses.dataclass(frozen=True)
class Sandbox:
    """Where the sandbox daemon and registry answer."""

    docker_host: str
    registry: str
    dockerd_log: Path


@dataclasses.dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


class DockerCliError(subprocess.CalledProcessError):
    """A docker CLI command failed; unlike CalledProcessError, str() includes stderr."""

    def __str__(self) -> str:
        command = " ".join(self.cmd[1:])
        return f"`docker {command}` exited with {self.returncode}: {(self.stderr or '').strip()}"


DockerRun = Callable[..., "subprocess.CompletedProcess[str]"]
CliRun = Callable[..., CliResult]


def _sandbox_from_env(environ: Mapping[str, str]) -> Sandbox:
    missing = [name for name in SANDBOX_ENV_VARS if not environ.get(name)]
    if missing:
        message = (
            f"The sandbox environment is not set ({', '.join(missing)} missing): {HOW_TO_START}."
        )
        if environ.get("RECONCILE_REQUIRE_SANDBOX") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    docker_host = environ["DOCKER_HOST"]
    sandbox_dir = Path(environ["RECONCILE_SANDBOX_DIR"])
    # These tests create and delete images: never let them loose on another daemon.
    socket = Path(docker_host.removeprefix("unix://"))
    if not docker_host.startswith("unix://") or sandbox_dir not in socket.parents:
        pytest.fail(
            f"DOCKER_HOST={docker_host} is not the sandbox's socket under {sandbox_dir}; "
            f"refusing to run integration tests against it: {HOW_TO_START}.",
            pytrace=False,
        )
    return Sandbox(
        docker_host=docker_host,
        registry=environ["RECONCILE_SANDBOX_REGISTRY"],
        dockerd_log=Path(environ["RECONCILE_SANDBOX_DOCKERD_LOG"]),
    )


def _child_env(sandbox: Sandbox, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_DOCKER_VARS}
    env["DOCKER_HOST"] = sandbox.docker_host
    env.update(extra or {})
    return env


def _docker_cli() -> str:
    # Debian's client matches the sandbox daemon; a newer client elsewhere may not.
    if os.access("/usr/bin/docker", os.X_OK):
        return "/usr/bin/docker"
    found = shutil.which("docker")
    if found is None:
        pytest.fail("No docker CLI found; `scripts/sandbox up` installs it.", pytrace=False)
    return found


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    """The running sandbox, from the variables `scripts/sandbox env` prints."""
    found = _sandbox_from_env(os.environ)
    try:
        client = APIClient(base_url=found.docker_host, timeout=10)
        client.close()
    except DockerException as exc:
        pytest.fail(
            f"The sandbox daemon at {found.docker_host} does not answer ({exc}); "
            "run `scripts/sandbox up`.",
            pytrace=False,
        )
    return found


@pytest.fixture(autouse=True)
def _needs_sandbox(sandbox: Sandbox) -> None:
    """Skips (or fails) every integration test when the sandbox is not there."""


@pytest.fixture(scope="session")
def docker(sandbox: Sandbox) -> DockerRun:
    """``docker(*args, check=True, env=None, timeout=120)``: the docker CLI on the sandbox.

    Returns the CompletedProcess (text output); raises DockerCliError, which carries the
    command's stderr, when it fails, unless ``check=False``.
    """
    executable = _docker_cli()

    def run(
        *args: str | os.PathLike[str],
        check: bool = True,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        argv = [executable, *(os.fspath(arg) for arg in args)]
        result = subprocess.run(
            argv,
            env=_child_env(sandbox, env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise DockerCliError(result.returncode, argv, result.stdout, result.stderr)
        return result

    return run


@pytest.fixture(scope="session")
def api(sandbox: Sandbox) -> Iterator[APIClient]:
    """A low-level docker-py client on the sandbox daemon, for assertions."""
    client = APIClient(base_url=sandbox.docker_host)
    yield client
    client.close()


@pytest.fixture
def run_cli(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> CliRun:
    """``run_cli(*args, env=None, cwd=None, input=None, timeout=300)`` runs the CLI
    (``python -m reconciler``) as a user would, against the sandbox daemon (in a test that
    takes the ``engine`` fixture, against that engine).

    ``REGISTRY`` is set to the sandbox registry and ``RECONCILE_STATE_DIR`` to a directory of
    this test's own (history, lock), unless ``env`` says otherwise.
    """
    state_dir = tmp_path_factory.mktemp("state")
    engine_host = _engine_host(request)

    def run(
        *args: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        input: str | None = None,
        timeout: float = 300,
    ) -> CliResult:
        child_env = _child_env(sandbox, {"REGISTRY": sandbox.registry, "RECONCILE_STATE_DIR": str(state_dir)})
        child_env.update(engine_host)
        # The checkout under test, wherever the test runs.
        child_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
        )
        child_env.update(env or {})
        result = subprocess.run(
            [sys.executable, "-m", "reconciler", *(os.fspath(arg) for arg in args)],
            env=child_env,
            cwd=cwd,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CliResult(code=result.returncode, stdout=result.stdout, stderr=result.stderr)

    return run


def cli_env(sandbox: Sandbox, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment the CLI runs in for a test: the sandbox daemon, this checkout importable."""
    env = _child_env(sandbox, {"REGISTRY": sandbox.registry})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


def skip_unless_others_can_run_this_checkout() -> None:
    """Skip a test that runs the CLI as another user (nobody) when that user cannot reach this
    checkout: a clone under a directory only its owner may enter (``mktemp -d`` makes one 0700)
    would fail such a test with "No module named reconciler", not with what it checks."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the CLI as another user")
    closed = [p for p in (REPO_ROOT, *REPO_ROOT.parents) if not p.stat().st_mode & 0o001]
    if closed:
        pytest.skip(
            f"another user cannot enter {closed[-1]} (mode {closed[-1].stat().st_mode & 0o777:o}), so it cannot"
            " run this checkout; clone it under a directory others may enter to run this test"
        )


StartCli = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def start_cli(sandbox: Sandbox, request: pytest.FixtureRequest) -> Iterator[StartCli]:
    """``start_cli(*args, env=None)`` starts the CLI in the background (text pipes for stdout and
    stderr), for tests that act while it runs; whatever is still running at the end is killed."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", *(os.fspath(arg) for arg in args)],
            env=cli_env(sandbox, {**_engine_host(request), **(env or {})}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture
def namespace(sandbox: Sandbox) -> str:
    """A repository prefix in the sandbox registry that only this test uses."""
    return f"{sandbox.registry}/t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def tmp_manifest(tmp_path: Path) -> Callable[..., Path]:
    """``tmp_manifest(text, name="images.yaml")`` writes (dedented) YAML, returns its path."""

    def write(text: str, name: str = "images.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


def _random_tarball(path: Path, size_kb: int) -> None:
    token = uuid.uuid4().hex
    payload = path.with_suffix(".bin")
    payload.write_bytes(os.urandom(max(size_kb, 1) * 1024))
    with tarfile.open(path, "w") as tar:
        tar.add(payload, arcname=f"data/{token}.bin")


def _split_ref(ref: str) -> tuple[str, str]:
    """``host:port/name:tag`` -> (``name``, ``tag``), for registry API calls."""
    _, _, path = ref.partition("/")
    name, _, tag = path.rpartition(":")
    return name, tag


def _delete_from_registry(registry: str, ref: str) -> None:
    name, tag = _split_ref(ref)
    head = urllib.request.Request(
        f"http://{registry}/v2/{name}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": MANIFEST_V2},
    )
    try:
        with urllib.request.urlopen(head, timeout=10) as response:
            digest = response.headers["Docker-Content-Digest"]
        delete = urllib.request.Request(
            f"http://{registry}/v2/{name}/manifests/{digest}", method="DELETE"
        )
        urllib.request.urlopen(delete, timeout=10).close()
    except urllib.error.HTTPError as exc:
        if exc.code != 404:  # already gone is fine
            raise


class ImageFactory:
    """Builds small unique images for one test and removes them afterwards."""

    def __init__(
        self,
        sandbox: Sandbox,
        namespace: str,
        docker: DockerRun,
        api: APIClient,
        workdir: Path,
    ) -> None:
        self._sandbox = sandbox
        self._namespace = namespace
        self._docker = docker
        self._api = api
        self._workdir = workdir
        self._image_ids: list[str] = []
        self._pushed: list[str] = []
        self._pulled_bases: list[str] = []

    def __call__(
        self,
        repo_tag: str,
        *,
        size_kb: int = 64,
        base: str | None = None,
        push: bool = True,
        keep_local: bool = False,
    ) -> str:
        """Build an image, tag it ``repo_tag`` and return that reference.

        A ``repo_tag`` without the sandbox registry goes under the test's namespace
        (``"web:1.0"`` -> ``"<namespace>/web:1.0"``). Without ``base`` the image is one
        layer of ``size_kb`` random bytes; with ``base`` it is built FROM base plus such a
        file, so the two share base's layers.
        """
        ref = self.qualify(repo_tag)
        build_dir = self._workdir / uuid.uuid4().hex[:12]
        build_dir.mkdir()
        if base is None:
            tarball = build_dir / "rootfs.tar"
            _random_tarball(tarball, size_kb)
            self._docker("import", tarball, ref)
        else:
            if self._docker("image", "inspect", base, check=False).returncode != 0:
                self._pulled_bases.append(base)
            (build_dir / "extra.bin").write_bytes(os.urandom(max(size_kb, 1) * 1024))
            (build_dir / "Dockerfile").write_text(
                f"FROM {base}\nCOPY extra.bin /extra/{uuid.uuid4().hex}.bin\n"
            )
            self._docker("build", "-q", "--rm", "-t", ref, build_dir, env={"DOCKER_BUILDKIT": "0"})
        self._image_ids.append(
            self._docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()
        )
        if push:
            self._docker("push", ref)
            self._pushed.append(ref)
        if not keep_local:
            self._docker("image", "rm", ref)
        return ref

    @property
    def registry(self) -> str:
        return self._sandbox.registry

    def qualify(self, repo_tag: str) -> str:
        if repo_tag.startswith(f"{self._sandbox.registry}/"):
            return repo_tag
        return f"{self._namespace}/{repo_tag}"

    def cleanup(self) -> None:
        """Remove containers and images under the namespace and every image made here."""
        errors: list[str] = []
        prefix = f"{self._namespace}/"
        images = self._api.images(all=False)
        ours = {
            image["Id"]
            for image in images
            if any(ref.startswith(prefix) for ref in _references(image))
        } | set(self._image_ids)
        for container in self._api.containers(all=True):
            if container["ImageID"] in ours or str(container.get("Image", "")).startswith(prefix):
                self._ignore_gone(errors, self._api.remove_container, container["Id"], force=True)
        for image in images:
            for ref in _references(image):
                if ref.startswith(prefix):
                    self._ignore_gone(errors, self._api.remove_image, ref)
        for ref in self._pulled_bases:
            self._ignore_gone(errors, self._api.remove_image, ref)
        for image_id in reversed(self._image_ids):  # derived images before their bases
            self._ignore_gone(errors, self._api.remove_image, image_id)
        for ref in self._pushed:
            try:
                _delete_from_registry(self._sandbox.registry, ref)
            except OSError as exc:
                errors.append(f"deleting {ref} from the registry: {exc}")
        if errors:
            pytest.fail("image_factory cleanup failed:\n" + "\n".join(errors), pytrace=False)

    @staticmethod
    def _ignore_gone(
        errors: list[str], remove: Callable[..., Any], what: str, **kwargs: Any
    ) -> None:
        try:
            remove(what, **kwargs)
        except NotFound:
            pass
        except APIError as exc:
            errors.append(f"removing {what}: {exc}")


def _references(image: Mapping[str, Any]) -> Sequence[str]:
    refs = [*(image.get("RepoTags") or ()), *(image.get("RepoDigests") or ())]
    return [ref for ref in refs if not ref.startswith("<none>")]


@pytest.fixture
def image_factory(
    sandbox: Sandbox,
    namespace: str,
    docker: DockerRun,
    api: APIClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ImageFactory]:
    """``make(repo_tag, *, size_kb=64, base=None, push=True, keep_local=False) -> ref``.

    See ImageFactory.__call__. At teardown removes every container and local image whose
    reference starts with the test's namespace, every image it built, bases it had to pull,
    and the tags it pushed.
    """
    factory = ImageFactory(sandbox, namespace, docker, api, tmp_path_factory.mktemp("images"))
    yield factory
    factory.cleanup()


# --- extra daemons --------------------------------------------------------------

@pytest.fixture(scope="module")
def twin_daemons(
    sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ExtraDaemon, ExtraDaemon]]:
    """Two extra dockerds started with one key file, as daemons cloned from one machine image are.

    They report one engine ID, yet are two daemons: their own data roots, sockets and images.
    Both are stopped, and everything they had removed, after the module's tests.
    """
    if os.geteuid() != 0:
        pytest.fail("Extra daemons need root, as `scripts/sandbox up` does.", pytrace=False)
    key_file = tmp_path_factory.mktemp("twin-key") / "key.json"
    token = uuid.uuid4().hex[:8]
    names = (f"twin-{token}-a", f"twin-{token}-b")
    started: list[str] = []
    try:
        twins = []
        for name in names:
            started.append(name)
            twins.append(extra_daemon_up(name, key_file))
        yield twins[0], twins[1]
    finally:
        for name in started:
            extra_daemon_down(name)


# --- one test on both engines ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Engine:
    """The engine a test runs on: ``docker`` (the sandbox dockerd) or ``podman`` (its Podman service).

    ``run_cli`` and ``start_cli`` of a test that takes ``engine`` talk to it (DOCKER_HOST);
    ``docker(...)`` is the docker CLI on it (it speaks to Podman's Docker API too) and ``api`` a
    docker-py client on it.
    """

    name: str
    address: str
    api: APIClient
    docker: DockerRun

    @property
    def is_podman(self) -> bool:
        return self.name == "podman"

    def local(self, image_factory: ImageFactory, repo_tag: str, **options: Any) -> str:
        """An image of ``image_factory`` on this engine only (not in the registry's tag), as
        ``keep_local=True, push=False`` gives on Docker: Podman gets it through the registry."""
        if not self.is_podman:
            return image_factory(repo_tag, keep_local=True, push=False, **options)
        ref = image_factory(repo_tag, keep_local=True, **options)  # on dockerd too: a base to build on
        self.docker("pull", ref)
        _delete_from_registry(image_factory.registry, ref)
        return ref


def _engine_host(request: pytest.FixtureRequest) -> dict[str, str]:
    """DOCKER_HOST of the test's ``engine``, when it takes one."""
    if "engine" not in request.fixturenames:
        return {}
    engine: Engine = request.getfixturevalue("engine")
    return {"DOCKER_HOST": engine.address}


def podman_address(environ: Mapping[str, str]) -> str:
    """The sandbox's Podman service; skips (fails under RECONCILE_REQUIRE_SANDBOX=1) without it."""
    address = environ.get("RECONCILE_SANDBOX_PODMAN_HOST", "")
    if not address:
        message = "RECONCILE_SANDBOX_PODMAN_HOST is not set: run `scripts/sandbox up` and eval `scripts/sandbox env`."
        if environ.get("RECONCILE_REQUIRE_SANDBOX") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return address


@pytest.fixture(params=["docker", "podman"])
def engine(request: pytest.FixtureRequest, sandbox: Sandbox, docker: DockerRun, api: APIClient, namespace: str) -> Iterator[Engine]:
    """The test once on the sandbox dockerd, once on its Podman service; on Podman, every image of
    the test's namespace is removed afterwards (the image factory cleans dockerd only)."""
    if request.param == "docker":
        yield Engine("docker", sandbox.docker_host, api, docker)
        return
    address = podman_address(os.environ)
    client = APIClient(base_url=address, version="1.41")

    def on_podman(*args: str | os.PathLike[str], **options: Any) -> subprocess.CompletedProcess[str]:
        return docker(*args, env={"DOCKER_HOST": address, **(options.pop("env", None) or {})}, **options)

    try:
        yield Engine("podman", address, client, on_podman)
    finally:
        for image in client.images():
            if any(ref.startswith(f"{namespace}/") for ref in _references(image)):
                with contextlib.suppress(NotFound):
                    client.remove_image(image["Id"], force=True)
        client.close()
