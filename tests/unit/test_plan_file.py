"""Saved plans: written, read back equal, and refused when corrupt, foreign or stale."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.errors import ExitCode, PlanFileError, StalePlanError
from reconciler.model.plan import Action, Plan, Step
from reconciler.state.atomic_file import write_atomically
from reconciler.state.plan_file import (
    SavedPlan,
    check_applicable,
    check_required_digest,
    dump_plan,
    is_plan_text,
    load_plan,
    plan_digest,
    read_plan_file,
    save_plan,
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


def sealed(document: dict[str, Any]) -> bytes:
    """``document`` with its digest made anew, as only `plan --out` would: to test the other checks."""
    return json.dumps({**document, "digest": plan_digest(document)}).encode()


def test_round_trip_gives_an_equal_plan(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    write_atomically(path, dump_plan(PLAN, CREATED))
    digest = json.loads(path.read_text())["digest"]
    assert read_plan_file(path) == SavedPlan(plan=PLAN, created="2026-01-31T12:00:00Z", digest=digest)
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]  # no temporary file left behind


def test_file_records_what_each_step_expects_of_the_host() -> None:
    document = json.loads(dump_plan(PLAN, CREATED))
    assert document["format"] == "reconciler-plan" and document["version"] == 2
    assert document["digest"] == plan_digest(document)
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
        (sealed({"format": "reconciler-plan", "version": 2}).decode(), "manifest is missing"),
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
        load_plan(sealed(document), "plan.json")
    document["steps"][1]["bytes"] = None
    with pytest.raises(PlanFileError, match=r"steps\[5\]\.action 'delete' is not one of pull, build, load, tag, untag, remove"):
        load_plan(sealed(document), "plan.json")


def test_unknown_version_is_refused() -> None:
    document = json.loads(dump_plan(PLAN, CREATED))
    document["version"] = 3
    with pytest.raises(PlanFileError, match="format version 3; this reconcile reads version 2 only"):
        load_plan(sealed(document), "plan.json")


def test_a_version_1_plan_without_a_digest_is_refused_with_the_reason() -> None:
    document = json.loads(dump_plan(PLAN, CREATED))
    del document["digest"]
    document["version"] = 1
    with pytest.raises(PlanFileError, match="format version 1, which carries no digest") as caught:
        load_plan(json.dumps(document).encode(), "plan.json")
    assert caught.value.exit_code == ExitCode.INVALID_MANIFEST
    assert "reconcile plan FILE --out PLAN" in str(caught.value)


# --- the digest -------------------------------------------------------------


def test_the_digest_ignores_layout_but_not_content() -> None:
    text = dump_plan(PLAN, CREATED)
    document = json.loads(text)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", document["digest"])
    # Re-indented, keys in another order, as an editor or jq would leave it: still the same plan.
    reordered = json.dumps(dict(reversed(list(document.items()))), indent=None, separators=(", ", ": "))
    assert load_plan(reordered.encode(), "plan.json").digest == document["digest"]
    assert load_plan(text.encode(), "plan.json") == load_plan(reordered.encode(), "plan.json")


def _edits() -> list[tuple[str, Any]]:
    """Hand edits of a saved plan, each of a field some check or step relies on."""

    def set_ref(d: dict[str, Any]) -> None:
        d["steps"][5]["ref"] = "precious:1"
        d["steps"][5]["expect"]["image_id"] = image_id("precious")

    def add_step(d: dict[str, Any]) -> None:
        d["steps"].append({**d["steps"][5], "ref": "precious:1"})

    return [
        ("a step's ref and expectation", set_ref),
        ("an added step", add_step),
        ("a dropped step", lambda d: d["steps"].pop(0)),
        ("a cleared block", lambda d: d["steps"][6].update(blocked=None)),
        ("a container expectation", lambda d: d["steps"][5]["expect"].update(containers=None)),
        ("the engine", lambda d: d.update(engine="engine ID other")),
        ("the host", lambda d: d.update(host="tcp://elsewhere:2375")),
        ("the manifest digest", lambda d: d["manifest"].update(digest="sha256:" + "b" * 64)),
        ("the manifest path", lambda d: d["manifest"].update(path="other.yaml")),
        ("the time", lambda d: d.update(created="2030-01-01T00:00:00Z")),
        ("the digest itself", lambda d: d.update(digest="sha256:" + "c" * 64)),
        ("an added field", lambda d: d.update(note="x")),
    ]


@pytest.mark.parametrize(("what", "change"), _edits(), ids=[what for what, _ in _edits()])
def test_any_hand_edit_is_refused_as_changed_after_it_was_saved(what: str, change: Any) -> None:
    document = json.loads(dump_plan(PLAN, CREATED, engine="engine ID x"))
    change(document)
    with pytest.raises(PlanFileError, match=r"plan\.json was changed after it was saved") as caught:
        load_plan(json.dumps(document, indent=2).encode(), "plan.json")
    assert "its content no longer matches its digest" in str(caught.value)
    assert "run `reconcile plan` again" in str(caught.value)
    assert caught.value.exit_code == ExitCode.INVALID_MANIFEST


def test_a_plan_without_its_digest_is_refused() -> None:
    document = json.loads(dump_plan(PLAN, CREATED))
    del document["digest"]
    with pytest.raises(PlanFileError, match=r"was changed after it was saved \(it has no digest\)"):
        load_plan(json.dumps(document).encode(), "plan.json")


def test_save_plan_returns_the_digest_it_wrote(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    digest = save_plan(path, PLAN, CREATED, engine="engine ID x")
    assert digest == json.loads(path.read_text())["digest"] == read_plan_file(path).digest


def test_a_required_digest_admits_that_plan_only(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    digest = save_plan(path, PLAN, CREATED)
    saved = read_plan_file(path)
    check_required_digest(saved, digest, "plan.json")
    check_required_digest(saved, digest.upper().replace("SHA256", "sha256"), "plan.json")  # hex in either case
    other = "sha256:" + "0" * 64
    with pytest.raises(PlanFileError, match=rf"plan\.json is not the plan that was reviewed: .*not the required {other}"):
        check_required_digest(saved, other, "plan.json")


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


def test_a_plan_is_the_daemon_s_whatever_the_address_and_only_its(tmp_path: Path) -> None:
    manifest = tmp_path / "images.yaml"
    manifest.write_text("version: 1\n")
    engine = "engine ID 63FM, name box, data root /var/lib/docker"
    saved = dataclasses.replace(_plan_from(manifest), engine=engine)
    check_applicable(saved, "unix:///other/link.sock", engine)  # another address of that daemon
    # One key file, two daemons: the ID is the same, the data root is not.
    twin = "engine ID 63FM, name box, data root /srv/docker"
    with pytest.raises(StalePlanError, match=r"made for the daemon at unix:///d\.sock, not unix:///twin\.sock"):
        check_applicable(saved, "unix:///twin.sock", twin)
    # The same address, another daemon behind it now: both are named.
    with pytest.raises(StalePlanError, match=rf"made for the daemon {engine}, not the one now at unix:///d\.sock \({twin}\)"):
        check_applicable(saved, "unix:///d.sock", twin)


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
