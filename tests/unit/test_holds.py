"""Holds: which images they keep, the plan steps they block, the executor's check and the file store."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from reconciler.execution.executor import Executor
from reconciler.loading.loader import load_manifest_text
from reconciler.model.holds import Hold, time_left
from reconciler.model.host_facts import HostFacts
from reconciler.model.inventory import ContainerRecord, ImageRecord, Inventory
from reconciler.model.plan import Action
from reconciler.model.reference import parse_reference
from reconciler.model.report import Outcome
from reconciler.planning.holds import block_held_steps, held_images
from reconciler.planning.host_plan import decide
from reconciler.planning.images import plan_changes
from reconciler.planning.retention_verdicts import Fate, Rung
from reconciler.state.holds_store import add_hold, holds_path, read_holds, release_holds

from ..fake_daemon import FakeDockerHost

NOW = 2_000_000_000.0
DAY = 86_400


def image(number: int, *tags: str, age: float = 100 * DAY) -> ImageRecord:
    return ImageRecord(
        id=f"sha256:{number:064x}", tags=tuple(parse_reference(t) for t in tags), created=int(NOW - age), size=10
    )


def hold(reference: str, image_id: str | None = None, *, left: float = 3600, hold_id: str = "h1", owner: str = "ci") -> Hold:
    return Hold(hold_id, parse_reference(reference).canonical(), image_id, owner, "job 7", NOW - 60, NOW + left)


def test_a_hold_keeps_the_image_it_was_placed_on_and_the_one_its_reference_points_at_now() -> None:
    old, new = image(1), image(2, "reg.local/app:1")
    inventory = Inventory(images=(old, new))
    held = held_images([hold("reg.local/app:1", old.id)], inventory, NOW)
    assert set(held) == {old.id, new.id}


def test_an_expired_hold_keeps_nothing() -> None:
    inventory = Inventory(images=(image(1, "reg.local/app:1"),))
    assert held_images([hold("reg.local/app:1", left=-1)], inventory, NOW) == {}


RETIRE = """
version: 1
images:
  - name: reg.local/app
    tags: ["2"]
  - name: reg.local/old
    state: absent
