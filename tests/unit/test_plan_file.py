"""Saved plans: written, read back equal, and refused when corrupt, foreign or stale."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.errors import ExitCode, PlanFileError, StalePlanError
from reconciler.model.plan import Action, Plan, Step
from reconciler.state.atomic_file import write_atomically
from reconciler.state.plan_file import (
    SavedPlan,
    check_applicable,
    dump_plan,
    is_plan_text,
    load_plan,
    read_plan_file,
    saved_plan_at,
)

from .planning_data import image_id

CREATED = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)
STEPS = (
    Step(action=Action.PULL, ref="web:1.1", reason="the tag is not on the host", platform="linux/amd64"),
    Step(action=Action.PULL, ref="app:2", reason="pull: always", image_id=image_id("app-old")),
    Step(action=Action.TAG, ref="web:stable", source="web:1.1", reason="alias of web:1.1", bytes=0),
    Step(action=Action.TAG, ref="db:live", source="db:1", image_id=image_id("db"), reason="alias", bytes=0),
    Step(action=Action.UNTAG, ref="web:old", image_id=image_id("web-old"), reason="not listed", bytes=0),
    Step(action=Action.REMOVE, ref="old:0.9", image_id=image_id("old"), reason="absent", bytes=524_000),
    Step(
        action=Action.REMOVE,
        ref="busy:1",
        image_id=image_id("busy"),
        reason="absent",
        bytes=None,
        blocked="in use by container web (0123456789ab); an image a container uses is never removed",
    ),
    Step(
        action=Action.PULL,
        ref="pinned@sha256:" + "e" * 64,
        reason="the pinned digest is not on the host",
        expected_digest="sha256:" + "e" * 64,
    ),
)
PLAN = Plan(steps=STEPS, manifest_path="images.yaml", manifest_digest="sha256:" + "a" * 64, host="unix:///d.sock")


def test_round_trip_gives_an_equal_plan(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    write_atomically(path, dump_plan(PLAN, CREATED))
    assert read_plan_file(path) == SavedPlan(plan=PLAN, created="2026-01-31T12:00:00Z")
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]  # no temporary file left behind


def test_file_records_what_each_step_expects_of_the_host() -> None:
    document = json.loads(dump_plan(PLAN, CREATED))
    assert document["format"] == "reconciler-plan" and document["version"] == 1
    assert document["manifest"] == {"path": "images.yaml", "digest": PLAN.manifest_digest}
    assert document["host"] == "unix:///d.sock"
    expects = [step["expect"] for step in document["steps"]]
    assert expects[0] == {"image_id": None}  # the tag was not on the host
    assert expects[1] == {"image_id": image_id("app-old")}
    assert expects[2] == {"source_image_id": None}  # its source comes from a pull of this plan
    assert expects[3] == {"source_image_id": image_id("db")}
    assert expects[5] == {"image_id": image_id("old"), "containers": 0}


def test_plan_files_are_told_from_manifests_by_content() -> None:
    assert is_plan_text(dump_plan(PLAN, CREATED).encode())
    assert is_plan_text(b'  {"format": "reconciler-plan", "vers')  # truncated: still refused as a plan
    assert not is_plan_text(b"version: 1\nimages: []\n")
    assert not is_plan_text(b'{"version": 1, "images": []}')  # a manifest in YAML flow style


def test_a_json_manifest_naming_a_reconciler_plan_repository_is_a_manifest() -> None:
    manifest = json.dumps({"version": 1, "images": [{"name": "reconciler-plan", "tags": ["1"]}]}).encode()
    assert not is_plan_text(manifest)
    assert not is_plan_text(b'{"version": 1, "images": [{"name": "team/reconciler-plan"}], "format": "x"}')
    # YAML flow style that is not JSON, and a JSON value named like our format in another key.
    assert not is_plan_text(b"{version: 1, images: [{name: reconciler-plan}]}")
    assert not is_plan_text(b'{"version": 1, "images": [{"name": "web", "tags": ["1"]}], "x": {"format": 1}')
    assert not is_plan_text(b'{"name": "format", "tags": ["reconciler-plan"]')


def test_a_damaged_plan_with_our_format_key_is_still_a_plan(tmp_path: Path) -> None:
    text = dump_plan(PLAN, CREATED)
    assert is_plan_text(text[: len(text) // 2].encode())  # truncated
    assert is_plan_text(text.replace('"steps": [', '"steps": [,', 1).encode())  # edited into invalid JSON
    assert is_plan_text(b'{"format": "reconciler-plan", "version": 1}')  # valid JSON, fields missing
    assert is_plan_text(b'{"version": 1, "format" : "reconciler-plan"')  # the key need not come first
    assert not is_plan_text(b"{" + b'"x": [' * 100_000)  # too deep, no key of ours: a manifest's problem
    deep = b'{"format": "reconciler-plan", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert is_plan_text(deep)
    with pytest.raises(PlanFileError, match="nested too deeply"):
        load_plan(deep, "plan.json")
    assert not is_plan_text(b'{"format": "reconciler-plan-2", "version": 1}')

    damaged = tmp_path / "plan.json"
    damaged.write_text(text[: len(text) // 2])
    with pytest.raises(PlanFileError, match="is not a usable saved plan: it is not valid JSON") as caught:
        saved_plan_at(damaged)
    assert caught.value.exit_code == ExitCode.INVALID_MANIFEST


def test_a_large_plan_is_recognised_whole(tmp_path: Path) -> None:
    many = tuple(Step(action=Action.PULL, ref=f"web:{n}", reason="x" * 100) for n in range(200))
    path = tmp_path / "plan.json"
    path.write_text(dump_plan(Plan(steps=many, manifest_path="m", manifest_digest="d", host="h"), CREATED))
    assert path.stat().st_size > 4096
    saved = saved_plan_at(path)
    assert saved is not None and len(saved.plan.steps) == 200
    manifest = tmp_path / "images.json"
    manifest.write_text(json.dumps({"version": 1, "images": [{"name": "reconciler-plan"}] * 300}))
    assert saved_plan_at(manifest) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"format": "reconciler-plan", "version": 1, "steps": [', "is not valid JSON"),
        ('{"format": "reconciler-plan", "version": 1}', "manifest is missing"),
        ("[]", 'has no "format": "reconciler-plan" key'),
    ],
)
def test_corrupt_file_is_refused_with_a_clear_error(text: str, expected: str) -> None:
    with pytest.raises(PlanFileError) as caught:
        load_plan(text.encode(), "plan.json")
    assert expected in str(caught.value)
    assert "reconcile plan FILE --out plan.json" in str(caught.value)
    assert caught.value.exit_code == ExitCode.INVALID_MANIFEST


def test_edited_step_is_refused_with_its_path() -> None:
    document = json.loads(dump_plan(PLAN, CREATED))
    document["steps"][5]["action"] = "delete"
    document["steps"][1]["bytes"] = True
    with pytest.raises(PlanFileError, match=r"steps\[1\]\.bytes is not an int"):
        load_plan(json.dumps(document).encode(), "plan.json")
    document["steps"][1]["bytes"] = None
    with pytest.raises(PlanFileError, match=r"steps\[5\]\.action 'delete' is not one of pull, tag, untag, remove"):
        load_plan(json.dumps(document).encode(), "plan.json")


def test_unknown_version_is_refused() -> None:
    document = json.loads(dump_plan(PLAN, CREATED))
    document["version"] = 2
    with pytest.raises(PlanFileError, match="format version 2; this reconcile reads version 1 only"):
        load_plan(json.dumps(document).encode(), "plan.json")


def _plan_from(manifest: Path, host: str = "unix:///d.sock") -> SavedPlan:
    digest = "sha256:" + hashlib.sha256(manifest.read_bytes()).hexdigest()
    return SavedPlan(Plan(steps=STEPS, manifest_path=str(manifest), manifest_digest=digest, host=host), "t")


def test_plan_for_the_same_daemon_and_manifest_applies(tmp_path: Path) -> None:
    manifest = tmp_path / "images.yaml"
    manifest.write_text("version: 1\n")
    check_applicable(_plan_from(manifest), "unix:///d.sock")


def test_plan_for_another_daemon_is_refused_whole(tmp_path: Path) -> None:
    manifest = tmp_path / "images.yaml"
    manifest.write_text("version: 1\n")
    with pytest.raises(StalePlanError, match=r"made for the daemon at unix:///d\.sock, not tcp://other:2375") as caught:
        check_applicable(_plan_from(manifest), "tcp://other:2375")
    assert caught.value.exit_code == ExitCode.STALE_PLAN
    assert "run `reconcile plan` again" in str(caught.value)


def test_plan_whose_manifest_changed_or_vanished_is_stale(tmp_path: Path) -> None:
    manifest = tmp_path / "images.yaml"
    manifest.write_text("version: 1\n")
    saved = _plan_from(manifest)
    manifest.write_text("version: 1\nimages: []\n")
    with pytest.raises(StalePlanError, match=r"changed since the plan was made.*run `reconcile plan` again"):
        check_applicable(saved, "unix:///d.sock")
    manifest.unlink()
    with pytest.raises(StalePlanError, match="cannot be read"):
        check_applicable(saved, "unix:///d.sock")


_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
_STEPS = st.builds(
    Step,
    action=st.sampled_from(list(Action)),
    ref=_TEXT,
    reason=_TEXT,
    image_id=st.none() | _TEXT,
    bytes=st.none() | st.integers(min_value=0, max_value=2**63),
    source=st.none() | _TEXT,
    platform=st.none() | _TEXT,
    expected_digest=st.none() | _TEXT,
    blocked=st.none() | _TEXT,
)


@given(steps=st.lists(_STEPS, max_size=5), path=_TEXT, host=_TEXT)
def test_any_plan_survives_the_round_trip(steps: list[Step], path: str, host: str) -> None:
    plan = Plan(steps=tuple(steps), manifest_path=path, manifest_digest="sha256:" + "0" * 64, host=host)
    assert load_plan(dump_plan(plan, CREATED).encode(), "plan.json").plan == plan
