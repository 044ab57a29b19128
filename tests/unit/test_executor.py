"""The executor on the in-memory daemon: plans applied, saved plans gone stale, races, failures."""

from __future__ import annotations

import signal

import pytest

from reconciler.daemon.host import PullStreamFailed
from reconciler.daemon.pulling import EventKind, Puller, PullEvent
from reconciler.errors import DaemonUnavailable
from reconciler.execution.executor import Executor
from reconciler.execution.interrupt import Interrupt
from reconciler.flows.outcomes import apply_exit_code
from reconciler.loading.loader import load_manifest_text
from reconciler.model.inventory import Inventory
from reconciler.model.plan import Action, Plan, Step
from reconciler.model.reference import parse_reference
from reconciler.model.report import Outcome, Report, StepResult
from reconciler.planning.images import plan_changes

from ..fake_daemon import FakeDockerHost, sha

ABSENT_OLD = """
version: 1
images:
  - name: reg.local/old
    state: absent
  - name: reg.local/base
    state: absent
"""

APP_2 = """
version: 1
images:
  - name: reg.local/app
    tags: ["2"]
    aliases: ["web:stable"]
  - name: reg.local/old
    state: absent
prune:
  unlisted_tags: true
  dangling: true
"""


def read(host: FakeDockerHost) -> Inventory:
    return Inventory(images=host.list_images(), containers=host.list_containers(), host=host.address)


def plan_for(host: FakeDockerHost, text: str) -> Plan:
    return plan_changes(load_manifest_text(text, "images.yaml", environ={}), read(host))


def result(report: Report, action: Action, ref: str) -> StepResult:
    (found,) = [r for r in report.results if r.step.action is action and r.step.ref == ref]
    return found


def outcomes(report: Report) -> list[tuple[str, str, Outcome]]:
    return [(r.step.action.value, r.step.ref, r.outcome) for r in report.results]


def tags(host: FakeDockerHost, image_id: str) -> tuple[str, ...]:
    details = host.inspect_image(image_id)
    assert details is not None, "the image is gone"
    return details.repo_tags


def quick_puller() -> Puller:
    return Puller(deadline=5.0, sleep=lambda seconds: None, rand=lambda: 0.0)


def test_apply_pulls_tags_untags_and_removes_and_planning_again_finds_nothing() -> None:
    host = FakeDockerHost()
    kept = host.add_image(["reg.local/app:1", "reg.local/app:old"])
    old = host.add_image(["reg.local/old:1"])
    dangling = host.add_image()
    served = host.add_to_registry("reg.local/app:2")
    plan = plan_for(host, APP_2)
    report = Executor(host, parallelism=1).apply(plan)
    assert outcomes(report) == [
        ("pull", "reg.local/app:2", Outcome.DONE),
        ("tag", "web:stable", Outcome.DONE),
        ("untag", "reg.local/app:1", Outcome.DONE),
        ("remove", "reg.local/app:old", Outcome.DONE),
        ("remove", "reg.local/old:1", Outcome.DONE),
        ("remove", dangling, Outcome.DONE),
    ]
    assert report.complete
    assert report.images_deleted == tuple(sorted((kept, old, dangling)))
    assert tags(host, served.id) == ("web:stable", "reg.local/app:2")  # by canonical name: docker.io first
    assert [i.id for i in host.list_images()] == [served.id]
    assert plan_for(host, APP_2).steps == ()


def test_several_pulls_run_on_sessions_of_the_host_that_are_all_closed() -> None:
    host = FakeDockerHost()
    for tag in ("1", "2", "3"):
        host.add_to_registry(f"reg.local/app:{tag}")
    manifest = 'version: 1\nimages:\n  - name: reg.local/app\n    tags: ["1", "2", "3"]\n'
    report = Executor(host, parallelism=3).apply(plan_for(host, manifest))
    assert [r.outcome for r in report.results] == [Outcome.DONE] * 3
    assert host.calls["session"] == host.calls["close"] == 3
    assert plan_for(host, manifest).steps == ()


def test_a_transient_pull_failure_is_retried_and_the_pull_then_lands() -> None:
    host = FakeDockerHost()
    host.add_to_registry("reg.local/app:2")
    host.fail_pulls[parse_reference("reg.local/app:2").canonical()] = [PullStreamFailed("502 Bad Gateway")]
    report = Executor(host, puller=quick_puller()).apply(plan_for(host, APP_2))
    assert report.complete
    assert host.calls["pull"] == 2


