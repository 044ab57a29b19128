"""Run history: every applied step in a SQLite file, to answer "what removed my image, and why?".

One transaction per run: the steps are buffered while the run goes and written
together when it ends (also when it ends by an error), so a reader never sees
half a run and a long pull never holds the database's write lock. A writer that
fails (disk full, read-only file) warns and lets the apply go on.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.cli.render import human_bytes
from reconciler.errors import HistoryError, UsageError
from reconciler.model.clock import utc_now
from reconciler.model.inventory import short_id
from reconciler.model.reference import InvalidReference, parse_reference
from reconciler.model.report import StepResult
from reconciler.state.sqlite_store import open_store, transaction
from reconciler.state.state_dir import daemon_key, ensure_state_dir

HISTORY_FILE = "history.sqlite3"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    host TEXT NOT NULL,
    host_key TEXT NOT NULL,
    manifest TEXT NOT NULL,
    pid INTEGER NOT NULL
);
CREATE TABLE steps (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    time TEXT NOT NULL,
    action TEXT NOT NULL,
    ref TEXT NOT NULL,
    canonical TEXT,
    repository TEXT,
    image_id TEXT,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    reason TEXT NOT NULL,
    bytes INTEGER
);
CREATE INDEX steps_by_time ON steps(time);
CREATE INDEX steps_by_repository ON steps(repository);
"""

_SINCE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_HEX_PREFIX = re.compile(r"(?:sha256:)?([0-9a-f]{4,64})", re.ASCII)

if TYPE_CHECKING:
    from rich.table import Table


@dataclass(frozen=True)
class HistoryRecord:
    """One applied step as recorded."""

    time: str  # UTC, ISO 8601
    host: str
    manifest: str
    action: str
    ref: str
    image_id: str | None
    outcome: str
    detail: str
    reason: str
    bytes: int | None


@dataclass(frozen=True)
class HistoryQuery:
    """Which records to show; every field left None matches everything."""

    image: str | None = None
    since: datetime | None = None
    host: str | None = None


def history_path(state_dir: Path) -> Path:
    return state_dir / HISTORY_FILE


def iso(moment: datetime) -> str:
    # One fixed format, so that records compare in time order as plain strings.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_since(text: str, now: datetime) -> datetime:
    """``90m``, ``12h``, ``7d``, ``2w`` (and ``30s``) before ``now``."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*([smhdw])\s*", text, re.ASCII)
    if not match:
        raise UsageError(
            f"--since {text!r} is not a duration: write a number and a unit, such as 90m, 12h, 7d or 2w."
        )
    amount, unit = int(match.group(1)), match.group(2)
    try:
        return now - timedelta(**{_SINCE_UNITS[unit]: amount})
    except OverflowError:
        raise UsageError(
            f"--since {text.strip()!r} reaches back before the year 1, further than any history; "
            "give a shorter duration, such as 52w."
        ) from None


# --- writing --------------------------------------------------------------------


class RunRecorder:
    """Collects the steps of one apply and writes them as one transaction on :meth:`close`.

    Never raises: a history that cannot be written is reported through ``warn``.
    """

    def __init__(
        self,
        state_dir: Path,
        host: str,
        manifest: str,
        warn: Callable[[str], None],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._state_dir = state_dir
        self._host = host
        self._manifest = manifest
        self._warn = warn
        self._clock = clock
        self._started = iso(clock())
        self._steps: list[tuple[str, StepResult]] = []

    def record(self, result: StepResult) -> None:
        self._steps.append((iso(self._clock()), result))

    def close(self) -> None:
        if not self._steps:
            return
        path = history_path(self._state_dir)
        try:
            ensure_state_dir(self._state_dir)
            with closing(open_store(path, _SCHEMA, SCHEMA_VERSION, "run history")) as db, transaction(db):
                run_id = _insert_run(db, self._started, iso(self._clock()), self._host, self._manifest)
                db.executemany(
                    "INSERT INTO steps (run_id, time, action, ref, canonical, repository, image_id,"
                    " outcome, detail, reason, bytes) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [_step_row(run_id, when, result) for when, result in self._steps],
                )
        except (sqlite3.Error, OSError, HistoryError) as exc:
            self._warn(
                f"The run history could not be written to {path} ({_why(exc)}); "
                "the apply itself is not affected."
            )
        self._steps.clear()


def _insert_run(db: sqlite3.Connection, started: str, finished: str, host: str, manifest: str) -> int:
    cursor = db.execute(
        "INSERT INTO runs (started, finished, host, host_key, manifest, pid) VALUES (?,?,?,?,?,?)",
        (started, finished, host, daemon_key(host), manifest, os.getpid()),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _step_row(run_id: int, when: str, result: StepResult) -> tuple[Any, ...]:
    step = result.step
    canonical, repository = _names(step.ref)
    return (
        run_id,
        when,
        step.action.value,
        step.ref,
        canonical,
        repository,
        result.image_id or step.image_id,
        result.outcome.value,
        result.detail,
        step.reason,
        result.bytes if result.bytes is not None else step.bytes,
    )


def _names(ref: str) -> tuple[str | None, str | None]:
    """Canonical reference and repository of a step's ref; None for an image id."""
    if ref.startswith("sha256:"):
        return None, None
    try:
        parsed = parse_reference(ref)
    except InvalidReference:
        return None, None
    return parsed.canonical(), parsed.name


