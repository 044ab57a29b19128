"""The daemon seam over docker-py's low-level client: the only module that speaks the Engine API.

Every call runs under a deadline (``timeout`` seconds for one call; a pull under its own),
each cut to what is left of the host's own deadline (``--host-timeout``), turns docker-py's and ``requests``' exceptions into ours, naming the daemon, and turns the
API's dicts into the project's records. docker-py reports a dead socket or a restarted
daemon as ``requests`` exceptions, not as ``DockerException``; both are mapped here.
"""

from __future__ import annotations

import binascii
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

import docker
import requests

from reconciler.daemon.build_cache_records import build_cache_from_df, prune_filter
from reconciler.daemon.engine_kind import EngineKind, engine_from_version, podman_identity
from reconciler.daemon.host import (
    BuildCachePruned,
    BuildFailed,
    BuildRequest,
    DaemonIdentity,
    DaemonRefused,
    DiskUsageBusy,
    DiskUsageReport,
    ImageConflict,
    ImageDetails,
    ImageMissing,
    OutputLine,
    ProgressChunk,
    PullStreamFailed,
)
from reconciler.daemon.local_builds import cli_build, interrupt_builds, legacy_build, load_archive
from reconciler.daemon.registry_api import manifest_digest
from reconciler.errors import DaemonError, DaemonUnavailable, HostTimedOut
from reconciler.model.build_cache import BuildCacheRecord
from reconciler.model.deadline import NO_DEADLINE, Deadline
from reconciler.model.inventory import ContainerRecord, DaemonEvent, HistoryEntry, ImageRecord
from reconciler.model.reference import InvalidReference, Reference, parse_reference

DEFAULT_TIMEOUT = 60.0  # seconds for one API call; pulls set their own deadline
CONNECT_TIMEOUT = 10.0  # seconds to open a connection, whatever the call
PING_TIMEOUT = 5.0  # seconds GET /_ping may take when a pull timed out: is it the daemon that hangs?
TRANSPORT_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
_NONE_REFS = {"<none>:<none>", "<none>@<none>"}
# Docker 20.10 refuses a /system/df while another one runs (another client's `docker system df`, our plan
# beside our apply); it is no error of ours: wait a little and ask again, within the call's deadline.
DISK_USAGE_BUSY = "a disk usage operation is already running"
DISK_USAGE_FIRST_WAIT = 0.05  # seconds before the first retry, doubled each time up to DISK_USAGE_MAX_WAIT
DISK_USAGE_MAX_WAIT = 1.0