# --- saved plans: steps that went stale ---------------------------------------------


def test_a_saved_plans_untag_of_a_tag_moved_since_is_stale_and_the_other_steps_run() -> None:
    host = FakeDockerHost()
    image = host.add_image(["reg.local/app:1", "reg.local/app:x", "reg.local/app:y"])
    elsewhere = host.add_image(["reg.local/other:1"])
    plan = plan_for(host, 'version: 1\nimages:\n  - name: reg.local/app\n    tags: ["1"]\nprune:\n  unlisted_tags: true\n')
    host.tag(elsewhere, "reg.local/app", "x")
    report = Executor(host, refuse_stale=True).apply(plan)
    moved = result(report, Action.UNTAG, "reg.local/app:x")
    assert moved.outcome is Outcome.STALE and "now points at" in moved.detail
    assert result(report, Action.UNTAG, "reg.local/app:y").outcome is Outcome.DONE
    assert report.stale
    assert tags(host, elsewhere) == ("reg.local/app:x", "reg.local/other:1")  # not touched
    assert tags(host, image) == ("reg.local/app:1",)


def test_a_saved_plans_removal_of_an_image_that_gained_a_tag_or_a_container_is_stale_and_touches_nothing() -> None:
    host = FakeDockerHost()
    tagged = host.add_image(["reg.local/old:1"])
    used = host.add_image(["reg.local/old:2"])
    untouched = host.add_image(["reg.local/old:3"])
    plan = plan_for(host, ABSENT_OLD)
    host.tag(tagged, "reg.local/keep", "1")
    host.add_container(used, name="late", state="exited")
    report = Executor(host, refuse_stale=True).apply(plan)
    gained = result(report, Action.REMOVE, "reg.local/old:1")
    assert gained.outcome is Outcome.STALE and "gained the tag reg.local/keep:1" in gained.detail
    in_use = result(report, Action.REMOVE, "reg.local/old:2")
    assert in_use.outcome is Outcome.STALE and "used by container late" in in_use.detail
    assert result(report, Action.REMOVE, "reg.local/old:3").outcome is Outcome.DONE
    assert tags(host, tagged) == ("reg.local/keep:1", "reg.local/old:1")
    assert tags(host, used) == ("reg.local/old:2",)
    assert host.inspect_image(untouched) is None
    assert host.calls["delete"] == 1


def test_a_saved_plans_pull_of_a_tag_that_appeared_since_is_stale_and_not_pulled() -> None:
    host = FakeDockerHost()
    host.add_to_registry("reg.local/app:2")
    plan = plan_for(host, 'version: 1\nimages:\n  - name: reg.local/app\n    tags: ["2"]\n')
    host.add_image(["reg.local/app:2"])
    (stale,) = Executor(host, refuse_stale=True).apply(plan).results
    assert stale.outcome is Outcome.STALE and "is now on the host" in stale.detail
    assert host.calls["pull"] == 0


# --- races with containers --------------------------------------------------------------


def test_a_container_made_after_the_plan_keeps_the_image_and_its_last_tag_without_any_delete() -> None:
    host = FakeDockerHost()
    image = host.add_image(["reg.local/old:1"])
    plan = plan_for(host, ABSENT_OLD)
    late = host.add_container(image, name="late")
    (skipped,) = Executor(host).apply(plan).results
    assert skipped.outcome is Outcome.SKIPPED
    assert f"in use by container late ({late.id[:12]})" in skipped.detail
    assert tags(host, image) == ("reg.local/old:1",)
    assert host.calls["delete"] == 0


def test_a_container_made_just_before_the_delete_is_caught_by_the_daemons_409_and_the_image_stays() -> None:
    host = FakeDockerHost()
    image = host.add_image(["reg.local/old:1"])
    plan = plan_for(host, ABSENT_OLD)
    deletes: list[str] = []

    def race(reference: str) -> None:
        deletes.append(reference)
        if not host.containers:
            host.add_container(image, name="late")

    host.before_delete = race
    (skipped,) = Executor(host).apply(plan).results
    (late,) = host.containers.values()
    assert skipped.outcome is Outcome.SKIPPED
    assert skipped.detail.startswith("the daemon refused: conflict")
    assert f"container {late.id[:12]} is using its referenced image" in skipped.detail
    assert tags(host, image) == ("reg.local/old:1",)
    assert deletes == ["reg.local/old:1"]  # one plain delete (DockerHost.delete has no force), refused


