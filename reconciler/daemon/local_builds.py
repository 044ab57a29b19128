"""Images made on the host: builds and loads, for :class:`~reconciler.daemon.docker_engine.DockerEngine`.

The legacy builder runs through the Engine API (``POST /build``, docker-py's low-level
``APIClient.build``, which sends the context with ``.dockerignore`` applied). BuildKit runs
through the docker CLI (``DOCKER_BUILDKIT=1 docker build``, pointed at the same daemon with
``-H`` and the run's TLS files): the API's BuildKit path needs a gRPC session docker-py does not
speak. A load is ``POST /images/load`` of the archive as it is (the daemon reads gzip too).
Each runs under its deadline; every failure becomes a :class:`BuildFailed` in the builder's words.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.daemon.host import BuildFailed, BuildRequest, OutputLine

DOCKER_CLI = "docker"
_FOREIGN_CLI_VARS = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
_RUNNING: set[subprocess.Popen[str]] = set()  # docker CLI builds under way, for interrupt_builds
_RUNNING_LOCK = threading.Lock()


def legacy_build(api: Any, request: BuildRequest, deadline: float, on_line: OutputLine) -> str:
    """``POST /build`` read to its end; the image id the builder reports."""
    import docker  # loaded only for a build or a load: a plan's path loads no docker-py
    import requests

    started = time.monotonic()
    image_id = ""
    try:
        stream = api.build(
            path=request.context,
            dockerfile=request.dockerfile,
            tag=request.tag,
            buildargs=dict(request.args) or None,
            target=request.target,
            labels=dict(request.labels),
            rm=True,
            forcerm=True,  # a failed step's container goes too: a cron build host must not collect them
            decode=True,
            timeout=deadline,  # each read; the whole build is checked below
        )
        for chunk in stream:
            if time.monotonic() - started > deadline:
                raise BuildFailed(f"the build did not finish within {deadline:g}s", timed_out=True)
            error = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message")
            if error:
                raise BuildFailed(str(error).strip())
            image_id = str((chunk.get("aux") or {}).get("ID") or image_id)
            for line in str(chunk.get("stream") or "").splitlines():
                if line.strip():
                    on_line(line.rstrip())
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise _failure("build", deadline, exc) from None
    if not image_id:
        found = api.inspect_image(request.tag)
        image_id = str(found.get("Id") or "")
    return image_id


def cli_build(address: str, tls: Any, request: BuildRequest, deadline: float, on_line: OutputLine) -> str:
    """``DOCKER_BUILDKIT=1 docker build`` against ``address``; its output line by line; the image id."""
    program = shutil.which(DOCKER_CLI)
    if program is None:
        raise BuildFailed(
            "builder: buildkit builds with the docker CLI, and there is no `docker` on PATH;"
            " install the docker CLI (Debian: the docker.io package) or use builder: legacy."
        )
    with tempfile.TemporaryDirectory(prefix="reconcile-build-") as scratch:
        iidfile = os.path.join(scratch, "iid")
        command = [program, *_connection_flags(address, tls), "build", "--progress=plain", "--iidfile", iidfile]
        command += ["-f", os.path.join(request.context, request.dockerfile), "-t", request.tag]
        command += [f"--label={key}={value}" for key, value in sorted(request.labels.items())]
        command += [f"--build-arg={key}={value}" for key, value in sorted(request.args.items())]
        command += ["--target", request.target] if request.target else []
        command.append(request.context)
        lines = _run(command, _cli_environment(), deadline, on_line)
        try:
            with open(iidfile, encoding="ascii") as handle:
                return handle.read().strip()
        except OSError:
            raise BuildFailed(_last_words(lines, "the docker CLI reported no image")) from None


def load_archive(api: Any, archive: str, deadline: float, on_line: OutputLine) -> tuple[str, ...]:
    """``POST /images/load``; the ids of the images the daemon says it loaded."""
    import docker
    import requests

    loaded: list[str] = []
    started = time.monotonic()
    saved_timeout = api.timeout
    api.timeout = deadline
    try:
        with open(archive, "rb") as handle:
            for chunk in api.load_image(handle):
                if time.monotonic() - started > deadline:
                    raise BuildFailed(f"the load did not finish within {deadline:g}s", timed_out=True)
                error = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message")
                if error:
                    raise BuildFailed(str(error).strip())
                for line in str(chunk.get("stream") or "").splitlines():
                    if line.strip():
                        on_line(line.strip())
                        loaded += _loaded_name(line)
        return tuple(dict.fromkeys(_image_id(api, name) for name in loaded))
    except OSError as exc:
        raise BuildFailed(f"cannot read the archive {archive}: {exc.strerror or exc}") from None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise _failure("load", deadline, exc) from None
    finally:
        api.timeout = saved_timeout


def _failure(what: str, deadline: float, exc: Exception) -> BuildFailed:
    """A docker-py or transport error of a build or load, in the daemon's words where it has them."""
    import docker
    import requests

    if isinstance(exc, docker.errors.APIError):
        return BuildFailed(str(exc.explanation or exc).strip())
    if isinstance(exc, requests.exceptions.Timeout):
        return BuildFailed(f"the {what} did not finish within {deadline:g}s", timed_out=True)
    return BuildFailed(f"lost the connection to the daemon: {exc}", lost=True)


