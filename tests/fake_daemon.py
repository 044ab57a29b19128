"""An in-memory Docker daemon behind the DockerHost seam, with Docker's own image rules.

The delete rules follow moby's ``daemon/images/image_delete.go`` (classic image store,
``force=False, noprune=False``, which is all the reconciler ever sends); see
``../shared/DOCKER-FACTS.md``. References are stored canonical (``docker.io/library/app:1``)
and reported as Docker spells them (``app:1``), so ``parse_reference(t).canonical()``
gives back the stored key. Like ``GET /images/json?all=0``, listings leave out untagged
images that other images are built on, and carry no shared sizes (``disk_usage`` has them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import string
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.daemon.host import (
    BuildCachePruned,
    BuildFailed,
    BuildRequest,
    DaemonIdentity,
    DiskUsageReport,
    ImageConflict,
    ImageDetails,
    ImageMissing,
    KnownLayersSource,
    OutputLine,
    ProgressChunk,
    PullStreamFailed,
)
from reconciler.errors import DaemonUnavailable
from reconciler.model.build_cache import BuildCacheRecord
from reconciler.model.inventory import (
    ContainerRecord,
    DaemonEvent,
    EventWindow,
    HistoryEntry,
    ImageRecord,
    short_id,
)
from reconciler.model.reference import InvalidReference, Reference, parse_reference

Layers = tuple[tuple[str, int], ...]  # (diff id, bytes of that layer alone), base first


def sha(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def _layer_id(name: str) -> str:
    """A diff id: ``sha256:...`` as given, any other name hashed into one."""
    return name if name.startswith("sha256:") else sha("layer:" + name)


def _layers(given: Mapping[str, int] | None, size: int | None, own: str) -> Layers:
    if given is None:
        return ((_layer_id(own), 0 if size is None else size),)
    layers = tuple((_layer_id(name), bytes_) for name, bytes_ in given.items())
    if size is not None and size != sum(b for _, b in layers):
        raise ValueError(f"size {size} is not the sum of the layers' sizes {layers}")
    return layers


def _chain_ids(layers: Layers) -> list[tuple[str, int]]:
    """(chain id, size): a layer is the same layer only on the same base, as the layer store keys it."""
    chains: list[tuple[str, int]] = []
    for diff_id, size in layers:
        chains.append((diff_id if not chains else sha(f"{chains[-1][0]} {diff_id}"), size))
    return chains


@dataclass(frozen=True)
class FakeImage:
    """An image's content, in the fake registry or on the host."""

    id: str
    digest: str  # the manifest digest a registry serves it under
    layers: Layers
    created: int = 0
    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""

    @property
    def size(self) -> int:
        return sum(size for _, size in self.layers)


@dataclass
class _Local:
    content: FakeImage
    parent: str = ""
    labels: tuple[tuple[str, str], ...] = ()


@dataclass
class _Conflict:
    message: str
    hard: bool  # "cannot be forced": a child, a running container