def test_a_blocked_removal_of_an_image_in_use_is_skipped_with_the_container_named() -> None:
    host = FakeDockerHost()
    image = host.add_image(["reg.local/old:1", "reg.local/old:2"])
    host.add_container(image, name="web")
    report = Executor(host).apply(plan_for(host, ABSENT_OLD))
    assert [r.outcome for r in report.results] == [Outcome.SKIPPED, Outcome.SKIPPED]
    assert all("in use by container web" in r.detail for r in report.results)
    assert tags(host, image) == ("reg.local/old:1", "reg.local/old:2")
    assert host.calls["delete"] == 0


# --- failures ----------------------------------------------------------------------------


def test_a_failed_pull_skips_the_tags_and_aliases_that_wanted_its_image() -> None:
    pin = sha("pinned")
    manifest = f"""
version: 1
images:
  - name: reg.local/app
    tags: ["2"]
    aliases: ["web:stable"]
  - name: reg.local/tool
    tags: ["1"]
    digest: "{pin}"
"""
    host = FakeDockerHost()
    host.add_to_registry("reg.local/app:2")
    host.fail_pulls[parse_reference("reg.local/app:2").canonical()] = PullStreamFailed("unauthorized: authentication required")
    report = Executor(host, puller=quick_puller()).apply(plan_for(host, manifest))
    failed = result(report, Action.PULL, "reg.local/app:2")
    assert failed.outcome is Outcome.FAILED and "authentication required" in failed.detail
    alias = result(report, Action.TAG, "web:stable")
    assert (alias.outcome, alias.detail) == (Outcome.SKIPPED, "reg.local/app:2 was not fetched, so nothing was tagged")
    unknown = result(report, Action.PULL, f"reg.local/tool@{pin}")
    assert unknown.outcome is Outcome.FAILED and "manifest unknown" in unknown.detail
    tag = result(report, Action.TAG, "reg.local/tool:1")
    assert tag.outcome is Outcome.SKIPPED and "was not fetched" in tag.detail
    assert host.list_images() == () and host.calls["tag"] == 0


def test_a_pull_only_a_rate_limit_stopped_marks_the_steps_waiting_on_it_rate_limited() -> None:
    host = FakeDockerHost()
    host.add_to_registry("reg.local/app:2")
    host.fail_pulls[parse_reference("reg.local/app:2").canonical()] = PullStreamFailed("toomanyrequests: slow down")
    manifest = 'version: 1\nimages:\n  - name: reg.local/app\n    tags: ["2"]\n    aliases: ["web:stable"]\n'
    pull, alias = Executor(host, puller=Puller(deadline=1.0, sleep=lambda s: None, rand=lambda: 0.0)).apply(
        plan_for(host, manifest)
    ).results
    assert (pull.outcome, pull.rate_limited) == (Outcome.FAILED, True)
    assert (alias.outcome, alias.rate_limited) == (Outcome.SKIPPED, True)


def test_a_child_and_its_parent_removed_in_one_plan_go_child_first() -> None:
    host = FakeDockerHost()
    parent = host.add_image(["reg.local/base:1"])
    child = host.add_image(["reg.local/old:1"], parent=parent)
    deletes: list[str] = []
    host.before_delete = deletes.append
    report = Executor(host).apply(plan_for(host, ABSENT_OLD))
    assert outcomes(report) == [("remove", "reg.local/old:1", Outcome.DONE), ("remove", "reg.local/base:1", Outcome.DONE)]
    assert deletes == ["reg.local/old:1", "reg.local/base:1"]
    assert [r.deleted for r in report.results] == [(child,), (parent,)]
    assert host.images == {}


def test_a_parent_removed_before_its_child_is_only_untagged_and_goes_with_the_child() -> None:
    host = FakeDockerHost()
    parent = host.add_image(["reg.local/base:1"])
    child = host.add_image(["reg.local/old:1"], parent=parent)
    plan = Plan(
        steps=(
            Step(Action.REMOVE, "reg.local/base:1", "by hand", image_id=parent),
            Step(Action.REMOVE, "reg.local/old:1", "by hand", image_id=child),
        )
    )
    first, second = Executor(host).apply(plan).results
    assert first.outcome is Outcome.DONE and "stays as the base of other images" in first.detail
    assert (first.deleted, first.bytes) == ((), 0)
    assert second.outcome is Outcome.DONE and second.deleted == (child, parent)
    assert host.images == {}


