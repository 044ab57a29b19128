"""The daemon seam: the only class that speaks the Engine API.

Every call runs under a deadline (``timeout`` seconds for one call; a pull under its own),
each cut to what is left of the host's own deadline (``--host-timeout``), turns transport
failures and error answers into ours, naming the daemon (:mod:`engine_errors`), and turns the
API's dicts into the project's records (:mod:`api_records`). The reads a plan makes go over
the standard library (:mod:`engine_http`) on a unix socket or tcp://; docker-py is loaded
only for a write, a pull, or a daemon reached over ssh://.
"""

from __future__ import annotations

import json
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, suppress
from typing import TYPE_CHECKING, Any

from reconciler.daemon.api_records import (
    container_from_api,
    details_from_api,
    event_from_api,
    image_from_api,
    parse_refs,
    text,
)
from reconciler.daemon.docker_py_client import api_client
from reconciler.daemon.engine_errors import calling, out_of_time, refused, unreachable
from reconciler.daemon.engine_http import EngineHttp, HttpRefused, HttpUnreachable, endpoint_for
from reconciler.daemon.engine_kind import EngineKind, engine_from_version, podman_identity
from reconciler.daemon.engine_reads import ClientReads, EngineReads, HttpReads, raise_for_status
from reconciler.daemon.host import (
    BuildCachePruned,
    BuildFailed,
    BuildRequest,
    DaemonIdentity,
    DaemonRefused,
    DiskUsageBusy,
    DiskUsageReport,
    ImageDetails,
    ImageMissing,
    KnownLayersSource,
    OutputLine,
    ProgressChunk,
    PullStreamFailed,
)
from reconciler.errors import DaemonError, HostTimedOut
from reconciler.model.deadline import NO_DEADLINE, Deadline
from reconciler.model.inventory import ContainerRecord, EventWindow, HistoryEntry, ImageRecord

if TYPE_CHECKING:  # the others are imported where they are used: Podman, builds, build cache, pull: always
    from reconciler.daemon.podman_disk_usage import PodmanDiskUsage
    from reconciler.daemon.registry_api import RegistryLookups
    from reconciler.model.build_cache import BuildCacheRecord

__all__ = [
    "DockerEngine", "container_from_api", "details_from_api", "endpoint_for", "event_from_api",
    "image_from_api", "parse_refs", "refused", "unreachable",
]

DEFAULT_TIMEOUT = 60.0  # seconds for one API call; pulls set their own deadline
CONNECT_TIMEOUT = 10.0  # seconds to open a connection, whatever the call
PING_TIMEOUT = 5.0  # seconds GET /_ping may take when a pull timed out: is it the daemon that hangs?
# Docker 20.10 refuses a /system/df while another one runs (another client's `docker system df`, our plan
# beside our apply); it is no error of ours: wait a little and ask again, within the call's deadline.
DISK_USAGE_BUSY = "a disk usage operation is already running"
DISK_USAGE_FIRST_WAIT = 0.05  # seconds before the first retry, doubled each time up to DISK_USAGE_MAX_WAIT
DISK_USAGE_MAX_WAIT = 1.0


