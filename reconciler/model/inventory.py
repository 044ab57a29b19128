"""What the daemon has: images and containers, as plain frozen data.

Built by :mod:`reconciler.daemon.api_records` from a handful of list calls; read by
the planner. Every reference in here is parsed and normalised (a listed image's tags and
digests when first read), so it compares equal to the same reference written in a manifest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Generic, TypeVar, overload

from reconciler.model.derived import derived
from reconciler.model.reference import Reference


def short_id(image_id: str) -> str:
    """An image id as `docker image ls` shows it: its first 12 hex digits."""
    return image_id.removeprefix("sha256:")[:12]


_Value = TypeVar("_Value")


class _ParsedOnUse(Generic[_Value]):
    """A field of :class:`ImageRecord` that a record read from an image list makes on first use:
    its tags, digests and labels. A plan on a large host mostly reads no more of an image than its
    id and the texts of its tags (:attr:`ImageRecord.tag_texts`); parsing the rest for every image
    was half the cost of reading the list. Such a record keeps, in ``_unparsed``, a function and the
    daemon's values it makes those fields of, all at once; any other record is given them by
    ``__init__``, as plain fields. Two threads that race here make the same values alike."""

    def __init__(self, default: _Value) -> None:
        self.default = default

    def __set_name__(self, owner: type[object], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type[object]) -> _Value: ...

    @overload
    def __get__(self, instance: object, owner: type[object]) -> _Value: ...

    def __get__(self, instance: object | None, owner: type[object]) -> _Value:
        if instance is None:
            return self.default  # the field's default, as dataclasses asks for it
        # Only asked while the instance's __dict__ lacks the field: this is a non-data descriptor.
        fields = instance.__dict__
        parse, *listed = fields["_unparsed"]
        fields.update(parse(*listed))
        return fields[self.name]  # type: ignore[no-any-return]

    if TYPE_CHECKING:  # the type __init__ takes; at run time no __set__, so a value in the instance's
        # __dict__ is found without calling __get__ (retention reads tags a million times)
        def __set__(self, instance: object, value: _Value) -> None: ...


@dataclass(frozen=True)
class ImageRecord:
    id: str  # "sha256:<64 hex>"
    tags: _ParsedOnUse[tuple[Reference, ...]] = _ParsedOnUse(())  # name:tag references
    digests: _ParsedOnUse[tuple[Reference, ...]] = _ParsedOnUse(())  # name@digest references (RepoDigests)
    created: int = 0  # build time, seconds since the epoch
    size: int = 0  # total size, shared layers included
    shared_size: int | None = None  # bytes of layers other images use too; None if not read
    parent_id: str = ""  # the image this one was built on locally (classic builder); "" if none
    # The image's labels (``Labels`` of the image list), sorted by key.
    labels: _ParsedOnUse[tuple[tuple[str, str], ...]] = _ParsedOnUse(())

    @derived
    def tag_texts(self) -> tuple[str, ...]:
        """The tags as the daemon listed them (a record read from an image list keeps its texts;
        any other, their full forms: a familiar one may read as another registry's). A text among
        a reference's ``listed_forms`` is that reference: so a plan knows a declared tag unparsed."""
        return tuple(tag.canonical() for tag in self.tags)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def unique_size(self) -> int | None:
        """Bytes a removal of this image alone would free; None when unknown."""
        if self.shared_size is None or self.shared_size < 0:
            return None
        return max(self.size - self.shared_size, 0)

    @property
    def short_id(self) -> str:
        return short_id(self.id)

    @property
    def is_dangling(self) -> bool:
        """Docker's meaning: the image has no tag (it may still have digest references)."""
        return not self.tags


@dataclass(frozen=True)
class ContainerRecord:
    id: str
    name: str
    image_id: str
    state: str = ""  # running, exited, created, ...
    created: int = 0  # when the container was created, seconds since the epoch; 0 if unknown
    # What it was created from (``docker run NAME``) as the container list gives it: the daemon
    # gives the image id instead once that name points at another image; then Config.Image has it.
    image_name: str = ""

    @property
    def short_id(self) -> str:
        return self.id[:12]


@dataclass(frozen=True)
class HistoryEntry:
    """One line of ``docker history``: the bytes it added and the command that made it."""

    size: int
    created_by: str


@dataclass(frozen=True)
class DaemonEvent:
    """One ``GET /events`` entry: type, action, the actor's id and attributes, the time."""

    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str]
    time: float  # seconds since the epoch, with the fraction the daemon gives
    source: str = ""  # ``from``: the image a container event names