def test_a_daemon_lost_mid_run_fails_the_step_as_daemon_lost() -> None:
    host = FakeDockerHost()
    host.add_image(["reg.local/old:1", "reg.local/old:2"])
    gone = host.add_image(["reg.local/base:1"])

    def lose(reference: str) -> None:
        host.lost = True

    host.before_delete = lose
    report = Executor(host, removal_workers=1).apply(plan_for(host, ABSENT_OLD))
    first = report.results[0]
    assert (first.outcome, first.daemon_lost) == (Outcome.FAILED, True)
    assert first.detail.startswith("lost the connection to the daemon: Cannot reach the Docker daemon")
    # The steps after it are not tried against a daemon that is gone: each is listed as not done.
    rest = report.results[1:]
    assert rest and all(r.outcome is Outcome.SKIPPED and r.daemon_lost for r in rest)
    assert {r.detail for r in rest} == {"not done: the daemon stopped answering"}
    host.lost = False
    assert tags(host, gone) == ("reg.local/base:1",)


def test_a_daemon_lost_during_a_pull_fails_it_as_daemon_lost_without_retrying() -> None:
    host = FakeDockerHost()
    host.add_to_registry("reg.local/app:2")
    host.fail_calls["pull"] = DaemonUnavailable("the socket went away")
    plan = plan_for(host, 'version: 1\nimages:\n  - name: reg.local/app\n    tags: ["2"]\n')
    (first,) = Executor(host).apply(plan).results  # the call itself raised DaemonUnavailable
    assert (first.outcome, first.daemon_lost) == (Outcome.FAILED, True)
    del host.fail_calls["pull"]
    host.lost = True  # the pull stream says the daemon stopped answering (PullStreamFailed(lost=True))
    (second,) = Executor(host, puller=quick_puller()).apply(plan).results
    assert (second.outcome, second.daemon_lost) == (Outcome.FAILED, True)
    assert host.calls["pull"] == 2  # one attempt each: a lost daemon is not retried


# --- a removal is one unit; make before break ---------------------------------------------


def test_a_container_made_before_a_multi_tag_removal_keeps_every_tag_of_the_image() -> None:
    host = FakeDockerHost()
    image = host.add_image(["reg.local/old:1", "reg.local/old:2"])
    plan = plan_for(host, ABSENT_OLD)
    host.add_container(image, name="late")
    report = Executor(host).apply(plan)
    assert [r.outcome for r in report.results] == [Outcome.SKIPPED, Outcome.SKIPPED]
    assert all("none of its tags go" in r.detail for r in report.results)
    assert tags(host, image) == ("reg.local/old:1", "reg.local/old:2")
    assert host.calls["delete"] == 0


def test_a_saved_plans_multi_tag_removal_of_an_image_now_in_use_is_stale_as_a_whole() -> None:
    host = FakeDockerHost()
    image = host.add_image(["reg.local/old:1", "reg.local/old:2"])
    plan = plan_for(host, ABSENT_OLD)
    host.add_container(image, name="late")
    report = Executor(host, refuse_stale=True).apply(plan)
    assert [r.outcome for r in report.results] == [Outcome.STALE, Outcome.STALE]
    assert tags(host, image) == ("reg.local/old:1", "reg.local/old:2")
    assert host.calls["delete"] == 0


def test_a_container_made_between_the_untags_and_the_last_delete_gets_the_tags_put_back() -> None:
    host = FakeDockerHost()
    image = host.add_image(["reg.local/old:1", "reg.local/old:2", "reg.local/old:3"])
    plan = plan_for(host, ABSENT_OLD)

    def race(reference: str) -> None:
        if reference.endswith(":3") and not host.containers:
            host.add_container(image, name="late")  # after the check, just before the last delete

    host.before_delete = race
    report = Executor(host).apply(plan)
    removal = result(report, Action.REMOVE, "reg.local/old:3")
    assert removal.outcome is Outcome.SKIPPED and "its tags were put back" in removal.detail
    assert tags(host, image) == ("reg.local/old:1", "reg.local/old:2", "reg.local/old:3")