prune: {unlisted_tags: true, dangling: true}
retention: {min_age: 0s, unmatched: remove, max_removal_percent: 100}
"""


def test_a_held_image_loses_no_tag_to_prune_absent_or_retention_and_its_steps_say_who_holds_it() -> None:
    manifest = load_manifest_text(RETIRE, "images.yaml", environ={})
    unlisted = image(1, "reg.local/app:1", "reg.local/app:2")
    absent = image(2, "reg.local/old:1")
    dangling = image(3)
    loose = image(4, "reg.local/other:1")
    free = image(5, "reg.local/other:2")
    inventory = Inventory(images=(unlisted, absent, dangling, loose, free))
    holds = (
        hold("reg.local/app:1", hold_id="a"),
        hold("reg.local/old:1", hold_id="b"),
        hold("reg.local/gone:1", dangling.id, hold_id="c"),
        hold("reg.local/other:1", hold_id="d"),
    )
    decided = decide(manifest, HostFacts(inventory, holds=holds), NOW)
    runnable = {(s.action, s.ref) for s in decided.plan.runnable}
    assert runnable == {(Action.REMOVE, "reg.local/other:2")}
    blocked = {s.ref: s.blocked for s in decided.plan.blocked}
    assert set(blocked) == {"reg.local/app:1", "reg.local/old:1"}  # the dangling held image gets no step at all
    assert "held by ci (job 7)" in (blocked["reg.local/old:1"] or "") and "hold b" in (blocked["reg.local/old:1"] or "")
    assert decided.retention is not None
    verdicts = {v.image_id: v for v in decided.retention.verdicts}
    assert verdicts[loose.id].outcome is Fate.KEEP and verdicts[loose.id].decisions[0].rung is Rung.HELD
    assert verdicts[free.id].outcome is Fate.REMOVE


def test_in_use_ranks_before_a_hold() -> None:
    manifest = load_manifest_text("version: 1\nimages: []\nretention: {min_age: 0s}\n", "images.yaml", environ={})
    used = image(1, "reg.local/app:1")
    inventory = Inventory(images=(used,), containers=(ContainerRecord("c" * 64, "web", used.id),))
    decided = decide(manifest, HostFacts(inventory, holds=(hold("reg.local/app:1"),)), NOW)
    assert decided.retention is not None
    assert decided.retention.verdicts[0].decisions[0].rung is Rung.IN_USE


def test_without_holds_the_same_manifest_removes_them() -> None:
    """The test above is no accident of the manifest: without the holds every one of those goes."""
    manifest = load_manifest_text(RETIRE, "images.yaml", environ={})
    inventory = Inventory(images=(image(1, "reg.local/app:1", "reg.local/app:2"), image(2, "reg.local/old:1"), image(3)))
    plan = decide(manifest, HostFacts(inventory), NOW).plan
    assert {s.ref for s in plan.runnable} == {"reg.local/app:1", "reg.local/old:1", "sha256:" + f"{3:064x}"}


def test_block_held_steps_keeps_an_in_use_reason() -> None:
    used = image(1, "reg.local/old:1")
    inventory = Inventory(images=(used,), containers=(ContainerRecord("c" * 64, "web", used.id),))
    manifest = load_manifest_text("version: 1\nimages:\n  - name: reg.local/old\n    state: absent\n", "m.yaml", environ={})
    plan = plan_changes(manifest, inventory)
    blocked = block_held_steps(plan, held_images([hold("reg.local/old:1")], inventory, NOW), NOW)
    assert "container web" in (blocked.steps[0].blocked or "")


def test_the_executor_asks_about_holds_before_an_images_first_untag_and_keeps_it_whole() -> None:
    host = FakeDockerHost()
    held_id = host.add_image(["reg.local/old:1", "reg.local/old:2"])
    host.add_image(["reg.local/old:3"])
    manifest = load_manifest_text("version: 1\nimages:\n  - name: reg.local/old\n    state: absent\n", "m.yaml", environ={})
    plan = plan_changes(manifest, Inventory(images=host.list_images(), containers=host.list_containers()))
    asked: list[str] = []

    def held(image_id: str) -> str | None:
        asked.append(image_id)
        return "held by ci for 59m more, hold h1" if image_id == held_id else None

    report = Executor(host, held=held).apply(plan)
    outcomes = {r.step.ref: r.outcome for r in report.results}
    assert outcomes == {"reg.local/old:1": Outcome.SKIPPED, "reg.local/old:2": Outcome.SKIPPED, "reg.local/old:3": Outcome.DONE}
    assert asked.count(held_id) == 1  # once per image: a removal is one unit
    assert {t.familiar() for i in host.list_images() for t in i.tags} == {"reg.local/old:1", "reg.local/old:2"}


def test_time_left_reads_to_the_minute() -> None:
    assert [time_left(s) for s in (45, 600, 7199, 90_000, 2 * DAY)] == ["45s", "10m", "1h59m", "1d1h", "2d"]


# --- the store ---------------------------------------------------------------


def test_holds_are_added_read_and_released_and_expired_ones_dropped_on_the_next_write(tmp_path: Path) -> None:
    add_hold(tmp_path, "daemon A", hold("reg.local/app:1", hold_id="old", left=-5), NOW - 3600)
    add_hold(tmp_path, "daemon A", hold("reg.local/app:1", hold_id="one"), NOW)
    add_hold(tmp_path, "daemon A", hold("reg.local/app:2", hold_id="two"), NOW)
    assert read_holds(tmp_path, "daemon B") == ()
    assert [h.id for h in read_holds(tmp_path, "daemon A")] == ["one", "two"]
    released = release_holds(tmp_path, "daemon A", lambda h: h.id == "one", NOW)
    assert [h.id for h in released] == ["one"]
    assert [h.id for h in read_holds(tmp_path, "daemon A")] == ["two"]
    assert (holds_path(tmp_path, "daemon A").parent.stat().st_mode & 0o7777) == 0o777


def _add_many(directory: str, worker: int) -> None:
    for number in range(10):
        add_hold(Path(directory), "daemon", hold("reg.local/app:1", hold_id=f"{worker}-{number}"), NOW)


def test_concurrent_writers_lose_no_hold(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_add_many, args=(str(tmp_path), n)) for n in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert sorted(h.id for h in read_holds(tmp_path, "daemon")) == sorted(f"{w}-{n}" for w in range(6) for n in range(10))


def test_a_holds_file_that_is_not_ours_counts_as_none_with_a_warning(tmp_path: Path) -> None:
    path = holds_path(tmp_path, "daemon")
    path.parent.mkdir()
    path.write_text("[1, 2]")
    warnings: list[str] = []
    assert read_holds(tmp_path, "daemon", warnings.append) == ()
    assert str(path) in warnings[0]


@pytest.mark.parametrize("entry", [{"id": "x"}, "text", {"id": "x", "reference": "r", "created": "soon", "expires": 1}])
def test_an_entry_that_is_no_hold_is_skipped(tmp_path: Path, entry: object) -> None:
    path = holds_path(tmp_path, "daemon")
    path.parent.mkdir()
    good = hold("reg.local/app:1").as_dict()
    path.write_text(json.dumps({"holds": [entry, good]}))
    assert [h.id for h in read_holds(tmp_path, "daemon")] == ["h1"]
