"""Run history: recording steps, matching them as Docker matches names, and showing them."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.errors import UsageError
from reconciler.model.plan import Action, Step
from reconciler.model.report import Outcome, StepResult
from reconciler.state.history import (
    HistoryQuery,
    RunRecorder,
    history_path,
    parse_since,
    query_history,
    records_json,
    records_plain,
    records_table,
)

HOST = "unix:///run/docker.sock"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
NGINX_ID = "sha256:" + "ab" * 32
OLD_ID = "sha256:" + "cd" * 32


def result(action: Action, ref: str, image_id: str | None, outcome: Outcome = Outcome.DONE) -> StepResult:
    step = Step(action=action, ref=ref, image_id=image_id, reason=f"why {ref}", bytes=1000)
    return StepResult(step, outcome, f"{action.value} {outcome.value}")


def record_run(state: Path, results: list[StepResult], when: datetime = NOW, host: str = HOST) -> list[str]:
    warnings: list[str] = []
    recorder = RunRecorder(state, host, "/etc/images.yaml", warn=warnings.append, clock=lambda: when)
    for item in results:
        recorder.record(item)
    recorder.close()
    return warnings


@pytest.fixture
def state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    assert record_run(state, [result(Action.REMOVE, "old:0.9", OLD_ID)], when=NOW - timedelta(days=10)) == []
    assert record_run(state, [
        result(Action.UNTAG, "nginx:1.25", NGINX_ID),
        result(Action.REMOVE, "nginx", NGINX_ID),
        result(Action.PULL, "localhost:5000/app:2", None, Outcome.FAILED),
    ]) == []
    return state


def refs(state: Path, **query: object) -> list[str]:
    return [r.ref for r in query_history(state, HistoryQuery(**query))]  # type: ignore[arg-type]


def test_every_field_is_recorded(state: Path) -> None:
    first = query_history(state, HistoryQuery(image="old"))
    assert len(first) == 1
    assert first[0].time == "2026-04-21T12:00:00.000+00:00"
    assert (first[0].host, first[0].manifest, first[0].action) == (HOST, "/etc/images.yaml", "remove")
    assert (first[0].image_id, first[0].outcome, first[0].bytes) == (OLD_ID, "done", 1000)
    assert (first[0].reason, first[0].detail) == ("why old:0.9", "remove done")


def test_a_name_matches_as_docker_normalises_it(state: Path) -> None:
    assert refs(state, image="nginx") == ["nginx:1.25", "nginx"]  # no tag: every tag
    assert refs(state, image="docker.io/library/nginx:latest") == ["nginx"]
    assert refs(state, image="nginx:1.25") == ["nginx:1.25"]
    assert refs(state, image="localhost:5000/app") == ["localhost:5000/app:2"]
    assert refs(state, image="app") == []  # docker.io/library/app is another repository


def test_an_image_id_prefix_matches(state: Path) -> None:
    assert refs(state, image="abab") == ["nginx:1.25", "nginx"]
    assert refs(state, image="sha256:cdcdcd") == ["old:0.9"]
    with pytest.raises(UsageError, match="neither an image reference"):
        query_history(state, HistoryQuery(image="Not/A/Name"))


def test_since_and_host_filter(state: Path) -> None:
    assert refs(state, since=NOW - timedelta(days=1)) == ["nginx:1.25", "nginx", "localhost:5000/app:2"]
    assert refs(state, since=NOW - timedelta(weeks=2)) == ["old:0.9", "nginx:1.25", "nginx", "localhost:5000/app:2"]
    assert refs(state, host="unix:///run//docker.sock/", image="old") == ["old:0.9"]
    assert refs(state, host="tcp://other:2375") == []


def test_parse_since() -> None:
    assert parse_since("90m", NOW) == NOW - timedelta(minutes=90)
    assert parse_since("12h", NOW) == NOW - timedelta(hours=12)
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert parse_since("2w", NOW) == NOW - timedelta(weeks=2)
    for bad in ("7", "d", "1y", "-1d", "1.5h"):
        with pytest.raises(UsageError, match="is not a duration"):
            parse_since(bad, NOW)


def test_a_duration_reaching_before_the_year_1_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as caught:
        parse_since("999999w", NOW)
    assert caught.value.exit_code == 64
    assert str(caught.value) == (
        "--since '999999w' reaches back before the year 1, further than any history; "
        "give a shorter duration, such as 52w."
    )
    assert parse_since("99999w", NOW) == NOW - timedelta(weeks=99999)  # still within the calendar


def test_one_transaction_per_run(state: Path) -> None:
    with sqlite3.connect(history_path(state)) as db:
        runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
        per_run = db.execute("SELECT run_id, count(*) FROM steps GROUP BY run_id ORDER BY run_id").fetchall()
        version = db.execute("SELECT version FROM schema_version").fetchall()
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert runs == 2 and [count for _, count in per_run] == [1, 3]
    assert version == [(1,)]
    assert mode == "wal"


def test_no_history_yet_is_no_records(tmp_path: Path) -> None:
    assert query_history(tmp_path / "nothing", HistoryQuery()) == ()
    assert not (tmp_path / "nothing").exists()


def test_a_history_that_cannot_be_written_warns_and_does_not_raise(tmp_path: Path) -> None:
    state = tmp_path / "state"
    history_path(state).mkdir(parents=True)  # a directory where the database should be
    warnings = record_run(state, [result(Action.PULL, "nginx", None)])
    assert len(warnings) == 1
    assert "could not be written" in warnings[0] and "apply itself is not affected" in warnings[0]


def test_a_newer_schema_is_refused(state: Path) -> None:
    with sqlite3.connect(history_path(state)) as db:
        db.execute("UPDATE schema_version SET version = 99")
    warnings = record_run(state, [result(Action.PULL, "nginx", None)])
    assert "schema version 99" in warnings[0]


def test_plain_text_is_aligned_without_escape_codes(state: Path) -> None:
    text = records_plain(query_history(state, HistoryQuery()))
    lines = text.splitlines()
    assert lines[0].split() == ["TIME", "MANIFEST", "ACTION", "REF", "IMAGE", "OUTCOME", "BYTES", "DETAIL", "REASON"]
    assert len({line.index("remove") for line in lines if " remove " in line}) == 1
    assert "\x1b[" not in text
    assert records_plain(()) == "No recorded steps match."


def test_text_gives_sizes_in_human_units_and_json_keeps_bytes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    step = Step(action=Action.PRUNE_CACHE, ref="abc123", reason="the cache takes 300038 bytes, over keep_storage 0",
                bytes=150_000)
    # A step recorded before details spoke in sizes.
    record_run(state, [StepResult(step, Outcome.DONE, "pruned; the daemon reclaimed 150000 bytes", bytes=150_000)])
    records = query_history(state, HistoryQuery())
    plain = records_plain(records)
    assert "reclaimed 150 kB" in plain and "takes 300 kB" in plain and "150 kB" in plain.splitlines()[1]
    assert " bytes" not in plain
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(records_table(records))
    assert "done: pruned; the daemon reclaimed 150 kB (150 kB)" in console.export_text()
    assert json.loads(records_json(records))[0]["bytes"] == 150_000


def test_host_column_only_for_several_hosts(state: Path) -> None:
    record_run(state, [result(Action.PULL, "nginx:2", None)], host="tcp://other:2375")
    assert records_plain(query_history(state, HistoryQuery())).split()[1] == "HOST"


def test_json_is_a_list_of_records(state: Path) -> None:
    data = json.loads(records_json(query_history(state, HistoryQuery(image="nginx"))))
    assert [d["ref"] for d in data] == ["nginx:1.25", "nginx"]
    assert set(data[0]) == {
        "time", "host", "manifest", "action", "ref", "image_id", "outcome", "detail", "reason", "bytes"
    }
