"""Usage facts: when each image arrived and was last used, and which images each tag pointed at. Pure data.

Facts come from each run's own look at the host (every image listed, every container and
the image it uses, where declared tags point), from the daemon's events (container
create/start, image pull/tag/load/import/delete), and from an apply's own pulls and tags;
:mod:`reconciler.state.usage_store` keeps them per daemon so that ``min_age`` counts from
an image's arrival, the disk budget evicts the least recently used image and
``keep_previous`` finds the image a moved tag left behind.

Every arrival fact is a time at which the image was certainly on the host, so the earliest
of them bounds its real arrival from above: an image is never taken to be older on the host
than it is. A departure (a ``delete`` event, a run that did not find the image, an apply
that removed it) voids what was known before it: an image deleted and pulled again arrives anew.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.model.inventory import (
    DOCKER_EVENTS_KEPT,
    DaemonEvent,
    EventWindow,
    ImageRecord,
    Inventory,
)
from reconciler.model.reference import InvalidReference, parse_reference, tag_key

HISTORY_PER_TAG = 20  # keep_previous rarely asks for more than a few
EVENTS_LIMIT = DOCKER_EVENTS_KEPT
# The events usage learns from; the daemon's other events only count towards its buffer.
USAGE_EVENTS = frozenset(
    {
        ("container", "create"),
        ("container", "start"),
        ("image", "pull"),
        ("image", "tag"),
        ("image", "load"),
        ("image", "import"),
        ("image", "delete"),
    }
)
# Events that can move a tag: a pull or tag names it; a load names none, so it may have moved any
# tag onto the image it loaded (that image's id is what it names).
_MOVES = frozenset({"pull", "tag", "load", "import"})


@dataclass(frozen=True)
class EventMark:
    """One daemon event, enough to find it again: the newest event a run saw (its anchor)."""

    time: float
    type: str
    action: str
    actor_id: str

    @staticmethod
    def of(event: DaemonEvent) -> EventMark:
        return EventMark(event.time, event.type, event.action, event.actor_id)

    def found_in(self, events: Iterable[DaemonEvent]) -> bool:
        # Times travel as floats: the same event read twice may differ in its last digits.
        return any(
            (e.type, e.action, e.actor_id) == (self.type, self.action, self.actor_id) and abs(e.time - self.time) < 1e-3
            for e in events
        )


@dataclass(frozen=True)
class UsageState:
    """What the state file knows about one daemon."""

    last_used: Mapping[str, float] = field(default_factory=dict)  # image id -> time
    tag_images: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # tag -> ids, newest first
    events_until: float | None = None  # events up to this time are already counted
    arrived: Mapping[str, float] = field(default_factory=dict)  # image id -> when it arrived on the host
    anchor: EventMark | None = None  # the newest event the last run saw, to tell a gap in the events

    def folded(self, *facts: UsageFacts) -> UsageState:
        """This state with ``facts`` added in memory, as :func:`record_usage` would store them."""
        history = {tag: list(ids) for tag, ids in self.tag_images.items()}
        for fact in facts:
            for tag, image_id, _ in fact.tags:
                ids = history.setdefault(tag, [])
                if ids and ids[0] == image_id:
                    continue
                if image_id in ids:
                    ids.remove(image_id)
                ids.insert(0, image_id)
        return UsageState(
            merged_last_used(self, *facts),
            {tag: tuple(ids[:HISTORY_PER_TAG]) for tag, ids in history.items()},
            self.events_until,
            merged_arrivals(self.arrived, *facts),
            self.anchor,
        )

    def previous(self, inventory: Inventory) -> dict[str, tuple[str, ...]]:
        """Tag -> the ids it pointed at before the one it points at now, newest first."""
        found = {}
        for tag, ids in self.tag_images.items():
            current = inventory.image_by_tag.get(tag)
            older = tuple(i for i in ids if current is None or i != current.id)
            if older:
                found[tag] = older
        return found


@dataclass(frozen=True)
class UsageFacts:
    """New facts to fold into the state: uses, tags seen pointing at images, arrivals and departures."""

    uses: Mapping[str, float] = field(default_factory=dict)  # image id -> time of use (latest wins)
    tags: tuple[tuple[str, str, float], ...] = ()  # (canonical tag, image id, time), oldest first
    arrivals: Mapping[str, float] = field(default_factory=dict)  # image id -> a time it was on the host
    departures: Mapping[str, float] = field(default_factory=dict)  # image id -> a time it left the host


def facts_from_events(events: Iterable[DaemonEvent], inventory: Inventory) -> UsageFacts:
    """What the daemon's events say about the images on the host now.

    An event that carries an image id (tag, load, import, delete, a container of the host's)
    is taken at its word. A pull, or a container event naming its image by reference, is
    resolved to the image the tag points at now only when no later event of the same
    batch may have moved the tag, and never to an image created after the event.
    """
    ordered = sorted((e for e in events if (e.type, e.action) in USAGE_EVENTS), key=lambda e: e.time)
    moved = _last_moves(ordered)
    uses: dict[str, float] = {}
    arrivals: dict[str, float] = {}
    departures: dict[str, float] = {}
    tags: list[tuple[str, str, float]] = []
    containers = {c.id: c.image_id for c in inventory.containers}
    for event in ordered:
        when = event.time
        exact: str | None = None  # an image id the event itself gives
        if event.type == "container":
            exact = containers.get(event.actor_id) or _by_id(inventory, event.attributes.get("image") or event.source)
            image_id = exact or _resolve_at(inventory, event.attributes.get("image") or event.source, when, moved)
        elif event.action == "delete":
            if found := _as_id(event.actor_id):
                departures[found] = max(when, departures.get(found, when))
            continue
        elif event.action == "pull":
            image_id = _resolve_at(inventory, event.actor_id, when, moved)
            if image_id and (tag := tag_key(event.actor_id)):
                tags.append((tag, image_id, when))
        else:  # tag, load, import: the actor is the image
            image_id = exact = _by_id(inventory, event.actor_id)
            tag = tag_key(event.attributes.get("name", "")) if event.action == "tag" else None
            if image_id and tag:
                tags.append((tag, image_id, when))
        if image_id and (event.type == "container" or event.action in ("pull", "tag")):
            uses[image_id] = max(when, uses.get(image_id, when))
        # A pull resolved as above made the image arrive at the latest then; a guess by name does not.
        arrived = exact if event.type == "container" else image_id
        if arrived:
            arrivals[arrived] = min(when, arrivals.get(arrived, when))
    return UsageFacts(uses, tuple(tags), arrivals, departures)


def sighting_facts(inventory: Inventory, known: Mapping[str, float], now: float) -> UsageFacts:
    """What this run sees itself, and cannot lose with the daemon's events.

    Every image listed is on the host now (an image seen the first time arrives now; the
    earliest arrival wins); one the state knew that is not listed has left. Every image a
    container uses counts as used now, and was on the host when that container was created.
    """
    present = inventory.image_by_id
    arrivals = {image_id: now for image_id in present}
    for container in inventory.containers:
        if container.image_id in present and 0 < container.created < now:
            arrivals[container.image_id] = min(container.created, arrivals[container.image_id])
    uses = {c.image_id: now for c in inventory.containers if c.image_id in present}
    departures = {image_id: now for image_id in known if image_id not in present}
    return UsageFacts(uses=uses, arrivals=arrivals, departures=departures)


def snapshot_facts(inventory: Inventory, tags: Iterable[str], now: float) -> UsageFacts:
    """Where each of ``tags`` (canonical) points on the host now."""
    found = []
    for tag in sorted(set(tags)):
        image = inventory.image_by_tag.get(tag)
        if image is not None:
            found.append((tag, image.id, now))
    return UsageFacts(tags=tuple(found))


def merged_last_used(state: UsageState, *facts: UsageFacts) -> dict[str, float]:
    """The state's last-use times updated by ``facts`` (latest wins)."""
    merged = dict(state.last_used)
    for fact in facts:
        for image_id, when in fact.uses.items():
            merged[image_id] = max(when, merged.get(image_id, when))
    return merged


def merged_arrivals(arrived: Mapping[str, float], *facts: UsageFacts) -> dict[str, float]:
    """Arrival times updated by ``facts``: the earliest time an image was seen since it last left."""
    left: dict[str, float] = {}
    for fact in facts:
        for image_id, when in fact.departures.items():
            left[image_id] = max(when, left.get(image_id, when))
    merged = {image_id: when for image_id, when in arrived.items() if image_id not in left or when > left[image_id]}
    for fact in facts:
        for image_id, when in fact.arrivals.items():
            if image_id in left and when <= left[image_id]:
                continue  # it was here then, but has left and come back since
            merged[image_id] = min(when, merged.get(image_id, when))
    return merged


def event_gap(state: UsageState, window: EventWindow, since: float) -> str | None:
    """Why the daemon's events since the last recorded run may be incomplete, or None.

    ``window`` is everything the daemon returned from ``since``. Docker keeps only its last
    :data:`EVENTS_LIMIT` events, and none across a restart: the event the last run saw newest
    (the anchor) is then gone, or the buffer came back full and starting after ``since``.
    Podman keeps a log on disk, which it may rotate: there, only a lost anchor tells a gap.
    """
    if state.events_until is None:
        return None  # the first run: nothing recorded to have a gap after
    returned = window.events
    if window.kept is None:
        return _log_gap(state, returned)
    full = len(returned) >= window.kept and min(e.time for e in returned) > since
    if state.anchor is not None and not state.anchor.found_in(returned):
        cause = "more than 256 events happened" if full else "the daemon restarted, or more than 256 events happened"
    elif full:
        cause = "more than 256 events happened"
    else:
        return None
    return (
        f"The daemon's events since the last run may be incomplete: {cause} since then, and the daemon"
        " keeps only its last 256 events and none across a restart. Uses and tag moves in that gap are"
        " not known; images in use by containers, and each image's arrival as this run sees it, still are."
    )


def _log_gap(state: UsageState, returned: tuple[DaemonEvent, ...]) -> str | None:
    if state.anchor is None or state.anchor.found_in(returned):
        return None
    return (
        "The engine's events since the last run may be incomplete: its event log no longer holds the"
        " newest event the last run saw (the log was rotated or removed, or the engine logs no events:"
        " Podman's events_logger = \"none\"). Uses and tag moves in that gap are not known; images in"
        " use by containers, and each image's arrival as this run sees it, still are."
    )


def newest_mark(state: UsageState, events: Iterable[DaemonEvent]) -> EventMark | None:
    """The anchor to record: the newest event returned, else the one recorded before."""
    newest = max(events, key=lambda e: e.time, default=None)
    return EventMark.of(newest) if newest is not None else state.anchor


def _last_moves(events: Iterable[DaemonEvent]) -> dict[str, float]:
    """Canonical tag, or the id of a loaded image -> the time of the last event that may have moved it there."""
    moved: dict[str, float] = {}
    for event in events:
        if event.type != "image" or event.action not in _MOVES:
            continue
        if event.action == "pull":
            key = tag_key(event.actor_id)
        elif event.action == "tag":
            key = tag_key(event.attributes.get("name", ""))
        else:
            key = _as_id(event.actor_id)  # a load names no tag: any tag may have moved onto this image
        if key is not None:
            moved[key] = max(event.time, moved.get(key, event.time))
    return moved


def _resolve_at(inventory: Inventory, text: str, when: float, moved: Mapping[str, float]) -> str | None:
    """The image ``text`` (a reference or id) named at ``when``, when what it names now is that image."""
    image = _image(inventory, text)
    if image is None or image.created > when + 1:  # built after the event: not the one it named
        return None
    tag = tag_key(text)
    if tag is not None:
        later = max(moved.get(tag, when), moved.get(image.id, when))
        if later > when:
            return None  # the tag may have moved since: what it names now may have arrived after
    return image.id


def _by_id(inventory: Inventory, text: str) -> str | None:
    """The image ``text`` names when it is an id (or a unique id prefix of 12 or more digits)."""
    hexpart = text.removeprefix("sha256:")
    if len(hexpart) < 12 or not all(c in "0123456789abcdef" for c in hexpart):
        return None
    if len(hexpart) == 64:  # a whole id, as image events carry: looked up, not searched for
        image = inventory.image_by_id.get("sha256:" + hexpart)
        return image.id if image is not None else None
    matches = [i.id for i in inventory.images if i.id.removeprefix("sha256:").startswith(hexpart)]
    return matches[0] if len(matches) == 1 else None


def _as_id(text: str) -> str | None:
    hexpart = text.removeprefix("sha256:")
    if len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart):
        return "sha256:" + hexpart
    return None


def _image(inventory: Inventory, text: str) -> ImageRecord | None:
    """An image as an event names it (id, id prefix or reference), when on the host."""
    if found := _by_id(inventory, text):
        return inventory.image_by_id[found]
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return None
    if ref.digest is not None:
        return inventory.image_by_digest.get(ref.canonical())
    return inventory.image_with_tag(ref)