def test_a_failed_pull_leaves_alone_the_tags_it_was_to_replace() -> None:
    manifest = """
version: 1
images:
  - name: reg.local/dep
    tags: ["1.1"]
    aliases: ["reg.local/dep:stable"]
prune:
  unlisted_tags: true
"""
    host = FakeDockerHost()
    working = host.add_image(["reg.local/dep:1.0", "reg.local/dep:stable"])
    host.fail_pulls[parse_reference("reg.local/dep:1.1").canonical()] = PullStreamFailed(
        "toomanyrequests: rate limit"
    )
    report = Executor(host, puller=quick_puller()).apply(plan_for(host, manifest))
    untag = result(report, Action.REMOVE, "reg.local/dep:1.0")
    assert untag.outcome is Outcome.SKIPPED and "nothing it was to replace is touched" in untag.detail
    assert untag.rate_limited
    assert tags(host, working) == ("reg.local/dep:1.0", "reg.local/dep:stable")


# --- the declared platform ------------------------------------------------------------------


PLATFORM = """
version: 1
images:
  - name: reg.local/app
    tags: ["2"]
    platform: linux/amd64
    aliases: ["web:stable"]
"""


def test_a_pull_of_another_platform_fails_tags_nothing_and_takes_the_tag_back_off() -> None:
    host = FakeDockerHost(refuses_other_platforms=False)  # as Engine 20.10
    host.add_to_registry("reg.local/app:2", architecture="arm64")
    report = Executor(host, puller=quick_puller()).apply(plan_for(host, PLATFORM))
    pull = result(report, Action.PULL, "reg.local/app:2")
    assert pull.outcome is Outcome.FAILED
    assert "was pulled for linux/arm64, not the declared linux/amd64" in pull.detail
    assert result(report, Action.TAG, "web:stable").outcome is Outcome.SKIPPED
    assert host.inspect_image("reg.local/app:2") is None and host.inspect_image("web:stable") is None


def test_a_pull_of_another_platform_puts_the_tag_back_where_it_was() -> None:
    host = FakeDockerHost(refuses_other_platforms=False)
    before = host.add_image(["reg.local/app:2"])
    host.add_to_registry("reg.local/app:2", architecture="arm64")
    manifest = PLATFORM.replace('    platform: linux/amd64\n', '    platform: linux/amd64\n    pull: always\n')
    plan = plan_for(host, manifest)
    report = Executor(host, puller=quick_puller()).apply(plan)
    assert result(report, Action.PULL, "reg.local/app:2").outcome is Outcome.FAILED
    found = host.inspect_image("reg.local/app:2")
    assert found is not None and found.id == before


def test_a_pull_of_the_declared_platform_lands() -> None:
    host = FakeDockerHost(refuses_other_platforms=False)
    host.add_to_registry("reg.local/app:2", architecture="x86_64")  # the kernel's name for amd64
    report = Executor(host, puller=quick_puller()).apply(plan_for(host, PLATFORM))
    assert [r.outcome for r in report.results] == [Outcome.DONE, Outcome.DONE]


# --- interrupted runs -----------------------------------------------------------------------


def test_an_interrupt_stops_every_step_after_it_and_the_report_says_which_signal() -> None:
    host = FakeDockerHost()
    host.add_image(["reg.local/old:1"])
    host.add_image(["reg.local/base:1"])
    interrupt = Interrupt()

    def ctrl_c(reference: str) -> None:
        interrupt.fire(signal.SIGINT)  # while the first removal runs

    host.before_delete = ctrl_c
    report = Executor(host, interrupt=interrupt, removal_workers=1).apply(plan_for(host, ABSENT_OLD))
    first, second = report.results
    assert first.outcome is Outcome.DONE
    assert (second.outcome, second.detail) == (Outcome.SKIPPED, "not done: the run was interrupted (SIGINT)")
    assert report.interrupted == signal.SIGINT and apply_exit_code(report) == 130
    assert host.calls["delete"] == 1