class DockerEngine:
    """One Docker (API-compatible) daemon at ``address``, reached through docker-py."""

    def __init__(
        self,
        address: str,
        client: Any,
        options: Mapping[str, Any] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        deadline: Deadline = NO_DEADLINE,
    ) -> None:
        """``client`` is a docker-py ``APIClient`` made with ``options``; :meth:`connect` makes both.
        No call waits past ``deadline``."""
        self._address = address
        self._api = client
        self._options = dict(options or {})
        self._timeout = timeout
        self._deadline = deadline
        self._identity: DaemonIdentity | None = None
        self._engine: EngineKind | None = None
        self._streams: set[requests.Response] = set()  # running pulls, for interrupt()
        self._streams_lock = threading.Lock()

    @classmethod
    def connect(
        cls,
        address: str,
        options: Mapping[str, Any],
        timeout: float = DEFAULT_TIMEOUT,
        deadline: Deadline = NO_DEADLINE,
    ) -> DockerEngine:
        """Open a client and check the daemon answers (the API version handshake), within ``deadline``."""
        with cls._calling(address, "GET /version", deadline):
            client = _api_client(options, version="auto", timeout=deadline.bound(timeout))
        return cls(address, client, options, timeout, deadline)

    @property
    def address(self) -> str:
        return self._address

    def session(self) -> DockerEngine:
        """Another client (requests sessions are not thread-safe), same daemon and API version."""
        with self._call("a new connection"):
            client = _api_client(self._options, version=self._api.api_version, timeout=self._timeout)
        engine = DockerEngine(self._address, client, self._options, self._timeout, self._deadline)
        engine._identity = self._identity
        engine._engine = self._engine
        return engine

    def close(self) -> None:
        self._api.close()

    def interrupt(self) -> None:
        with self._streams_lock:
            streams = list(self._streams)
        for response in streams:
            _cut(response)
        interrupt_builds()

    # --- reading --------------------------------------------------------------

    def engine(self) -> EngineKind:
        """Docker or Podman, from ``GET /version``'s components (asked once per connection)."""
        if self._engine is None:
            with self._call("GET /version"):
                self._engine = engine_from_version(self._api.version())
        return self._engine

    def identity(self) -> DaemonIdentity:
        if self._identity is None and self.engine().is_podman:
            self._identity = self._podman_identity()
        if self._identity is None:
            try:
                with self._call("GET /info"):
                    info = self._api.info()
            except DaemonRefused as exc:
                raise DaemonError(
                    f"The Docker daemon at {self._address} did not say which daemon it is "
                    f"(GET /info failed: {exc.explanation}); nothing was changed."
                ) from exc
            found = info if isinstance(info, dict) else {}
            self._identity = DaemonIdentity(
                engine_id=_text(found.get("ID")), name=_text(found.get("Name")), root_dir=_text(found.get("DockerRootDir"))
            )
        return self._identity

    def _podman_identity(self) -> DaemonIdentity:
        # Podman's /info ID is random per call; its libpod info names a stable store.
        path = f"/v{self.engine().libpod_api}/libpod/info"
        try:
            with self._call(f"GET {path}"):
                response = self._api.get(f"{self._api.base_url}{path}", timeout=self._api.timeout)
                _raise_for_status(response)
                return podman_identity(response.json())
        except (DaemonRefused, ValueError) as exc:
            raise DaemonError(
                f"The Podman service at {self._address} did not say which store it serves "
                f"(GET {path} failed: {exc}); without a stable identity no lock or saved plan can"
                " be tied to it, so nothing was changed."
            ) from exc

    def list_images(self) -> tuple[ImageRecord, ...]:
        with self._call("GET /images/json"):
            return tuple(image_from_api(raw) for raw in self._api.images(all=False))

    def list_containers(self) -> tuple[ContainerRecord, ...]:
        with self._call("GET /containers/json"):
            return tuple(container_from_api(raw) for raw in self._api.containers(all=True))

    def inspect_image(self, name: str) -> ImageDetails | None:
        try:
            with self._call(f"GET /images/{name}/json"):
                raw = self._api.inspect_image(name)
        except ImageMissing:
            return None
        return details_from_api(raw)

    def container_image_name(self, container_id: str) -> str | None:
        try:
            with self._call(f"GET /containers/{container_id}/json"):
                raw = self._api.inspect_container(container_id)
        except ImageMissing:  # a 404: the container is gone
            return None
        config = raw.get("Config") if isinstance(raw, dict) else None
        return _text(config.get("Image")) if isinstance(config, dict) else None

    def image_history(self, image_id: str) -> tuple[HistoryEntry, ...] | None:
        try:
            with self._call(f"GET /images/{image_id}/history"):
                raw = self._api.history(image_id)
        except ImageMissing:
            return None
        return tuple(HistoryEntry(int(h.get("Size") or 0), str(h.get("CreatedBy") or "")) for h in raw or ())

    def disk_usage(self) -> DiskUsageReport:
        """``GET /system/df``; while another disk usage request runs, asked again until the deadline."""
        usage = self._disk_usage_when_free()
        shared = {str(raw["Id"]): int(raw.get("SharedSize", -1)) for raw in usage.get("Images") or ()}
        return DiskUsageReport(layers_size=int(usage.get("LayersSize") or 0), shared_sizes=shared)

    def _disk_usage_when_free(self) -> Any:
        started = time.monotonic()
        wait = DISK_USAGE_FIRST_WAIT
        tries = 0
        while True:
            tries += 1
            try:
                with self._call("GET /system/df"):
                    return self._api.df()
            except DaemonRefused as exc:
                if DISK_USAGE_BUSY not in exc.explanation.lower():
                    raise
                left = self._timeout - (time.monotonic() - started)
                if left <= 0:
                    raise DiskUsageBusy(
                        f"The Docker daemon at {self._address} refused GET /system/df {tries} times in"
                        f" {self._timeout:g}s because another disk usage request was running all along"
                        " (another client's `docker system df`, or another reconcile); try again later.",
                        exc.status,
                        exc.explanation,
                    ) from exc
                # Half fixed, half random: several of us waiting on one daemon do not come back together.
                time.sleep(min(left, wait / 2 + random.random() * wait / 2))
                wait = min(wait * 2, DISK_USAGE_MAX_WAIT)

    def build_cache(self) -> tuple[BuildCacheRecord, ...]:
        return build_cache_from_df(self._disk_usage_when_free())

    def prune_build_cache(self, record_id: str) -> BuildCachePruned:
        with self._call(f"POST /build/prune (record {record_id})"):
            raw = self._api.prune_builds(filters=prune_filter(record_id), all=True)
        found = raw if isinstance(raw, dict) else {}
        deleted = tuple(str(d) for d in found.get("CachesDeleted") or ())
        return BuildCachePruned(deleted, int(found.get("SpaceReclaimed") or 0))

    def events(self, since: float, until: float) -> tuple[DaemonEvent, ...]:
        # With `until` set the daemon ends the stream, so this returns. Fractions of a second
        # matter: a whole-second `until` would leave out the events of the current second.
        # docker-py's own events() reads with no timeout at all: a hung daemon would hang us.
        # No filter: how many events come back, of any kind, tells whether the daemon's
        # buffer (its last 256) may have dropped some; at most 256 lines either way.
        params = {"since": f"{since:.9f}", "until": f"{until:.9f}"}
        with self._call("GET /events"):
            response = self._api.get(self._url("/events"), params=params, stream=True, timeout=self._api.timeout)
            try:
                _raise_for_status(response)
                lines = [json.loads(line) for line in response.iter_lines() if line]
            finally:
                response.close()
        return tuple(event_from_api(raw) for raw in lines)

    def registry_digest(self, reference: str, auth_header: str | None) -> str | None:
        if self.engine().is_podman:
            # Podman answers /distribution with 404: ask the registry's v2 API, with the pull's credentials.
            return manifest_digest(reference, auth_header, self._timeout)
        url = self._url(f"/distribution/{reference}/json")
        headers = {"X-Registry-Auth": auth_header} if auth_header else {}
        try:
            with self._call(f"GET /distribution/{reference}/json"):
                response = self._api.get(url, headers=headers, timeout=self._api.timeout)
                _raise_for_status(response)
                answer = response.json()
        except DaemonRefused:
            return None  # the registry cannot be asked: the planner then pulls, as pull: always promises
        digest = (answer.get("Descriptor") or {}).get("digest") if isinstance(answer, dict) else None
        return str(digest) if digest else None

    # --- changing -------------------------------------------------------------

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        with self._call(f"POST /images/{image_id}/tag"):
            self._api.tag(image_id, repository, tag)

    def delete(self, reference: str) -> tuple[str, ...]:
        with self._call(f"DELETE /images/{reference}"):
            # Never forced: force deletes images that stopped containers still need.
            answer = self._api.remove_image(reference, force=False, noprune=False)
        return tuple(str(item["Deleted"]) for item in answer or () if item.get("Deleted"))

    def pull(
        self,
        name: str,
        tag_or_digest: str,
        platform: str | None,
        auth_header: str | None,
        deadline: float,
        on_chunk: Callable[[ProgressChunk], None],
    ) -> None:
        params = {"fromImage": name, "tag": tag_or_digest}
        if platform:
            params["platform"] = platform
        headers = {"X-Registry-Auth": auth_header} if auth_header else {}
        url = self._url("/images/create")
        started = time.monotonic()
        self._check_deadline("POST /images/create")
        remaining = self._deadline.bound(max(deadline, 0.001))
        try:
            # The request itself has the deadline: a hung daemon never sends the response head.
            response = self._api.post(
                url, params=params, headers=headers, stream=True, timeout=(min(CONNECT_TIMEOUT, remaining), remaining)
            )
        except requests.exceptions.Timeout:
            raise self._pull_timed_out(f"the daemon did not start the pull within {remaining:g}s") from None
        except requests.exceptions.RequestException as exc:
            raise PullStreamFailed(f"lost the connection to the daemon: {exc}", lost=True) from None
        # Each read also waits at most the deadline; a watchdog cuts the stream when the whole pull is late
        # (closing the response would not: a read blocked in another thread goes on waiting).
        watchdog = threading.Timer(remaining, _cut, (response,))
        watchdog.daemon = True
        watchdog.start()
        with self._streams_lock:
            self._streams.add(response)
        try:
            try:
                _raise_for_status(response)
            except docker.errors.APIError as exc:
                raise PullStreamFailed(str(exc.explanation or exc).strip(), exc.status_code) from None
            for line in response.iter_lines():
                if not line:
                    continue
                chunk = json.loads(line)
                error = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message")
                if error:
                    raise PullStreamFailed(str(error))
                on_chunk(chunk)
        except (requests.exceptions.RequestException, AttributeError, ValueError) as exc:
            if time.monotonic() - started >= remaining:
                raise self._pull_timed_out(f"did not finish within {remaining:g}s") from None
            # A stream that breaks off mid-pull (daemon restart, dropped socket) is worth another try.
            raise PullStreamFailed(f"the pull stream broke off: {exc}", broken=True) from None
        finally:
            watchdog.cancel()
            with self._streams_lock:
                self._streams.discard(response)
            response.close()

    def build_image(self, request: BuildRequest, deadline: float, on_line: OutputLine) -> str:
        remaining = self._left_for("POST /build", deadline)
        if request.buildkit:
            return cli_build(self._address, self._options.get("tls"), request, remaining, on_line)
        return legacy_build(self._api, request, remaining, on_line)

    def load_image(self, archive: str, deadline: float, on_line: OutputLine) -> tuple[str, ...]:
        return load_archive(self._api, archive, self._left_for("POST /images/load", deadline), on_line)

    def _left_for(self, what: str, deadline: float) -> float:
        """``deadline`` cut to what is left of the host's; a BuildFailed when nothing is."""
        if self._deadline.passed:
            raise BuildFailed(f"{_out_of_time(self._address, self._deadline)} ({what} was not sent).", lost=True)
        return self._deadline.bound(max(deadline, 0.001))

    # --- deadlines and errors -------------------------------------------------

    def _pull_timed_out(self, message: str) -> PullStreamFailed:
        """A pull out of time: the daemon's fault when it no longer answers even a ping (it hangs:
        every further call would wait its whole timeout), else the registry's slowness."""
        if self._deadline.passed:
            return PullStreamFailed(f"{message}: {_out_of_time(self._address, self._deadline)}", lost=True)
        try:
            self._api.get(self._url("/_ping"), timeout=self._deadline.bound(PING_TIMEOUT)).close()
        except requests.exceptions.RequestException:
            return PullStreamFailed(f"{message}, and the daemon no longer answers", lost=True)
        return PullStreamFailed(message, timed_out=True)

    def _check_deadline(self, what: str) -> None:
        if self._deadline.passed:
            raise HostTimedOut(f"{_out_of_time(self._address, self._deadline)} ({what} was not sent).")

    def _url(self, path: str) -> str:
        return f"{self._api.base_url}/v{self._api.api_version}{path}"

    def _call(self, what: str) -> Any:
        """One call: under the call timeout cut to the host's deadline (each session is one thread's)."""
        self._check_deadline(what)
        self._api.timeout = self._deadline.bound(self._timeout)
        return self._calling(self._address, what, self._deadline)

    @staticmethod
    @contextmanager
    def _calling(address: str, what: str, deadline: Deadline = NO_DEADLINE) -> Iterator[None]:
        """Map docker-py and transport failures of one call to our errors, naming the daemon."""
        try:
            yield
        except docker.errors.APIError as exc:
            raise refused(address, what, exc) from exc
        except (*TRANSPORT_ERRORS, docker.errors.DockerException) as exc:
            if deadline.passed:
                raise HostTimedOut(f"{_out_of_time(address, deadline)} ({what} had no answer).") from exc
            raise DaemonUnavailable(unreachable(address, exc)) from exc