class DockerEngine:
    """One Docker (API-compatible) daemon at ``address``."""

    def __init__(
        self,
        address: str,
        client: Any,
        options: Mapping[str, Any] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        deadline: Deadline = NO_DEADLINE,
        *,
        reads: EngineReads | None = None,
        api_version: str = "",
    ) -> None:
        """``client`` is a docker-py ``APIClient`` made with ``options`` (its reads go through it too),
        or None with ``reads`` over the standard library at ``api_version`` (docker-py's client then
        made on the first write); :meth:`connect` picks. No call waits past ``deadline``."""
        self._address = address
        self._api = client
        self._reads: EngineReads = reads if reads is not None else ClientReads(client)
        self._api_version = api_version
        self._options = dict(options or {})
        self._timeout = timeout
        self._deadline = deadline
        self._identity: DaemonIdentity | None = None
        self._engine: EngineKind | None = None
        # Made on first use, shared with sessions: Podman's layers by image id ("podman_disk"), and
        # registry connections with what they learnt ("registry", for pull: always tags).
        self._shared: dict[str, Any] = {}
        self._owns_registry = True
        self._streams: set[Any] = set()  # running pulls (requests responses), for interrupt()
        self._streams_lock = threading.Lock()

    @classmethod
    def connect(
        cls,
        address: str,
        options: Mapping[str, Any],
        timeout: float = DEFAULT_TIMEOUT,
        deadline: Deadline = NO_DEADLINE,
    ) -> DockerEngine:
        """Open a connection and check the daemon answers (the API version handshake), within ``deadline``."""
        endpoint = endpoint_for(address, options)
        if endpoint is None:  # ssh:// and forms only docker-py knows
            with calling(address, "GET /version", deadline):
                client = api_client(options, version="auto", timeout=deadline.bound(timeout))
            return cls(address, client, options, timeout, deadline)
        http = EngineHttp(endpoint, CONNECT_TIMEOUT)
        with calling(address, "GET /version", deadline):
            try:
                version = http.get_json("/version", deadline.bound(timeout))
            except HttpRefused as exc:
                http.close()
                # As docker-py's handshake says it: a daemon that refuses to say its version is unusable.
                side = "Client" if exc.status < 500 else "Server"
                raise HttpUnreachable(
                    f"Error while fetching server API version: {exc.status} {side} Error: {exc.explanation}"
                ) from None
            api_version = version.get("ApiVersion") if isinstance(version, dict) else None
            if not isinstance(api_version, str) or not api_version:
                http.close()
                raise HttpUnreachable("its answer to GET /version names no ApiVersion")
        engine = cls(address, None, options, timeout, deadline,
                     reads=HttpReads(http, api_version, timeout), api_version=api_version)
        engine._engine = engine_from_version(version)  # the same answer as GET /v<api>/version
        return engine

    @property
    def address(self) -> str:
        return self._address

    def session(self) -> DockerEngine:
        """Another connection (neither requests sessions nor ours are thread-safe), same daemon and API version."""
        if isinstance(self._reads, HttpReads):
            endpoint = endpoint_for(self._address, self._options)
            assert endpoint is not None  # it gave this engine its reads
            reads = HttpReads(EngineHttp(endpoint, CONNECT_TIMEOUT), self._api_version, self._timeout)
            engine = DockerEngine(self._address, None, self._options, self._timeout, self._deadline,
                                  reads=reads, api_version=self._api_version)
        else:
            with self._call("a new connection"):
                client = api_client(self._options, version=self._api.api_version, timeout=self._timeout)
            engine = DockerEngine(self._address, client, self._options, self._timeout, self._deadline)
        engine._identity = self._identity
        engine._engine = self._engine
        engine._shared, engine._owns_registry = self._shared, False
        return engine

    def close(self) -> None:
        self._reads.close()
        if self._owns_registry and "registry" in self._shared:
            self._shared["registry"].close()
        if self._api is not None:
            self._api.close()

    def interrupt(self) -> None:
        with self._streams_lock:
            streams = list(self._streams)
        for response in streams:
            _cut(response)
        builds = sys.modules.get("reconciler.daemon.local_builds")  # never imported: no build ran
        if builds is not None:
            builds.interrupt_builds()

    def _client(self) -> Any:
        """docker-py's client, made on first use (a write or a pull) at the version the handshake gave."""
        if self._api is None:
            with self._call("a new connection"):
                self._api = api_client(self._options, version=self._api_version, timeout=self._timeout)
        return self._api

    # --- reading --------------------------------------------------------------

    def engine(self) -> EngineKind:
        """Docker or Podman, from ``GET /version``'s components (asked once per connection)."""
        if self._engine is None:
            with self._call("GET /version"):
                self._engine = engine_from_version(self._reads.version())
        return self._engine

    def identity(self) -> DaemonIdentity:
        if self._identity is None and self.engine().is_podman:
            self._identity = self._podman_identity()
        if self._identity is None:
            try:
                with self._call("GET /info"):
                    info = self._reads.info()
            except DaemonRefused as exc:
                raise DaemonError(
                    f"The Docker daemon at {self._address} did not say which daemon it is "
                    f"(GET /info failed: {exc.explanation}); nothing was changed."
                ) from exc
            found = info if isinstance(info, dict) else {}
            self._identity = DaemonIdentity(
                engine_id=text(found.get("ID")), name=text(found.get("Name")), root_dir=text(found.get("DockerRootDir"))
            )
        return self._identity

    def _podman_identity(self) -> DaemonIdentity:
        # Podman's /info ID is random per call; its libpod info names a stable store.
        path = f"/v{self.engine().libpod_api}/libpod/info"
        try:
            with self._call(f"GET {path}"):
                return podman_identity(self._reads.get_json(path, versioned=False))
        except (DaemonRefused, ValueError) as exc:
            raise DaemonError(
                f"The Podman service at {self._address} did not say which store it serves "
                f"(GET {path} failed: {exc}); without a stable identity no lock or saved plan can"
                " be tied to it, so nothing was changed."
            ) from exc

    def list_images(self) -> tuple[ImageRecord, ...]:
        with self._call("GET /images/json"):
            return tuple(image_from_api(raw) for raw in self._reads.images(all=False))

    def list_containers(self) -> tuple[ContainerRecord, ...]:
        with self._call("GET /containers/json"):
            return tuple(container_from_api(raw) for raw in self._reads.containers(all=True))

    def inspect_image(self, name: str) -> ImageDetails | None:
        try:
            with self._call(f"GET /images/{name}/json"):
                raw = self._reads.inspect_image(name)
        except ImageMissing:
            return None
        return details_from_api(raw)

    def container_image_name(self, container_id: str) -> str | None:
        try:
            with self._call(f"GET /containers/{container_id}/json"):
                raw = self._reads.inspect_container(container_id)
        except ImageMissing:  # a 404: the container is gone
            return None
        config = raw.get("Config") if isinstance(raw, dict) else None
        return text(config.get("Image")) if isinstance(config, dict) else None

    def image_history(self, image_id: str) -> tuple[HistoryEntry, ...] | None:
        try:
            with self._call(f"GET /images/{image_id}/history"):
                raw = self._reads.history(image_id)
        except ImageMissing:
            return None
        return tuple(HistoryEntry(int(h.get("Size") or 0), str(h.get("CreatedBy") or "")) for h in raw or ())

    def disk_usage(self, known: KnownLayersSource | None = None) -> DiskUsageReport:
        """``GET /system/df``; while another disk usage request runs, asked again until the deadline.

        Podman's gives no layer total and no true shared sizes: there, they are sized from the layers
        (those ``known`` gives are not read again)."""
        if self.engine().is_podman:
            from reconciler.daemon.podman_disk_usage import PodmanDiskUsage

            disk: PodmanDiskUsage = self._shared.get("podman_disk") or self._shared.setdefault("podman_disk", PodmanDiskUsage())
            return disk.read(self, known)
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
                    return self._reads.df()
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
        from reconciler.daemon.build_cache_records import build_cache_from_df  # build_cache: only

        return build_cache_from_df(self._disk_usage_when_free())

    def events(self, since: float, until: float) -> EventWindow:
        if self.engine().is_podman:
            from reconciler.daemon.podman_events import podman_event_params, within

            # Podman drops part of a window asked with `until`: read its log to the end, cut here.
            with self._call("GET /events"):
                lines = list(self._reads.get_json_lines("/events", podman_event_params(since)))
            return EventWindow(within((event_from_api(raw) for raw in lines), since, until), kept=None)
        # With `until` set the daemon ends the stream, so this returns. Fractions of a second
        # matter: a whole-second `until` would leave out the events of the current second.
        # Each read waits at most the call's timeout: a hung daemon cannot hang us.
        # No filter: how many events come back, of any kind, tells whether the daemon's
        # buffer (its last 256) may have dropped some; at most 256 lines either way.
        params = {"since": f"{since:.9f}", "until": f"{until:.9f}"}
        with self._call("GET /events"):
            lines = list(self._reads.get_json_lines("/events", params))
        return EventWindow(tuple(event_from_api(raw) for raw in lines))

    def registry_digest(self, reference: str, auth_header: str | None) -> str | None:
        from reconciler.daemon.registry_api import RegistryLookups, on_this_machine  # pull: always

        timeout = self._deadline.bound(self._timeout)
        registry: RegistryLookups = self._shared.get("registry") or self._shared.setdefault("registry", RegistryLookups())
        if self.engine().is_podman:
            # Podman answers /distribution with 404: ask the registry's v2 API, with the pull's credentials.
            return registry.digest(reference, auth_header, timeout)
        if on_this_machine(self._address, self.identity().name):
            # One HEAD on a kept connection, where the daemon's /distribution costs it a ping, a HEAD and
            # a GET on new connections; whatever the registry will not say here, the daemon is asked.
            found = registry.digest(reference, auth_header, timeout)
            if found is not None:
                return found
        headers = {"X-Registry-Auth": auth_header} if auth_header else {}
        try:
            with self._call(f"GET /distribution/{reference}/json"):
                answer = self._reads.get_json(f"/distribution/{reference}/json", headers)
        except DaemonRefused:
            return None  # the registry cannot be asked: the planner then pulls, as pull: always promises
        digest = (answer.get("Descriptor") or {}).get("digest") if isinstance(answer, dict) else None
        return str(digest) if digest else None

    # --- changing -------------------------------------------------------------

    def prune_build_cache(self, record_id: str) -> BuildCachePruned:
        from reconciler.daemon.build_cache_records import prune_filter  # build_cache: only

        api = self._client()
        with self._call(f"POST /build/prune (record {record_id})"):
            raw = api.prune_builds(filters=prune_filter(record_id), all=True)
        found = raw if isinstance(raw, dict) else {}
        deleted = tuple(str(d) for d in found.get("CachesDeleted") or ())
        return BuildCachePruned(deleted, int(found.get("SpaceReclaimed") or 0))

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        api = self._client()
        with self._call(f"POST /images/{image_id}/tag"):
            api.tag(image_id, repository, tag)

    def delete(self, reference: str) -> tuple[str, ...]:
        with self._call(f"DELETE /images/{reference}"):
            # Never forced: force deletes images that stopped containers still need.
            answer = self._reads.remove_image(reference)
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
        import docker
        import requests

        api = self._client()
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
            response = api.post(
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
                raise_for_status(response)
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
        # Only source: build entries build: a manifest without them never imports local_builds.
        from reconciler.daemon.local_builds import cli_build, legacy_build

        remaining = self._left_for("POST /build", deadline)
        if request.buildkit:
            return cli_build(self._address, self._options.get("tls"), request, remaining, on_line)
        return legacy_build(self._client(), request, remaining, on_line)

    def load_image(self, archive: str, deadline: float, on_line: OutputLine) -> tuple[str, ...]:
        from reconciler.daemon.local_builds import load_archive  # source: load entries only

        return load_archive(self._client(), archive, self._left_for("POST /images/load", deadline), on_line)

    def _left_for(self, what: str, deadline: float) -> float:
        """``deadline`` cut to what is left of the host's; a BuildFailed when nothing is."""
        if self._deadline.passed:
            raise BuildFailed(f"{out_of_time(self._address, self._deadline)} ({what} was not sent).", lost=True)
        return self._deadline.bound(max(deadline, 0.001))

    # --- deadlines and errors -------------------------------------------------

    def _pull_timed_out(self, message: str) -> PullStreamFailed:
        """A pull out of time: the daemon's fault when it no longer answers even a ping (it hangs:
        every further call would wait its whole timeout), else the registry's slowness."""
        import requests

        if self._deadline.passed:
            return PullStreamFailed(f"{message}: {out_of_time(self._address, self._deadline)}", lost=True)
        try:
            self._client().get(self._url("/_ping"), timeout=self._deadline.bound(PING_TIMEOUT)).close()
        except requests.exceptions.RequestException:
            return PullStreamFailed(f"{message}, and the daemon no longer answers", lost=True)
        # Measured: Podman 4.3 stops a pull (and its own retries) when its stream closes; dockerd
        # 20.10 went on asking the registry after a pull cut before its answer began.
        # Not asked now when not known yet (a late daemon may not answer): then nothing is promised.
        podman = self._engine is not None and self._engine.is_podman
        return PullStreamFailed(message, timed_out=True, engine_stops=podman)

    def _check_deadline(self, what: str) -> None:
        if self._deadline.passed:
            raise HostTimedOut(f"{out_of_time(self._address, self._deadline)} ({what} was not sent).")

    def _url(self, path: str) -> str:
        api = self._client()
        return f"{api.base_url}/v{api.api_version}{path}"

    def _call(self, what: str) -> AbstractContextManager[None]:
        """One call: under the call timeout cut to the host's deadline (each session is one thread's)."""
        self._check_deadline(what)
        bound = self._deadline.bound(self._timeout)
        self._reads.timeout = bound
        if self._api is not None:
            self._api.timeout = bound
        return calling(self._address, what, self._deadline)

    @staticmethod
    def _calling(address: str, what: str, deadline: Deadline = NO_DEADLINE) -> AbstractContextManager[None]:
        """Map the failures of one call to our errors, naming the daemon (see :func:`engine_errors.calling`)."""
        return calling(address, what, deadline)


def _cut(response: Any) -> None:
    """End a streamed response now, from any thread: shut its socket down (a read blocked in
    another thread returns at once), then close it."""
    connection = getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        with suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)
    response.close()
