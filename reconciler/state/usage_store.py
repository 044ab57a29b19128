"""The usage state on disk: ``usage.sqlite3`` in the state directory, one row set per daemon.

WAL, one transaction a write. ``plan`` only reads it; ``apply`` writes it once the run is
over. The facts themselves are :mod:`reconciler.model.usage`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

from reconciler.errors import UsageStateError
from reconciler.model.usage import (
    HISTORY_PER_TAG,
    EventMark,
    UsageFacts,
    UsageState,
    merged_arrivals,
)
from reconciler.state.sqlite_store import open_store, schema_version, transaction
from reconciler.state.state_dir import daemon_key, ensure_state_dir

USAGE_FILE = "usage.sqlite3"
SCHEMA_VERSION = 2

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
# Added in schema version 2; created on the first write to a version-1 file.
_ADDED_IN_2 = """
CREATE TABLE IF NOT EXISTS arrival (
    host_key TEXT NOT NULL,
    image_id TEXT NOT NULL,
    time REAL NOT NULL,
    PRIMARY KEY (host_key, image_id)
);
CREATE TABLE IF NOT EXISTS event_anchor (
    host_key TEXT PRIMARY KEY,
    time REAL NOT NULL,
    type TEXT NOT NULL,
    action TEXT NOT NULL,
    actor_id TEXT NOT NULL
)
"""



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
            arrived: dict[str, float] = {}
            anchor = None
            if _has_table(db, "arrival"):  # a version-1 file has neither table yet
                arrived = dict(db.execute("SELECT image_id, time FROM arrival WHERE host_key=?", (key,)))
                mark = db.execute(
                    "SELECT time, type, action, actor_id FROM event_anchor WHERE host_key=?", (key,)
                ).fetchone()
                anchor = EventMark(*mark) if mark else None
    except sqlite3.Error as exc:
        raise UsageStateError(f"The usage state in {path} cannot be read: {exc}.") from exc
    return UsageState(
        uses, {tag: tuple(ids) for tag, ids in history.items()}, row[0] if row else None, arrived, anchor
    )


def record_usage(
    state_dir: Path, host: str, facts: Iterable[UsageFacts], until: float, anchor: EventMark | None = None
) -> None:
    """Fold ``facts`` into the state of ``host`` in one transaction; events are counted up to ``until``.

    A tag seen at another image than recorded keeps the old one in its history,
    newest first, at most :data:`HISTORY_PER_TAG` deep. Arrivals merge as
    :func:`~reconciler.model.usage.merged_arrivals` says; ``anchor`` (the newest event seen)
    replaces the one recorded when given.
    """
    key = daemon_key(host)
    ensure_state_dir(state_dir)
    path = usage_path(state_dir)
    facts = tuple(facts)
    with closing(open_store(path, _SCHEMA, SCHEMA_VERSION, "usage state")) as db, transaction(db):
        for statement in filter(str.strip, _ADDED_IN_2.split(";")):
            db.execute(statement)
        db.execute("UPDATE schema_version SET version = max(version, ?)", (SCHEMA_VERSION,))
        stored = dict(db.execute("SELECT image_id, time FROM arrival WHERE host_key=?", (key,)))
        db.execute("DELETE FROM arrival WHERE host_key=?", (key,))
        db.executemany(
            "INSERT INTO arrival (host_key, image_id, time) VALUES (?,?,?)",
            [(key, image_id, when) for image_id, when in sorted(merged_arrivals(stored, *facts).items())],
        )
        if anchor is not None:
            db.execute(
                "INSERT INTO event_anchor (host_key, time, type, action, actor_id) VALUES (?,?,?,?,?)"
                " ON CONFLICT DO UPDATE SET time=excluded.time, type=excluded.type,"
                " action=excluded.action, actor_id=excluded.actor_id",
                (key, anchor.time, anchor.type, anchor.action, anchor.actor_id),
            )
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


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None