@dataclass
class FakeDockerHost:
    """One daemon in memory. Every DockerHost method counts itself in ``calls`` and first
    raises when ``lost`` is set (the daemon stopped answering) or ``fail_calls`` names it."""

    address: str = "unix:///fake/docker.sock"
    registry: dict[str, FakeImage] = field(default_factory=dict)  # canonical reference -> content
    # Scripted pull failures by canonical reference: one error fails every attempt, a list one attempt each.
    fail_pulls: dict[str, PullStreamFailed | list[PullStreamFailed]] = field(default_factory=dict)
    fail_calls: dict[str, Exception] = field(default_factory=dict)  # method name -> error it raises
    before_delete: Callable[[str], None] | None = None  # runs first in every delete (a race happens here)
    lost: bool = False
    # Engine 20.10 pulls a single-platform image of another platform anyway (it only warns);
    # newer engines refuse with "no matching manifest". False: the 20.10 behaviour.
    refuses_other_platforms: bool = True
    calls: Counter[str] = field(default_factory=Counter)
    recorded_events: list[DaemonEvent] = field(default_factory=list)
    daemon_identity: DaemonIdentity = field(default_factory=lambda: DaemonIdentity("FAKE:ID", "fake", "/var/lib/docker"))
    clock: Callable[[], float] = time.time
    images: dict[str, _Local] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # canonical tag or digest reference -> image id
    containers: dict[str, ContainerRecord] = field(default_factory=dict)
    cache_records: dict[str, BuildCacheRecord] = field(default_factory=dict)  # BuildKit's, by id
    fail_builds: dict[str, str] = field(default_factory=dict)  # canonical tag -> the builder's error
    builds: list[BuildRequest] = field(default_factory=list)  # every build asked for, in order
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _seeds: Iterator[int] = field(default_factory=itertools.count, repr=False)

    # --- building a host -----------------------------------------------------------

    def add_image(
        self, tags: Sequence[str] = (), digests: Sequence[str] = (), *, image_id: str | None = None, created: int = 0,
        size: int | None = None, parent: str = "", layers: Mapping[str, int] | None = None, os: str = "linux",
        architecture: str = "amd64", labels: Mapping[str, str] | None = None,
    ) -> str:
        """A local image (with ``labels``); returns its id. ``layers`` (name -> bytes) are its own, on top of
        ``parent``'s; without them it has one layer of ``size`` bytes of its own. A tag that
        points elsewhere moves here, as ``docker tag`` moves it."""
        image_id = image_id or sha(f"image:{next(self._seeds)}")
        below = self.images[parent].content.layers if parent else ()
        own = _layers(layers, size, f"own:{image_id}")
        content = FakeImage(image_id, sha("manifest:" + image_id), below + own, created, os, architecture)
        self.images[image_id] = _Local(content, parent, tuple(sorted((labels or {}).items())))
        for text in (*tags, *digests):
            self.refs[parse_reference(text).canonical()] = image_id
        return image_id

    def add_container(self, image: str, name: str | None = None, state: str = "running") -> ContainerRecord:
        """A container of ``image`` (an id or a reference); ``state`` running, exited, created."""
        image_id = self._resolve(image)
        assert image_id is not None, f"no image {image}"
        number = next(self._seeds)
        record = ContainerRecord(sha(f"container:{number}")[7:], name or f"c{number}", image_id, state, image_name=image)
        self.containers[record.id] = record
        for action in ("create", "start") if state == "running" else ("create",):
            self._event("container", action, record.id, {"image": image, "name": record.name}, image)
        return record

    def remove_container(self, name_or_id: str) -> None:
        gone = [c.id for c in self.containers.values() if name_or_id in (c.id, c.name)]
        assert gone, f"no container {name_or_id}"
        del self.containers[gone[0]]

    def add_to_registry(
        self, ref: str, image: FakeImage | None = None, *, size: int = 100, layers: Mapping[str, int] | None = None,
        created: int = 0, image_id: str | None = None, os: str = "linux", architecture: str = "amd64",
    ) -> FakeImage:
        """Serve ``image`` (new content unless given) as ``ref`` and as ``name@its digest``."""
        if image is None:
            image_id = image_id or sha(f"registry:{ref}")
            own = _layers(layers, None if layers else size, f"own:{image_id}")
            image = FakeImage(image_id, sha("manifest:" + image_id), own, created, os, architecture)
        parsed = parse_reference(ref)
        self.registry[parsed.canonical()] = image
        self.registry[parsed.repository().with_digest(image.digest).canonical()] = image
        return image

    # --- reading -------------------------------------------------------------------

    def identity(self) -> DaemonIdentity:
        self._enter("identity")
        return self.daemon_identity

    def list_images(self) -> tuple[ImageRecord, ...]:
        """``GET /images/json?all=0``: an untagged image others are built on is left out."""
        self._enter("list_images")
        found = []
        with self._lock:
            for image_id, local in self.images.items():
                refs = self._refs_of(image_id)
                if refs or not self._children(image_id):
                    tags, digests = _split(refs)
                    found.append(ImageRecord(image_id, tags, digests, local.content.created, local.content.size,
                                             parent_id=local.parent, labels=local.labels))
        return tuple(found)

    def list_containers(self) -> tuple[ContainerRecord, ...]:
        """As Docker lists them: ``Image`` is the name created from while it still points at the
        container's image, else the image id."""
        self._enter("list_containers")
        with self._lock:
            return tuple(
                c if self._resolve(c.image_name) == c.image_id else dataclasses.replace(c, image_name=c.image_id)
                for c in self.containers.values()
            )

    def container_image_name(self, container_id: str) -> str | None:
        self._enter("container_image_name")
        found = self.containers.get(container_id)
        return found.image_name if found else None

    def inspect_image(self, name: str) -> ImageDetails | None:
        """By tag, digest reference, full id or an id prefix only one image has."""
        self._enter("inspect_image")
        with self._lock:
            image_id = self._resolve(name)
            if image_id is None:
                return None
            content, (tags, digests) = self.images[image_id].content, _split(self._refs_of(image_id))
            return ImageDetails(
                image_id, tuple(t.familiar() for t in tags), tuple(d.familiar() for d in digests), content.size,
                tuple(diff_id for diff_id, _ in content.layers), content.os, content.architecture, content.variant,
            )

    def image_history(self, image_id: str) -> tuple[HistoryEntry, ...] | None:
        """Newest first: one entry per layer, under a CMD that made none."""
        self._enter("image_history")
        found = self._resolve(image_id)
        if found is None:
            return None
        made = [HistoryEntry(size, f"/bin/sh -c #layer {d[7:19]}") for d, size in self.images[found].content.layers]
        return (HistoryEntry(0, '/bin/sh -c #(nop)  CMD ["sh"]'), *reversed(made))

    def disk_usage(self, known: KnownLayersSource | None = None) -> DiskUsageReport:
        """``GET /system/df``: distinct layers (by chain id) once; per image, its layers others use too."""
        self._enter("disk_usage")
        with self._lock:
            chains = {i: _chain_ids(local.content.layers) for i, local in self.images.items()}
            users = Counter(chain for found in chains.values() for chain, _ in set(found))
            sizes = dict(pair for found in chains.values() for pair in found)
            shared = {i: sum(s for c, s in found if users[c] > 1) for i, found in chains.items()}
            return DiskUsageReport(layers_size=sum(sizes.values()), shared_sizes=shared)

    def build_cache(self) -> tuple[BuildCacheRecord, ...]:
        self._enter("build_cache")
        return tuple(sorted(self.cache_records.values(), key=lambda r: r.id))

    def prune_build_cache(self, record_id: str) -> BuildCachePruned:
        """As BuildKit prunes: a record a build uses stays."""
        self._enter("prune_build_cache")
        found = self.cache_records.get(record_id)
        if found is None or found.in_use:
            return BuildCachePruned()
        del self.cache_records[record_id]
        return BuildCachePruned((record_id,), found.size)

    def events(self, since: float, until: float) -> EventWindow:
        self._enter("events")
        return EventWindow(tuple(e for e in self.recorded_events if since < e.time <= until))

    def registry_digest(self, reference: str, auth_header: str | None) -> str | None:
        self._enter("registry_digest")
        found = self.registry.get(parse_reference(reference).canonical())
        return found.digest if found else None

    # --- changing ------------------------------------------------------------------

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        """``docker tag``: the tag moves; an image it leaves with no reference stays, dangling."""
        self._enter("tag")
        with self._lock:
            found = self._resolve(image_id)
            if found is None:
                raise self._missing(f"POST /images/{image_id}/tag", image_id)
            ref = parse_reference(f"{repository}:{tag}")
            self.refs[ref.canonical()] = found
            self._event("image", "tag", found, {"name": ref.familiar()})

    def delete(self, reference: str) -> tuple[str, ...]:
        """``DELETE /images/{reference}`` without force; the ids of the images deleted.

        By tag or digest reference, only that reference goes, except that the last tag of a
        repository takes that repository's digest references along; the image goes with its
        last reference. 409 and no change when a container uses the image and its references
        are "one reference" (one repository, at most one tag; moby's isSingleReference), which
        the last one always is. An image others are built on stays, untagged.

        By id (or id prefix): all references go with it, but 409 unless they are one reference,
        and 409 for a child image or a container. Parents left with no reference, no child
        and no container are deleted after the image (``noprune=False``).
        """
        self._enter("delete")
        if self.before_delete is not None:
            self.before_delete(reference)
        self._alive("delete")
        what = f"DELETE /images/{reference}"
        with self._lock:
            image_id = self._resolve(reference)
            if image_id is None:
                raise self._missing(what, reference)
            refs = self._refs_of(image_id)
            if not _is_id_prefix(image_id, reference):
                ref = parse_reference(reference)
                user = next((c for c in self.containers.values() if c.image_id == image_id), None)
                if user is not None and _is_single_reference(refs):
                    raise self._conflict(
                        what,
                        f'conflict: unable to remove repository reference "{reference}" (must force) - container '
                        f"{user.id[:12]} is using its referenced image {short_id(image_id)}",
                    )
                del self.refs[ref.canonical()]
                left = self._refs_of(image_id)
                if ref.digest is None and not any(r.name == ref.name and r.digest is None for r in left):
                    for other in left:
                        if other.name == ref.name:
                            del self.refs[other.canonical()]
                if self._refs_of(image_id):
                    return ()
                return tuple(self._delete_image(image_id, what, quiet=True))
            if _is_single_reference(refs):
                conflict = self._conflict_of(image_id, references=False)
                if conflict:
                    raise self._conflict(what, _conflict_text(image_id, conflict))
                for r in refs:
                    del self.refs[r.canonical()]
            return tuple(self._delete_image(image_id, what, quiet=False))

    def pull(
        self,
        name: str,
        tag_or_digest: str,
        platform: str | None,
        auth_header: str | None,
        deadline: float,
        on_chunk: Callable[[ProgressChunk], None],
    ) -> None:
        """Served from ``registry``: the tag (moved here) and ``name@digest`` land on its image."""
        self._enter("pull")
        separator = "@" if ":" in tag_or_digest else ":"
        ref = parse_reference(f"{name}{separator}{tag_or_digest}")
        key = ref.canonical()
        scripted = self.fail_pulls.get(key)
        if isinstance(scripted, list):
            if scripted:
                raise scripted.pop(0)
        elif scripted is not None:
            raise scripted
        content = self.registry.get(key)
        if content is None:
            raise PullStreamFailed(f"manifest unknown: manifest for {ref.familiar()} not found")
        wanted = f"{content.os}/{content.architecture}" + (f"/{content.variant}" if content.variant else "")
        if platform and not wanted.startswith(platform) and self.refuses_other_platforms:
            raise PullStreamFailed(f"no matching manifest for {platform} in the manifest list entries")
        on_chunk({"status": f"Pulling from {ref.path}", "id": ref.tag or ref.digest})
        with self._lock:
            here = {diff_id for local in self.images.values() for diff_id, _ in local.content.layers}
        for diff_id, size in content.layers:
            if diff_id in here:  # as dockerd says of a layer it has
                on_chunk({"status": "Already exists", "id": diff_id[7:19], "progressDetail": {}})
                continue
            on_chunk({"status": "Downloading", "id": diff_id[7:19], "progressDetail": {"current": size, "total": size}})
            on_chunk({"status": "Pull complete", "id": diff_id[7:19], "progressDetail": {}})
        on_chunk({"status": f"Digest: {content.digest}"})
        with self._lock:
            self.images.setdefault(content.id, _Local(content))
            self.refs[ref.repository().with_digest(content.digest).canonical()] = content.id
            if ref.digest is None:
                self.refs[key] = content.id
        self._event("image", "pull", ref.familiar(), {"name": ref.familiar()})

    def build_image(self, request: BuildRequest, deadline: float, on_line: OutputLine) -> str:
        """A new image of the request's labels and context (its files' contents), tagged; a failure
        scripted in ``fail_builds`` tags nothing."""
        self._enter("build_image")
        self.builds.append(request)
        ref = parse_reference(request.tag)
        on_line(f"Step 1/1 : FROM scratch ({request.context})")
        if ref.canonical() in self.fail_builds:
            raise BuildFailed(self.fail_builds[ref.canonical()])
        image_id = sha(f"build:{request.tag}:{sorted(request.labels.items())}:{sorted(request.args.items())}")
        labels = tuple(sorted(request.labels.items()))
        with self._lock:
            content = FakeImage(image_id, sha("manifest:" + image_id), _layers(None, 10, f"own:{image_id}"), int(self.clock()))
            self.images.setdefault(image_id, _Local(content, labels=labels))
            self.refs[ref.canonical()] = image_id
        self._event("image", "tag", image_id, {"name": ref.familiar()})
        return image_id

    def load_image(self, archive: str, deadline: float, on_line: OutputLine) -> tuple[str, ...]:
        """One image whose id comes from the archive's bytes; no tag, as an archive saved by id."""
        self._enter("load_image")
        with open(archive, "rb") as handle:
            image_id = sha("load:" + hashlib.sha256(handle.read()).hexdigest())
        with self._lock:
            content = FakeImage(image_id, sha("manifest:" + image_id), _layers(None, 10, f"own:{image_id}"), 0)
            self.images.setdefault(image_id, _Local(content))
        on_line(f"Loaded image ID: {image_id}")
        return (image_id,)

    def session(self) -> FakeDockerHost:
        """The same daemon: the state (and ``calls``) are shared, so a session is this host."""
        self._enter("session")
        return self

    def interrupt(self) -> None:
        """Pulls here end at once anyway; only counted, so a test can see the executor asked."""
        self.calls["interrupt"] += 1

    def close(self) -> None:
        self.calls["close"] += 1

    # --- the rules ---------------------------------------------------------------

    def _delete_image(self, image_id: str, what: str, quiet: bool) -> list[str]:
        """moby's imageDeleteHelper. ``quiet`` (the last reference went, or a parent is pruned):
        a conflict keeps the image silently, as Docker keeps an untagged parent of children."""
        conflict = self._conflict_of(image_id, references=True)
        if conflict:
            if quiet:
                return []
            raise self._conflict(what, _conflict_text(image_id, conflict))
        for r in self._refs_of(image_id):
            del self.refs[r.canonical()]
        parent = self.images.pop(image_id).parent
        if parent and parent in self.images:
            return [image_id, *self._delete_image(parent, what, quiet=True)]
        return [image_id]

    def _conflict_of(self, image_id: str, references: bool) -> _Conflict | None:
        """moby's checkImageDeleteConflict, in its order: children, running, references, stopped."""
        running = [c for c in self.containers.values() if c.image_id == image_id and c.state == "running"]
        stopped = [c for c in self.containers.values() if c.image_id == image_id and c.state != "running"]
        if self._children(image_id):
            return _Conflict("image has dependent child images", hard=True)
        if running:
            return _Conflict(f"image is being used by running container {running[0].id[:12]}", hard=True)
        if references and self._refs_of(image_id):
            return _Conflict("image is referenced in multiple repositories", hard=False)
        if stopped:
            return _Conflict(f"image is being used by stopped container {stopped[0].id[:12]}", hard=False)
        return None

    def _resolve(self, name: str) -> str | None:
        """moby's GetImage: a full id, else a reference in the store, else an unambiguous id prefix."""
        hex_part = name.removeprefix("sha256:")
        if len(hex_part) == 64 and set(hex_part) <= set(string.hexdigits):
            return "sha256:" + hex_part if "sha256:" + hex_part in self.images else None
        try:
            ref: Reference | None = parse_reference(name)
        except InvalidReference:
            ref = None
        if ref is not None and ref.canonical() in self.refs:
            return self.refs[ref.canonical()]
        if not hex_part or not set(hex_part) <= set(string.hexdigits.lower()):
            return None
        found = [i for i in self.images if i[7:].startswith(hex_part)]
        return found[0] if len(found) == 1 else None

    def _refs_of(self, image_id: str) -> tuple[Reference, ...]:
        return tuple(sorted((parse_reference(k) for k, i in self.refs.items() if i == image_id), key=Reference.canonical))

    def _children(self, image_id: str) -> list[str]:
        return [i for i, local in self.images.items() if local.parent == image_id]

    def _enter(self, method: str) -> None:
        with self._lock:
            self.calls[method] += 1
        if method != "delete":  # delete runs its before_delete hook first
            self._alive(method)

    def _alive(self, method: str) -> None:
        if method in self.fail_calls:
            raise self.fail_calls[method]
        if self.lost and method == "pull":
            raise PullStreamFailed("lost the connection to the daemon: connection refused", lost=True)
        if self.lost:
            raise DaemonUnavailable(f"Cannot reach the Docker daemon at {self.address} (connection refused).")

    def _event(self, kind: str, action: str, actor: str, attributes: dict[str, str], source: str = "") -> None:
        self.recorded_events.append(DaemonEvent(kind, action, actor, attributes, self.clock(), source))

    def _missing(self, what: str, name: str) -> ImageMissing:
        explanation = f"No such image: {name}"
        return ImageMissing(f"The Docker daemon at {self.address} refused {what}: {explanation}", 404, explanation)

    def _conflict(self, what: str, explanation: str) -> ImageConflict:
        return ImageConflict(f"The Docker daemon at {self.address} refused {what}: {explanation}", 409, explanation)


def _conflict_text(image_id: str, conflict: _Conflict) -> str:
    forced = "cannot be forced" if conflict.hard else "must be forced"
    return f"conflict: unable to delete {short_id(image_id)} ({forced}) - {conflict.message}"


def _split(refs: Sequence[Reference]) -> tuple[tuple[Reference, ...], tuple[Reference, ...]]:
    """(tags, digest references)."""
    return tuple(r for r in refs if r.digest is None), tuple(r for r in refs if r.digest is not None)


def _is_id_prefix(image_id: str, text: str) -> bool:
    """moby's isImageIDPrefix: the name given is (a prefix of) the id, not a reference."""
    return image_id.startswith(text) or image_id.partition(":")[2].startswith(text)


def _is_single_reference(refs: Sequence[Reference]) -> bool:
    """moby's isSingleReference: at most one tag, and every reference in that one repository."""
    if len(refs) <= 1:
        return len(refs) == 1
    single: Reference | None = None
    digest_names = set()
    for ref in refs:
        if ref.digest is not None:
            digest_names.add(ref.name)
        elif single is None:
            single = ref
        else:
            return False
    return len(digest_names) == 1 and (single or refs[0]).name in digest_names
