"""One call's failure as the project's error, naming the daemon: the one place that knows both
transports' exceptions (this package's HTTP client's, and docker-py's and ``requests``' for the
calls that go through docker-py). docker-py is never imported here: when it was not loaded, none
of its exceptions can have been raised.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from reconciler.daemon.engine_http import HttpRefused, HttpUnreachable
from reconciler.daemon.host import DaemonRefused, ImageConflict, ImageMissing
from reconciler.errors import DaemonUnavailable, HostTimedOut
from reconciler.model.deadline import NO_DEADLINE, Deadline


@contextmanager
def calling(address: str, what: str, deadline: Deadline = NO_DEADLINE) -> Iterator[None]:
    """Map the failures of one call to our errors, naming the daemon and the call."""
    try:
        yield
    except HttpRefused as exc:
        raise refused(address, what, exc.status, exc.explanation) from exc
    except HttpUnreachable as exc:
        if deadline.passed:
            raise HostTimedOut(f"{out_of_time(address, deadline)} ({what} had no answer).") from exc
        raise DaemonUnavailable(unreachable(address, exc)) from exc
    except Exception as exc:
        if not is_docker_py_failure(exc):
            raise
        status = getattr(exc, "status_code", None) if is_api_error(exc) else None
        if is_api_error(exc):
            raise refused(address, what, status, str(getattr(exc, "explanation", None) or exc).strip()) from exc
        if deadline.passed:
            raise HostTimedOut(f"{out_of_time(address, deadline)} ({what} had no answer).") from exc
        raise DaemonUnavailable(unreachable(address, exc)) from exc


def is_docker_py_failure(exc: BaseException) -> bool:
    """docker-py's own errors and the ``requests`` transport errors it lets through (a dead socket,
    a restarted daemon, a read timeout)."""
    if "docker" not in sys.modules:
        return False
    import docker
    import requests

    transport = (
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        requests.exceptions.ChunkedEncodingError,
    )
    return isinstance(exc, (*transport, docker.errors.DockerException))


def is_api_error(exc: BaseException) -> bool:
    """An error answer of the daemon, as docker-py raises it."""
    if "docker" not in sys.modules:
        return False
    import docker

    return isinstance(exc, docker.errors.APIError)


def refused(address: str, what: str, status: int | None, explanation: str) -> DaemonRefused:
    """The error for an API answer: 404 and 409 have their own kinds, the rest is DaemonRefused."""
    kind = ImageMissing if status == 404 else ImageConflict if status == 409 else DaemonRefused
    message = f"The Docker daemon at {address} refused {what}: {explanation}"
    return kind(message, status, explanation)


def unreachable(address: str, exc: BaseException) -> str:
    """Why ``address`` gave no answer, in words that say what to do about it."""
    cause = exc.cause if isinstance(exc, HttpUnreachable) else None
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    denied = isinstance(cause, PermissionError) or "PermissionError(13" in detail
    missing = (isinstance(cause, OSError) and cause.errno == errno.ENOENT) or "FileNotFoundError(2" in detail
    if address.startswith("unix://") and denied:
        # docker's own words for it: "permission denied while trying to connect to the Docker daemon socket"
        return (
            f"Permission denied while trying to connect to the Docker daemon socket at {address}: this user may "
            "not use it. Add the user to the `docker` group (`sudo usermod -aG docker $USER`, then log in again), "
            "use rootless Docker's socket (-H unix://$XDG_RUNTIME_DIR/docker.sock), or pick another daemon with "
            "--host, --context or DOCKER_HOST."
        )
    if address.startswith("unix://") and missing:
        return (
            f"Cannot reach the Docker daemon at {address}: there is no such socket. Is the daemon running? "
            "Pick another with --host, --context or DOCKER_HOST."
        )
    if isinstance(exc, HttpUnreachable) and exc.timed_out and detail.startswith("no answer"):
        return (
            f"The Docker daemon at {address} took the connection but gave {detail.removesuffix(' (read timed out)')}:"
            " it may be hung or overloaded. Check it (`systemctl status docker`, its log), or pick another with"
            " --host, --context or DOCKER_HOST."
        )
    return (
        f"Cannot reach the Docker daemon at {address} ({detail}). "
        "Check that it runs and that you may use its socket, or pick another with --host, --context or DOCKER_HOST."
    )


def out_of_time(address: str, deadline: Deadline) -> str:
    return f"The Docker daemon at {address} did not finish within the host deadline (--host-timeout {deadline.seconds:g}s)"