def _loaded_name(line: str) -> list[str]:
    """``Loaded image: app:1`` or ``Loaded image ID: sha256:...`` (an archive saved by id)."""
    for prefix in ("Loaded image ID:", "Loaded image:"):
        if line.startswith(prefix):
            return [line[len(prefix) :].strip()]
    return []


def _image_id(api: Any, name: str) -> str:
    return name if name.startswith("sha256:") else str(api.inspect_image(name).get("Id") or name)


def _connection_flags(address: str, tls: Any) -> list[str]:
    """The docker CLI's global flags for the daemon this run uses: its address and TLS files."""
    flags = ["-H", address]
    if tls is None:
        return flags
    verify = getattr(tls, "verify", None)
    ca_cert = getattr(tls, "ca_cert", None) or (verify if isinstance(verify, str) else None)
    flags.append("--tlsverify" if verify else "--tls")
    if ca_cert:
        flags += ["--tlscacert", ca_cert]
    cert = getattr(tls, "cert", None)
    if cert:
        flags += ["--tlscert", cert[0], "--tlskey", cert[1]]
    return flags


def _cli_environment() -> Mapping[str, str]:
    """This process's environment with BuildKit on; the daemon is the one the flags name, not the
    environment's."""
    environment = {key: value for key, value in os.environ.items() if key not in _FOREIGN_CLI_VARS}
    environment["DOCKER_BUILDKIT"] = "1"
    return environment


def _run(command: list[str], environment: Mapping[str, str], deadline: float, on_line: OutputLine) -> list[str]:
    """Run ``command``, each output line to ``on_line``, ended when ``deadline`` seconds pass."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=dict(environment),
        text=True,
        errors="replace",
        start_new_session=True,  # its own process group: the CLI's plugins (buildx) end with it
    )
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        _kill_group(process)

    watchdog = threading.Timer(deadline, stop)
    watchdog.daemon = True
    watchdog.start()
    with _RUNNING_LOCK:
        _RUNNING.add(process)
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip()
            if line:
                lines.append(line)
                on_line(line)
        code = process.wait()
    finally:
        watchdog.cancel()
        with _RUNNING_LOCK:
            _RUNNING.discard(process)
        if process.poll() is None:
            _kill_group(process)
            process.wait()
    if timed_out.is_set():
        raise BuildFailed(f"the build did not finish within {deadline:g}s", timed_out=True)
    if code != 0:
        raise BuildFailed(_last_words(lines, f"docker build exited with {code}"))
    return lines


def interrupt_builds() -> None:
    """End every docker CLI build running in this process (an interrupt stops the whole run)."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for process in running:
        _kill_group(process)


def _kill_group(process: subprocess.Popen[str]) -> None:
    """End the process and what it started (a child holding the output pipe would keep the read waiting)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _last_words(lines: Iterable[str], fallback: str) -> str:
    """What a failed build said last: the CLI's ERROR line, else its last line."""
    said = list(lines)
    errors = [line for line in said if "ERROR" in line or line.startswith("error")]
    return (errors[-1] if errors else said[-1] if said else fallback).strip()