def refused(address: str, what: str, exc: docker.errors.APIError) -> DaemonRefused:
    """The error for an API answer: 404 and 409 have their own kinds, the rest is DaemonRefused."""
    explanation = str(exc.explanation or exc).strip()
    status = exc.status_code
    kind = ImageMissing if status == 404 else ImageConflict if status == 409 else DaemonRefused
    message = f"The Docker daemon at {address} refused {what}: {explanation}"
    return kind(message, status, explanation)


def unreachable(address: str, exc: BaseException) -> str:
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if address.startswith("unix://") and "PermissionError(13" in detail:
        # docker's own words for it: "permission denied while trying to connect to the Docker daemon socket"
        return (
            f"Permission denied while trying to connect to the Docker daemon socket at {address}: this user may "
            "not use it. Add the user to the `docker` group (`sudo usermod -aG docker $USER`, then log in again), "
            "use rootless Docker's socket (-H unix://$XDG_RUNTIME_DIR/docker.sock), or pick another daemon with "
            "--host, --context or DOCKER_HOST."
        )
    if address.startswith("unix://") and "FileNotFoundError(2" in detail:
        return (
            f"Cannot reach the Docker daemon at {address}: there is no such socket. Is the daemon running? "
            "Pick another with --host, --context or DOCKER_HOST."
        )
    return (
        f"Cannot reach the Docker daemon at {address} ({detail}). "
        "Check that it runs and that you may use its socket, or pick another with --host, --context or DOCKER_HOST."
    )