def test_an_interrupt_cuts_the_running_pulls_and_stops_their_retries() -> None:
    host = FakeDockerHost()
    host.add_to_registry("reg.local/app:2")
    interrupt = Interrupt()

    host.fail_pulls[parse_reference("reg.local/app:2").canonical()] = [
        PullStreamFailed("the pull stream broke off: closed", broken=True)
    ]

    def sigterm_while_waiting(event: PullEvent) -> None:
        if event.kind is EventKind.RETRY:
            interrupt.fire(signal.SIGTERM)  # during the back-off before the second attempt

    puller = Puller(deadline=60.0, sleep=interrupt.sleep, cancelled=lambda: interrupt.fired, on_event=sigterm_while_waiting)
    report = Executor(host, puller=puller, interrupt=interrupt).apply(plan_for(host, APP_2))
    pull = result(report, Action.PULL, "reg.local/app:2")
    assert pull.outcome is Outcome.SKIPPED and "cancelled" in pull.detail
    assert host.inspect_image("reg.local/app:2") is None  # no retry after the cut
    assert apply_exit_code(report) == 143


# --- digest references -----------------------------------------------------------------------


def test_untagging_one_of_two_digest_references_only_untags() -> None:
    host = FakeDockerHost()
    first, second = f"reg.local/b@{sha('x')}", f"reg.local/b@{sha('y')}"
    image = host.add_image(digests=[first, second])
    step = Step(action=Action.UNTAG, ref=first, image_id=image, reason="test")
    (done,) = Executor(host).apply(Plan(steps=(step,))).results
    assert done.outcome is Outcome.DONE, done.detail  # before: "is now the image's last tag"
    details = host.inspect_image(image)
    assert details is not None and details.repo_digests == (second,)


def test_a_blocked_digest_untag_of_an_in_use_image_that_got_a_kept_tag_runs_as_a_plain_untag() -> None:
    host = FakeDockerHost()
    image = host.add_image(["reg.local/c:latest"])
    content = host.images[image].content
    host.refs[parse_reference(f"reg.local/c@{content.digest}").canonical()] = image
    host.refs[parse_reference(f"reg.local/a@{sha('m')}").canonical()] = image
    host.add_container(image, name="web")
    host.add_to_registry("reg.local/c:2", content)  # the registry's c:2 is this very image
    manifest = """
version: 1
images:
  - name: reg.local/c
    tags: ["2"]
  - name: reg.local/a
    state: absent
prune:
  unlisted_tags: true
"""
    plan = plan_for(host, manifest)
    untag = next(s for s in plan.steps if s.ref.startswith("reg.local/a@"))
    assert untag.blocked
    report = Executor(host, puller=quick_puller()).apply(plan)
    assert result(report, Action.UNTAG, untag.ref).outcome is Outcome.DONE
    assert not [s for s in plan_for(host, manifest).runnable]  # converged: before, the untag came back


PRUNE_APP = """
version: 1
images:
  - name: reg.local/app
    tags: ["2"]
prune:
  unlisted_tags: true
"""


def test_one_image_list_and_one_container_list_serve_a_batch_of_removal_checks() -> None:
    host = FakeDockerHost()
    host.add_image(["reg.local/app:2"])
    olds = [host.add_image([f"reg.local/app:old{n}a", f"reg.local/app:old{n}b"]) for n in range(30)]
    used = host.add_image(["reg.local/app:used"])
    host.add_container(used)
    plan = plan_for(host, PRUNE_APP)
    assert len([s for s in plan.runnable if s.is_destructive]) == 60
    before = dict(host.calls)
    report = Executor(host, parallelism=1).apply(plan)
    calls = {name: count - before.get(name, 0) for name, count in host.calls.items()}
    assert sorted(report.images_deleted) == sorted(olds)
    assert calls.get("inspect_image", 0) == 0 and calls["list_images"] == 1 and calls["list_containers"] == 1
    assert tags(host, used) == ("reg.local/app:used",)  # blocked: in use, it keeps its tag


def test_an_image_list_serves_a_batch_of_steps_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reconciler.execution.image_snapshot.BATCH_STEPS", 10)
    host = FakeDockerHost()
    host.add_image(["reg.local/app:2"])
    for n in range(30):
        host.add_image([f"reg.local/app:old{n}a", f"reg.local/app:old{n}b"])
    plan = plan_for(host, PRUNE_APP)
    before = host.calls["list_images"]
    report = Executor(host, parallelism=1, removal_workers=1).apply(plan)
    assert report.complete
    assert host.calls["list_images"] - before == 6  # 60 checks, 10 a list
