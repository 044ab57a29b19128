"""The one door to a daemon: what the rest of reconciler may ask of a Docker engine.

Everything here speaks the project's own records (:mod:`reconciler.model.inventory`)
and raises only :class:`~reconciler.errors.ReconcilerError` subclasses whose messages
name the daemon. :class:`~reconciler.daemon.docker_engine.DockerEngine` implements it (its
reads over the standard library, its writes and pulls through docker-py); the tests' fake
implements it in memory with Docker's own delete rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.errors import DaemonError, ExitCode
from reconciler.model.inventory import (
    ContainerRecord,
    EventWindow,
    HistoryEntry,
    ImageRecord,
    KnownLayers,
)

if TYPE_CHECKING:
    from reconciler.model.build_cache import BuildCacheRecord


@dataclass(frozen=True)
class DaemonIdentity:
    """Who a daemon is (``GET /info``): its engine ID, host name and data directory."""

    engine_id: str = ""
    name: str = ""
    root_dir: str = ""


@dataclass(frozen=True)
class ImageDetails:
    """One image as ``GET /images/{name}/json`` describes it; references as the daemon spells them."""

    id: str
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()
    size: int = 0
    layers: tuple[str, ...] = ()  # the diff ids of its layers, base first
    os: str = ""
    architecture: str = ""
    variant: str = ""


@dataclass(frozen=True)
class DiskUsageReport:
    """``GET /system/df`` for images: the layers' total and each image's shared bytes."""

    layers_size: int
    shared_sizes: Mapping[str, int] = field(default_factory=dict)  # image id -> shared bytes; -1 unknown
    layers_read: Mapping[str, KnownLayers] = field(default_factory=dict)  # read by this call (Podman), to keep


KnownLayersSource = Callable[[], Mapping[str, KnownLayers]]  # what earlier runs read, asked only when needed


@dataclass(frozen=True)
class BuildCachePruned:
    """What a build cache prune did: the records deleted and the bytes the daemon reclaimed."""

    deleted: tuple[str, ...] = ()
    reclaimed: int = 0


class DaemonRefused(DaemonError):
    """The daemon answered a request with an error; ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int | None, explanation: str) -> None:
        super().__init__(message)
        self.status = status
        self.explanation = explanation  # the daemon's own words, for step reports


class ImageConflict(DaemonRefused):
    """409 from an image delete: in use by a container, a parent, or referenced elsewhere."""


class ImageMissing(DaemonRefused):
    """404: no such image (a delete or tag of an image that went away)."""


class DiskUsageBusy(DaemonRefused):
    """``GET /system/df`` stayed refused because another disk usage request was running, for
    the whole of the call's deadline; trying again later may succeed."""

    exit_code = ExitCode.TEMPORARY_FAILURE


class PullStreamFailed(DaemonError):
    """One pull attempt failed: the daemon refused it or its stream reported an error.

    ``status`` is the HTTP status of a refused request; ``lost`` is True when the daemon
    itself stopped answering (no retry can help), ``timed_out`` when the deadline passed,
    ``broken`` when the stream broke off midway (worth another try); ``engine_stops`` when the
    engine is known to stop a pull whose stream we close (Podman; dockerd 20.10 may go on).
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        *,
        lost: bool = False,
        timed_out: bool = False,
        broken: bool = False,
        engine_stops: bool = False,
    ) -> None:
        super().__init__(message)
        self.engine_stops = engine_stops
        self.status = status
        self.lost = lost
        self.timed_out = timed_out
        self.broken = broken


class BuildFailed(DaemonError):
    """A build or load did not make its image: the builder's own error, or the deadline.

    ``lost`` is True when the daemon itself stopped answering, ``timed_out`` when the deadline passed.
    """

    def __init__(self, message: str, *, lost: bool = False, timed_out: bool = False) -> None:
        super().__init__(message)
        self.lost = lost
        self.timed_out = timed_out


@dataclass(frozen=True)
class BuildRequest:
    """One build: the context directory, the Dockerfile in it, the reference it tags, its labels."""

    context: str
    dockerfile: str
    tag: str  # name:tag
    labels: Mapping[str, str] = field(default_factory=dict)
    args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    buildkit: bool = False  # through the docker CLI (DOCKER_BUILDKIT=1 docker build)


ProgressChunk = Mapping[str, Any]  # one decoded line of a pull's progress stream
OutputLine = Callable[[str], None]  # one line of a build's or a load's output


class DockerHost(Protocol):
    """One daemon. Each call has its own deadline; none waits on a hung daemon for ever."""

    @property
    def address(self) -> str: ...

    def identity(self) -> DaemonIdentity: ...

    def list_images(self) -> tuple[ImageRecord, ...]: ...

    def list_containers(self) -> tuple[ContainerRecord, ...]: ...

    def inspect_image(self, name: str) -> ImageDetails | None:
        """The image ``name`` (a reference or an id) points at, or None when there is none."""
        ...

    def container_image_name(self, container_id: str) -> str | None:
        """The image reference the container was created from (``Config.Image``); None when it is gone."""
        ...

    def image_history(self, image_id: str) -> tuple[HistoryEntry, ...] | None:
        """Newest first, as the daemon lists it; None when the image is gone."""
        ...

    def disk_usage(self, known: KnownLayersSource | None = None) -> DiskUsageReport:
        """The layers' total and each image's shared bytes. Where they are sized from the images' layers
        (Podman), images ``known`` gives with their sizes are not read again; the rest is in ``layers_read``."""
        ...

    def build_cache(self) -> tuple[BuildCacheRecord, ...]:
        """BuildKit's cache records (``GET /system/df``'s ``BuildCache``), sorted by id."""
        ...

    def prune_build_cache(self, record_id: str) -> BuildCachePruned:
        """``POST /build/prune`` of exactly that record; BuildKit leaves a record in use alone."""
        ...

    def events(self, since: float, until: float) -> EventWindow:
        """Every event the daemon still holds from ``since`` to ``until``, oldest first, of any kind."""
        ...

    def registry_digest(self, reference: str, auth_header: str | None) -> str | None:
        """The digest the registry gives ``reference`` now, without pulling; None when it cannot say."""
        ...

    def tag(self, image_id: str, repository: str, tag: str) -> None: ...

    def delete(self, reference: str) -> tuple[str, ...]:
        """Remove one reference (never forced); the ids of the images the daemon deleted.

        Raises ImageConflict (409) when Docker refuses, ImageMissing when it is gone.
        """
        ...

    def pull(
        self,
        name: str,
        tag_or_digest: str,
        platform: str | None,
        auth_header: str | None,
        deadline: float,
        on_chunk: Callable[[ProgressChunk], None],
    ) -> None:
        """One ``POST /images/create`` read to its end within ``deadline`` seconds; raises PullStreamFailed."""
        ...

    def build_image(self, request: BuildRequest, deadline: float, on_line: OutputLine) -> str:
        """Build and tag ``request.tag`` within ``deadline`` seconds; the new image's id. Raises BuildFailed."""
        ...

    def load_image(self, archive: str, deadline: float, on_line: OutputLine) -> tuple[str, ...]:
        """``POST /images/load`` of a `docker save` archive (plain or gzip) within ``deadline`` seconds:
        the ids of the images it held. Raises BuildFailed."""
        ...

    def interrupt(self) -> None:
        """Cut the requests this connection has running (a pull's stream ends at once); safe from any thread."""
        ...

    def session(self) -> DockerHost:
        """Another connection to the same daemon, for another thread."""
        ...

    def close(self) -> None: ...