def _out_of_time(address: str, deadline: Deadline) -> str:
    return f"The Docker daemon at {address} did not finish within the host deadline (--host-timeout {deadline.seconds:g}s)"


def _cut(response: requests.Response) -> None:
    """End a streamed response now, from any thread: shut its socket down (a read blocked in
    another thread returns at once), then close it."""
    connection = getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        with suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)
    response.close()


def _raise_for_status(response: requests.Response) -> None:
    """docker-py's APIError (ImageNotFound, ...) for an error answer, as its own calls raise it."""
    try:
        response.raise_for_status()
    except requests.exceptions.HTTPError as exc:
        docker.errors.create_api_error_from_http_exception(exc)


_CONFIG_BYPASS = threading.Lock()


def _api_client(options: Mapping[str, Any], **more: Any) -> docker.APIClient:
    """docker-py's client, which parses the Docker config's credentials as it starts.

    A broken `auths` entry would stop it there, for every command and every registry;
    the connection needs no credentials (pulls take theirs from registry_auth, which
    says what is wrong when a registry refuses us), so the client then starts without.
    """
    try:
        return docker.APIClient(**options, **more)
    except (ValueError, TypeError, binascii.Error):
        with _CONFIG_BYPASS:  # pull threads open clients too: one swap at a time
            original = docker.api.client.auth.load_config
            docker.api.client.auth.load_config = lambda *args, **kwargs: docker.auth.AuthConfig({})
            try:
                return docker.APIClient(**options, **more)
            finally:
                docker.api.client.auth.load_config = original


