"""Usage state: when each image was last used, and which images each tag pointed at.

Kept per daemon in ``usage.sqlite3`` in the state directory (WAL, one
transaction per write), so that retention can evict the least recently used
image and ``keep_previous`` can find the image a moved tag left behind.
``plan`` only reads it; ``apply`` writes it once the run is over.

Facts come from the daemon's events (container create/start, image pull/tag),
from the pulls of an apply and from each run's snapshot of tags. Turning
events into facts is pure (:func:`facts_from_events`); the reading is in
:mod:`reconciler.daemon.retention_reading`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import HistoryError
from reconciler.model.inventory import DaemonEvent, Inventory
from reconciler.model.reference import InvalidReference, parse_reference
from reconciler.state.sqlite_store import open_store, schema_version, transaction
from reconciler.state.state_dir import daemon_key, ensure_state_dir

USAGE_FILE = "usage.sqlite3"
SCHEMA_VERSION = 1
HISTORY_PER_TAG = 20  # keep_previous rarely asks for more than a few

_SCHEMA = """
CREATE TABLE last_use (
    host_key TEXT NOT NULL,
    image_id TEXT NOT NULL,
    time REAL NOT NULL,
    PRIMARY KEY (host_key, image_id)
);
CREATE TABLE tag_images (
    host_key TEXT NOT NULL,
    tag TEXT NOT NULL,
    image_id TEXT NOT NULL,
    seen REAL NOT NULL,
    PRIMARY KEY (host_key, tag, image_id)
);
CREATE TABLE cursor (
    host_key TEXT PRIMARY KEY,
    events_until REAL NOT NULL
)
"""


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
            tag = _canonical_tag(ref)
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


def _canonical_tag(text: str) -> str | None:
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return None
    return ref.canonical() if ref.digest is None else None


# --- storage --------------------------------------------------------------------


def usage_path(state_dir: Path) -> Path:
    return state_dir / USAGE_FILE


def read_usage(state_dir: Path, host: str) -> UsageState:
    """The recorded state of ``host``; empty when nothing was recorded yet. Writes nothing."""
    path = usage_path(state_dir)
    if not path.exists():
        return UsageState()
    key = daemon_key(host)
    try:
        # Read-only: `plan` must not change anything, our own state included.
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            if schema_version(db) is None:
                return UsageState()
            uses = dict(db.execute("SELECT image_id, time FROM last_use WHERE host_key=?", (key,)))
            history: dict[str, list[str]] = {}
            rows = db.execute(
                "SELECT tag, image_id FROM tag_images WHERE host_key=? ORDER BY tag, seen DESC, image_id",
                (key,),
            )
            for tag, image_id in rows:
                history.setdefault(tag, []).append(image_id)
            row = db.execute("SELECT events_until FROM cursor WHERE host_key=?", (key,)).fetchone()
    except sqlite3.Error as exc:
        raise HistoryError(f"The usage state in {path} cannot be read: {exc}.") from exc
    return UsageState(
        uses, {tag: tuple(ids) for tag, ids in history.items()}, row[0] if row else None
    )


def record_usage(state_dir: Path, host: str, facts: Iterable[UsageFacts], until: float) -> None:
    """Fold ``facts`` into the state of ``host`` in one transaction; events are counted up to ``until``.

    A tag seen at another image than recorded keeps the old one in its history,
    newest first, at most :data:`HISTORY_PER_TAG` deep.
    """
    key = daemon_key(host)
    ensure_state_dir(state_dir)
    path = usage_path(state_dir)
    with closing(open_store(path, _SCHEMA, SCHEMA_VERSION, "usage state")) as db, transaction(db):
        for fact in facts:
            db.executemany(
                "INSERT INTO last_use (host_key, image_id, time) VALUES (?,?,?)"
                " ON CONFLICT DO UPDATE SET time = max(time, excluded.time)",
                [(key, image_id, when) for image_id, when in sorted(fact.uses.items())],
            )
            for tag, image_id, when in fact.tags:
                _point_tag(db, key, tag, image_id, when)
        db.execute(
            "INSERT INTO cursor (host_key, events_until) VALUES (?,?)"
            " ON CONFLICT DO UPDATE SET events_until = max(events_until, excluded.events_until)",
            (key, until),
        )


def _point_tag(db: sqlite3.Connection, key: str, tag: str, image_id: str, when: float) -> None:
    newest = db.execute(
        "SELECT image_id, seen FROM tag_images WHERE host_key=? AND tag=? ORDER BY seen DESC LIMIT 1",
        (key, tag),
    ).fetchone()
    if newest is not None and (newest[0] == image_id or newest[1] > when):
        return  # nothing moved, or an older fact than the one recorded
    db.execute(
        "INSERT INTO tag_images (host_key, tag, image_id, seen) VALUES (?,?,?,?)"
        " ON CONFLICT DO UPDATE SET seen = excluded.seen",
        (key, tag, image_id, when),
    )
    db.execute(
        "DELETE FROM tag_images WHERE host_key=? AND tag=? AND image_id NOT IN"
        " (SELECT image_id FROM tag_images WHERE host_key=? AND tag=? ORDER BY seen DESC LIMIT ?)",
        (key, tag, key, tag, HISTORY_PER_TAG),
    )








