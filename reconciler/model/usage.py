"""Usage facts: when each image was last used, and which images each tag pointed at. Pure data.

Facts come from the daemon's events (container create/start, image pull/tag), from the
pulls of an apply and from each run's snapshot of tags; :mod:`reconciler.state.usage_store`
keeps them per daemon so that retention can evict the least recently used image and
``keep_previous`` can find the image a moved tag left behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.model.inventory import DaemonEvent, Inventory
from reconciler.model.reference import InvalidReference, parse_reference, tag_key

HISTORY_PER_TAG = 20  # keep_previous rarely asks for more than a few


@dataclass(frozen=True)
class UsageState:
    """What the state file knows about one daemon."""

    last_used: Mapping[str, float] = field(default_factory=dict)  # image id -> time
    tag_images: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # tag -> ids, newest first
    events_until: float | None = None  # events up to this time are already counted

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
    """New facts to fold into the state: uses, and tags seen pointing at images."""

    uses: Mapping[str, float] = field(default_factory=dict)  # image id -> time of use
    tags: tuple[tuple[str, str, float], ...] = ()  # (canonical tag, image id, time), oldest first


def facts_from_events(events: Iterable[DaemonEvent], inventory: Inventory) -> UsageFacts:
    """Container create/start mark their image used; image pull/tag say where a tag points."""
    uses: dict[str, float] = {}
    tags: list[tuple[str, str, float]] = []
    containers = {c.id: c.image_id for c in inventory.containers}
    for event in events:
        when = event.time
        if event.type == "container":
            image_id = containers.get(event.actor_id) or _resolve(
                inventory, event.attributes.get("image") or event.source
            )
        elif event.type == "image":
            ref = event.attributes.get("name", "") if event.action == "tag" else event.actor_id
            image_id = _resolve(inventory, event.actor_id)
            tag = tag_key(ref)
            if image_id and tag:
                tags.append((tag, image_id, when))
        else:
            continue
        if image_id:
            uses[image_id] = max(when, uses.get(image_id, when))
    return UsageFacts(uses, tuple(sorted(tags, key=lambda t: t[2])))


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


def _resolve(inventory: Inventory, text: str) -> str | None:
    """An image as an event names it (id, id prefix or reference) -> its id, when on the host."""
    if not text:
        return None
    if text.startswith("sha256:") or all(c in "0123456789abcdef" for c in text):
        hexpart = text.removeprefix("sha256:")
        matches = [i.id for i in inventory.images if i.id.removeprefix("sha256:").startswith(hexpart)]
        if len(matches) == 1 and len(hexpart) >= 12:
            return matches[0]
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return None
    if ref.digest is not None:
        image = inventory.image_by_digest.get(ref.canonical())
    else:
        image = inventory.image_by_tag.get(ref.canonical())
    return image.id if image else None