# --- reading --------------------------------------------------------------------


def query_history(state_dir: Path, query: HistoryQuery) -> tuple[HistoryRecord, ...]:
    """Matching records, oldest first; none when there is no history yet."""
    path = history_path(state_dir)
    if not path.exists():
        return ()
    where, params = _where(query)
    sql = (
        "SELECT steps.time, runs.host, runs.manifest, steps.action, steps.ref, steps.image_id,"
        " steps.outcome, steps.detail, steps.reason, steps.bytes"
        " FROM steps JOIN runs ON runs.id = steps.run_id"
        f" WHERE {' AND '.join(where) or '1'} ORDER BY steps.time, steps.id"
    )
    try:
        with closing(open_store(path, _SCHEMA, SCHEMA_VERSION, "run history")) as db:
            return tuple(HistoryRecord(*row) for row in db.execute(sql, params))
    except sqlite3.Error as exc:
        raise HistoryError(f"The run history in {path} cannot be read: {_why(exc)}.") from exc


def _where(query: HistoryQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if query.image:
        clause, values = _image_clause(query.image)
        where.append(clause)
        params += values
    if query.since:
        where.append("steps.time >= ?")
        params.append(iso(query.since))
    if query.host:
        where.append("runs.host_key = ?")
        params.append(daemon_key(query.host))
    return where, params


def _image_clause(text: str) -> tuple[str, list[Any]]:
    """Match a reference as Docker normalises it (no tag: every tag), or an image id prefix."""
    clauses: list[str] = []
    params: list[Any] = []
    try:
        ref = parse_reference(text)
    except InvalidReference:
        ref = None
    if ref is not None and (ref.tag or ref.digest):
        clauses.append("steps.canonical = ?")
        params.append(ref.canonical())
    elif ref is not None:
        clauses.append("steps.repository = ?")
        params.append(ref.name)
    hex_prefix = _HEX_PREFIX.fullmatch(text.lower())
    if hex_prefix:
        clauses.append("steps.image_id LIKE ?")  # hex only: no LIKE wildcards to escape
        params.append(f"sha256:{hex_prefix.group(1)}%")
    if not clauses:
        raise UsageError(
            f"--image {text!r} is neither an image reference (such as nginx or nginx:1.25) "
            "nor an image id prefix of at least 4 hex digits."
        )
    return f"({' OR '.join(clauses)})", params


# --- storage --------------------------------------------------------------------











def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).rstrip(".") or type(exc).__name__


# --- output ---------------------------------------------------------------------

_COLUMNS = ("TIME", "HOST", "MANIFEST", "ACTION", "REF", "IMAGE", "OUTCOME", "BYTES", "DETAIL", "REASON")


def records_json(records: Sequence[HistoryRecord]) -> str:
    return json.dumps([asdict(r) for r in records], indent=2)


# Steps recorded by earlier versions wrote counts as "300038 bytes"; text output shows them as sizes.
_RAW_BYTES = re.compile(r"\b([0-9]+) bytes\b")


def _human(text: str) -> str:
    return _RAW_BYTES.sub(lambda found: human_bytes(int(found[1])), text)


def _cells(record: HistoryRecord) -> tuple[str, ...]:
    image = short_id(record.image_id or "")
    size = human_bytes(record.bytes) if record.bytes is not None else ""
    when = record.time[:19].replace("T", " ") + "Z"
    return (when, record.host, record.manifest, record.action, record.ref, image, record.outcome,
            size, _human(record.detail), _human(record.reason))


def _shown_columns(records: Sequence[HistoryRecord]) -> list[int]:
    """Every column, but HOST only when the records span several hosts."""
    several_hosts = len({r.host for r in records}) > 1
    return [i for i, name in enumerate(_COLUMNS) if name != "HOST" or several_hosts]


def records_plain(records: Sequence[HistoryRecord]) -> str:
    """Aligned columns for pipes and files; no escape codes, no box drawing."""
    if not records:
        return "No recorded steps match."
    shown = _shown_columns(records)
    rows = [[_COLUMNS[i] for i in shown]] + [[_cells(r)[i] for i in shown] for r in records]
    widths = [max(len(row[c]) for row in rows) for c in range(len(shown))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    return "\n".join(lines)


def records_table(records: Sequence[HistoryRecord]) -> Table:
    from rich.table import Table  # for terminals only: rich is imported when one shows a table

    """A rich table for terminals: the plain columns, with outcome, detail and size as one RESULT
    column, so that it stays readable at 80 columns."""
    several_hosts = len({r.host for r in records}) > 1
    table = Table(box=None, header_style="bold")
    table.add_column("TIME", no_wrap=True)
    if several_hosts:
        table.add_column("HOST", overflow="fold", min_width=12)
    for name in ("MANIFEST", "ACTION", "REF", "IMAGE", "RESULT", "REASON"):
        # Short fixed-width cells stay whole; names and sentences wrap rather than lose text.
        short = name in ("ACTION", "IMAGE")
        table.add_column(name, no_wrap=short, overflow="fold", min_width=None if short else 12)
    for record in records:
        when, host, manifest, action, ref, image, outcome, size, detail, reason = _cells(record)
        cells = [when] + ([host] if several_hosts else [])
        result = f"{outcome}: {detail}" + (f" ({size})" if size and record.bytes else "")
        table.add_row(*cells, manifest, action, ref, image, result, reason)
    return table