@dataclass(frozen=True)
class KnownLayers:
    """An image's layer diff ids, base first, and each layer's own size (None: not read yet).
    An image id's layers never change, so what was read of an id holds for ever."""

    diff_ids: tuple[str, ...]
    sizes: tuple[int, ...] | None = None


DOCKER_EVENTS_KEPT = 256  # moby keeps this many events in memory (its eventsLimit), none across a restart


@dataclass(frozen=True)
class EventWindow:
    """The daemon's events from one time to another, oldest first, and how the daemon keeps them:
    ``kept`` is how many it holds (Docker's last 256, in memory); None for a log on disk (Podman's)."""

    events: tuple[DaemonEvent, ...] = ()
    kept: int | None = DOCKER_EVENTS_KEPT


@dataclass(frozen=True)
class Inventory:
    images: tuple[ImageRecord, ...] = ()
    containers: tuple[ContainerRecord, ...] = ()
    # Registry digests of tags whose policy is ``pull: always``, keyed by canonical reference.
    remote_digests: Mapping[str, str] = field(default_factory=dict)
    host: str = ""
    # When the lists were asked for (time.monotonic(); None: not read by this process), and the bytes
    # of all image layers from the /system/df that gave the shared sizes (None: not read). An apply's
    # first removals take them instead of reading the same again (execution/executor).
    listed_at: float | None = field(default=None, compare=False)
    layers_size: int | None = field(default=None, compare=False)

    def image_with_tag(self, ref: Reference) -> ImageRecord | None:
        """The image the tag ``ref`` points at, or None. Found by the text the daemon lists it as
        when that is one of its ``listed_forms``; any other text is parsed, all of them once, on
        the first tag not found so."""
        by_text = self.image_by_tag_text
        for text in ref.listed_forms:
            image = by_text.get(text)
            if image is not None:
                return image
        return self.image_by_tag.get(ref.canonical())

    @cached_property
    def image_by_tag_text(self) -> dict[str, ImageRecord]:
        """Each tag's text as listed (:attr:`ImageRecord.tag_texts`) -> image."""
        return {text: image for image in self.images for text in image.tag_texts}

    @cached_property
    def image_by_tag(self) -> dict[str, ImageRecord]:
        """Canonical ``name:tag`` -> image: every tag parsed (:meth:`image_with_tag` parses none
        of the declared ones)."""
        return {ref.canonical(): image for image in self.images for ref in image.tags}

    @cached_property
    def image_by_digest(self) -> dict[str, ImageRecord]:
        """Canonical ``name@digest`` -> image."""
        return {ref.canonical(): image for image in self.images for ref in image.digests}

    @cached_property
    def image_by_id(self) -> dict[str, ImageRecord]:
        return {image.id: image for image in self.images}

    @cached_property
    def containers_by_image(self) -> dict[str, tuple[ContainerRecord, ...]]:
        users: dict[str, list[ContainerRecord]] = {}
        for container in self.containers:
            users.setdefault(container.image_id, []).append(container)
        return {image_id: tuple(sorted(found, key=lambda c: c.name)) for image_id, found in users.items()}

    def with_shared_sizes(self, shared: Mapping[str, int], layers_size: int | None = None) -> Inventory:
        """This inventory with each image's shared bytes from ``shared`` (by id; -1: unknown), and the
        bytes of all image layers from the same answer."""
        images = tuple(
            dataclasses.replace(image, shared_size=shared[image.id])
            if shared.get(image.id, -1) >= 0
            else image
            for image in self.images
        )
        return dataclasses.replace(self, images=images, layers_size=layers_size)

    def depth_of(self, image_id: str) -> int:
        """How many listed images this one is built on: children sort after their parents."""
        image = self.image_by_id.get(image_id)
        parent = image.parent_id if image is not None else ""
        if parent not in self.image_by_id:
            return 0  # the common case: built on no listed image
        depth, seen = 0, {image_id}
        while parent in self.image_by_id and parent not in seen:
            depth, seen = depth + 1, seen | {parent}
            parent = self.image_by_id[parent].parent_id
        return depth

    def users_of(self, image_id: str) -> tuple[ContainerRecord, ...]:
        return self.containers_by_image.get(image_id, ())
