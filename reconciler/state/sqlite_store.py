"""The small SQLite files reconcile keeps (run history, usage state): opened in WAL mode,
created or checked against their schema version, written in explicit transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler.errors import HistoryError

BUSY_TIMEOUT_SECONDS = 5.0  # how long a writer waits for another one before giving up


def open_store(path: Path, schema: str, version: int, what: str) -> sqlite3.Connection:
    """Open (creating when new) the database at ``path`` holding ``schema`` at ``version``.

    A file of a newer schema version is refused with a HistoryError naming ``what``.
    """
    # Autocommit mode: transactions are begun and ended explicitly (see transaction()).
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        with transaction(db):
            found = schema_version(db)
            if found is None:
                db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                for statement in schema.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            elif found > version:
                raise HistoryError(
                    f"The {what} in {path} has schema version {found}, newer than this reconcile "
                    f"understands ({version}); upgrade reconcile or use another --state-dir."
                )
    except BaseException:
        db.close()
        raise
    return db


def schema_version(db: sqlite3.Connection) -> int | None:
    """The schema version recorded in ``db``; None for a new, empty database."""
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if not exists:
        return None
    row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else None


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taking the write lock at once; rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
