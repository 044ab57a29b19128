"""The executor's untags and removals a few at a time, on the in-memory daemon: each image's steps
in order, the report in plan order, a failure kept to its image, interrupts and a lost daemon."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from reconciler.daemon.host import DaemonRefused
from reconciler.execution import image_snapshot
from reconciler.execution.batch_lists import BatchLists
from reconciler.execution.executor import Executor
from reconciler.execution.interrupt import Interrupt
from reconciler.execution.removal_pool import image_chains
from reconciler.loading.loader import load_manifest_text
from reconciler.model.inventory import ImageRecord, Inventory
from reconciler.model.plan import Action, Plan, Step
from reconciler.model.reference import parse_reference
from reconciler.model.report import Outcome, StepResult
from reconciler.planning.images import plan_changes

from ..fake_daemon import FakeDockerHost, sha


def host_with(images: int, tags: int = 3) -> tuple[FakeDockerHost, list[str], Plan]:
    """``images`` images of ``tags`` tags each, and a plan removing every one."""
    host = FakeDockerHost()
    ids = [host.add_image([f"reg.local/app-{n}:{t}" for t in range(tags)]) for n in range(images)]
    text = "version: 1\nimages:\n" + "".join(f"  - {{name: reg.local/app-{n}, state: absent}}\n" for n in range(images))
    inventory = Inventory(images=host.list_images(), containers=host.list_containers(), host=host.address)
    return host, ids, plan_changes(load_manifest_text(text, "images.yaml", environ={}), inventory)


class Deletes:
    """A before_delete hook: the order of the deletes, and how many were in the daemon at once."""

    def __init__(self, pause: float = 0.01, slow: str = "", slow_pause: float = 0.0) -> None:
        self.order: list[str] = []
        self.most_at_once = 0
        self._now = 0
        self._lock = threading.Lock()
        self._pause, self._slow, self._slow_pause = pause, slow, slow_pause

    def __call__(self, reference: str) -> None:
        with self._lock:
            self._now += 1
            self.most_at_once = max(self.most_at_once, self._now)
        time.sleep(self._slow_pause if self._slow and reference.startswith(self._slow) else self._pause)
        with self._lock:
            self._now -= 1
            self.order.append(reference)


def test_different_images_go_at_once_and_each_image_loses_its_other_tags_before_its_last() -> None:
    host, ids, plan = host_with(8)
    host.before_delete = deletes = Deletes()
    report = Executor(host, removal_workers=4).apply(plan)
    assert deletes.most_at_once > 1  # the concurrent path ran
    assert all(r.outcome is Outcome.DONE for r in report.results)
    assert all(host.inspect_image(image_id) is None for image_id in ids)
    for step in plan.steps:
        if step.action is Action.REMOVE:
            repository = step.ref.partition(":")[0] + ":"
            of_image = [ref for ref in deletes.order if ref.startswith(repository)]
            assert of_image[-1] == step.ref and len(of_image) == 3  # untags first, then the removal


def test_the_report_and_the_live_results_keep_the_plans_order_when_a_later_image_ends_first() -> None:
    host, _, plan = host_with(6)
    host.before_delete = deletes = Deletes(pause=0.005, slow="reg.local/app-0:", slow_pause=0.1)
    seen: list[StepResult] = []
    report = Executor(host, removal_workers=4).apply(plan, on_result=seen.append)
    assert not deletes.order[0].startswith("reg.local/app-0:")  # another image was done first
    assert [r.step for r in report.results] == list(plan.steps)
    assert [r.step for r in seen] == list(plan.steps)


def test_a_failing_step_fails_alone_and_the_other_images_still_go() -> None:
    host, ids, plan = host_with(6)

    def refuse(reference: str) -> None:
        if reference.startswith("reg.local/app-2:"):
            raise DaemonRefused(f"DELETE /images/{reference}: 500", 500, "the image store is broken")

    host.before_delete = refuse
    report = Executor(host, removal_workers=4).apply(plan)
    failed = [r for r in report.results if r.outcome is not Outcome.DONE]
    assert failed and all(r.step.image_id == ids[2] for r in failed)
    assert failed[0].outcome is Outcome.FAILED and failed[0].detail == "the image store is broken"
    assert host.inspect_image(ids[2]) is not None
    assert all(host.inspect_image(image_id) is None for n, image_id in enumerate(ids) if n != 2)


def test_an_interrupt_starts_no_further_step_and_those_running_end() -> None:
    host, _, plan = host_with(12)
    interrupt = Interrupt()
    deletes = Deletes(pause=0.01)

    def ctrl_c(reference: str) -> None:
        if len(deletes.order) == 2:
            interrupt.fire(signal.SIGINT)
        deletes(reference)

    host.before_delete = ctrl_c
    report = Executor(host, interrupt=interrupt, removal_workers=4).apply(plan)
    done = [r for r in report.results if r.outcome is Outcome.DONE]
    skipped = [r for r in report.results if r.outcome is Outcome.SKIPPED]
    # Two deletes ended before the interrupt; at most one more per worker was under way.
    assert 2 <= len(done) == host.calls["delete"] <= 2 + 4
    assert len(done) + len(skipped) == len(plan.steps)
    assert {r.detail for r in skipped} == {"not done: the run was interrupted (SIGINT)"}
    assert [r.step for r in report.results] == list(plan.steps)
    assert report.interrupted == signal.SIGINT


def test_once_the_daemon_is_lost_no_step_starts() -> None:
    host, _, plan = host_with(12)

    def lose(reference: str) -> None:
        host.lost = True

    host.before_delete = lose
    report = Executor(host, removal_workers=4).apply(plan)
    assert all(r.daemon_lost for r in report.results)
    failed = [r for r in report.results if r.outcome is Outcome.FAILED]
    assert 1 <= len(failed) == host.calls["delete"] <= 4  # only the ones already under way
    assert len(report.results) - len(failed) >= len(plan.steps) - 4


def test_an_image_that_gains_a_container_during_the_run_keeps_all_its_tags() -> None:
    host, ids, plan = host_with(6)

    def late_container(reference: str) -> None:
        if not host.containers:
            host.add_container(ids[4], name="late")

    host.before_delete = late_container
    report = Executor(host, removal_workers=4).apply(plan)
    removal = next(r for r in report.results if r.step.action is Action.REMOVE and r.step.image_id == ids[4])
    assert removal.outcome is Outcome.SKIPPED
    image = host.inspect_image(ids[4])
    assert image is not None and len(image.repo_tags) == 3  # untagged ones were put back, or never went
    assert all(host.inspect_image(image_id) is None for n, image_id in enumerate(ids) if n != 4)


def test_chains_group_an_images_steps_and_order_images_built_on_one_another() -> None:
    child, parent, other = sha("child"), sha("parent"), sha("other")
    steps = [
        Step(Action.UNTAG, "reg.local/c:2", "", image_id=child),
        Step(Action.UNTAG, "reg.local/o:2", "", image_id=other),
        Step(Action.REMOVE, "reg.local/c:1", "", image_id=child),
        Step(Action.REMOVE, "reg.local/o:1", "", image_id=other),
        Step(Action.REMOVE, "reg.local/p:1", "", image_id=parent),
    ]
    chains = image_chains(steps, {child: parent})
    assert [(c.image_id, c.indexes, c.after) for c in chains] == [
        (child, [0, 2], set()),
        (other, [1, 3], set()),
        (parent, [4], {0}),
    ]


def test_the_holds_are_asked_one_image_at_a_time_on_the_runs_own_connection() -> None:
    # LiveHolds reads its file and the daemon on the run's first connection: not from two workers at once.
    host, ids, plan = host_with(8)
    host.before_delete = Deletes(pause=0.005)
    asked: list[str] = []
    at_once = {"now": 0, "most": 0}

    def held(image_id: str) -> str | None:
        at_once["now"] += 1
        at_once["most"] = max(at_once["most"], at_once["now"])
        time.sleep(0.01)
        asked.append(image_id)
        at_once["now"] -= 1
        return "held by a job" if image_id == ids[3] else None

    report = Executor(host, removal_workers=4, held=held).apply(plan)
    assert at_once["most"] == 1
    assert sorted(asked) == sorted(ids)  # once per image
    kept = [r for r in report.results if r.step.image_id == ids[3]]
    assert kept and all(r.outcome is Outcome.SKIPPED and r.detail == "held by a job" for r in kept)
    assert host.inspect_image(ids[3]) is not None


class SlowLists(FakeDockerHost):
    """A daemon whose image list answers ``pause`` seconds after the moment it shows (as dockerd
    does on a large host), counting the deletes that start while a list is being read."""

    def __init__(self, pause: float) -> None:
        super().__init__()
        self.pause = pause
        self.reading = 0
        self.deletes_during_reads: list[int] = []  # per list read after the first

    def list_images(self) -> tuple[ImageRecord, ...]:
        images = super().list_images()  # the state at the start of the read
        with self._lock:
            first = self.calls["list_images"] == 1
            if not first:
                self.reading += 1
                self.deletes_during_reads.append(0)
        if not first:
            time.sleep(self.pause)
            with self._lock:
                self.reading -= 1
        return images

    def delete(self, reference: str) -> tuple[str, ...]:
        with self._lock:
            if self.reading:
                self.deletes_during_reads[-1] += 1
        time.sleep(0.002)
        return super().delete(reference)


def slow_lists_host(images: int, pause: float) -> tuple[SlowLists, list[str], Plan]:
    host = SlowLists(pause)
    ids = [host.add_image([f"reg.local/app-{n}:{t}" for t in range(3)]) for n in range(images)]
    text = "version: 1\nimages:\n" + "".join(f"  - {{name: reg.local/app-{n}, state: absent}}\n" for n in range(images))
    inventory = Inventory(images=host.list_images(), containers=host.list_containers(), host=host.address)
    return host, ids, plan_changes(load_manifest_text(text, "images.yaml", environ={}), inventory)


def test_the_other_workers_go_on_deleting_while_one_reads_the_next_batchs_image_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("reconciler.execution.image_snapshot.BATCH_STEPS", 40)
    host, ids, plan = slow_lists_host(30, pause=0.2)
    report = Executor(host, removal_workers=4).apply(plan)
    assert all(r.outcome is Outcome.DONE for r in report.results)
    assert all(host.inspect_image(image_id) is None for image_id in ids)
    # Waiting on the read, each of the 3 other workers could start at most the one delete it had
    # checked before the read began; going on with the current list, they start up to its last 10.
    assert host.deletes_during_reads and max(host.deletes_during_reads) > 3


def test_the_deletes_that_end_while_the_next_list_is_read_are_known_to_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The list shows the moment its read began: an untag that ended during the read would
    otherwise look like a tag the image gained, and its removal would be refused as changed."""
    monkeypatch.setattr("reconciler.execution.image_snapshot.BATCH_STEPS", 12)
    host, ids, plan = slow_lists_host(40, pause=0.05)
    report = Executor(host, removal_workers=4).apply(plan)
    assert sum(host.deletes_during_reads) > 0  # the case arose
    assert [r for r in report.results if r.outcome is not Outcome.DONE] == []
    assert all(host.inspect_image(image_id) is None for image_id in ids)


def test_a_list_read_before_the_daemon_refused_a_step_is_not_kept() -> None:
    lists = BatchLists(ahead=True)
    record = ImageRecord(sha("a"), (parse_reference("reg.local/app:1"),))
    lists.read_now(lambda: (record,))
    started, release = threading.Event(), threading.Event()
    reads: list[str] = []

    def slow_read() -> tuple[ImageRecord, ...]:
        reads.append("slow")
        started.set()
        assert release.wait(5)
        return (record,)

    # Three quarters of a batch served: the next look reads the next list.
    for _ in range(image_snapshot.BATCH_STEPS * 3 // 4):
        lists.look("reg.local/app:1", slow_read)
    reader = threading.Thread(target=lists.look, args=("reg.local/app:1", slow_read))
    reader.start()
    assert started.wait(5)
    # Meanwhile another worker is answered from the current list, without reading.
    assert lists.look("reg.local/app:1", lambda: pytest.fail("read")) is not None
    lists.invalidate()  # a refusal came: what was read before it is not kept
    release.set()
    reader.join(5)
    assert reads == ["slow", "slow"]  # the reader read again after the refusal
    assert lists.look("reg.local/app:1", lambda: pytest.fail("read")) is not None