# --- the API's dicts as our records ------------------------------------------------


def image_from_api(raw: Mapping[str, Any]) -> ImageRecord:
    """One entry of ``GET /images/json`` as an ImageRecord (untagged forms normalised)."""
    shared = raw.get("SharedSize")
    return ImageRecord(
        id=str(raw["Id"]),
        tags=parse_refs(raw.get("RepoTags")),
        digests=parse_refs(raw.get("RepoDigests")),
        created=int(raw.get("Created") or 0),
        size=int(raw.get("Size") or 0),
        shared_size=int(shared) if isinstance(shared, int) and shared >= 0 else None,
        parent_id=str(raw.get("ParentId") or ""),
        labels=_labels(raw.get("Labels")),
    )


def _labels(raw: Any) -> tuple[tuple[str, str], ...]:
    """``Labels`` of the image list: a mapping, or null for an image without labels."""
    if not isinstance(raw, Mapping):
        return ()
    return tuple(sorted((str(key), str(value)) for key, value in raw.items()))


def container_from_api(raw: Mapping[str, Any]) -> ContainerRecord:
    names = raw.get("Names") or ()
    name = str(names[0]).lstrip("/") if names else str(raw["Id"])[:12]
    created = raw.get("Created")
    return ContainerRecord(
        id=str(raw["Id"]),
        name=name,
        image_id=str(raw.get("ImageID") or ""),
        state=str(raw.get("State") or ""),
        created=created if isinstance(created, int) and created > 0 else 0,
        image_name=str(raw.get("Image") or ""),
    )


def details_from_api(raw: Mapping[str, Any]) -> ImageDetails:
    rootfs = raw.get("RootFS") or {}
    return ImageDetails(
        id=str(raw["Id"]),
        repo_tags=tuple(str(t) for t in raw.get("RepoTags") or () if t not in _NONE_REFS),
        repo_digests=tuple(str(d) for d in raw.get("RepoDigests") or () if d not in _NONE_REFS),
        size=int(raw.get("Size") or 0),
        layers=tuple(str(layer) for layer in rootfs.get("Layers") or ()),
        os=_text(raw.get("Os")),
        architecture=_text(raw.get("Architecture")),
        variant=_text(raw.get("Variant")),
    )


def event_from_api(raw: Mapping[str, Any]) -> DaemonEvent:
    actor = raw.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    actor_id = _text(actor.get("ID"))
    if not actor_id and _text(raw.get("Action")) == "pull":
        # Podman 4.3's pull events carry an empty Actor.ID and the whole reference in the `name`
        # attribute (Docker puts the reference in the ID and only the repository in `name`).
        actor_id = _text(attributes.get("name"))
    return DaemonEvent(
        type=_text(raw.get("Type")),
        action=_text(raw.get("Action")),
        actor_id=actor_id,
        attributes={str(k): str(v) for k, v in attributes.items()},
        time=float(raw.get("timeNano") or 0) / 1e9 or float(raw.get("time") or 0),
        source=_text(raw.get("from")),
    )


def parse_refs(values: Iterable[str] | None) -> tuple[Reference, ...]:
    """RepoTags/RepoDigests may be null, empty or ``<none>:<none>`` for untagged images."""
    refs = []
    for text in values or ():
        if text in _NONE_REFS:
            continue
        try:
            refs.append(parse_reference(text))
        except InvalidReference:
            continue  # the daemon never hands out invalid references; ignore rather than crash
    return tuple(sorted(refs, key=lambda r: r.canonical()))


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
