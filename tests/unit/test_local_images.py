"""Built and loaded images planned from their local inputs, and run on the fake daemon: build or
load only when the inputs changed, say why, cancel what depended on a failed build."""

from __future__ import annotations

import gzip
import signal
from pathlib import Path

from reconciler.daemon.host import BuildFailed, BuildRequest, OutputLine
from reconciler.execution.executor import Executor
from reconciler.execution.interrupt import Interrupt
from reconciler.flows.host_facts import read_host_facts
from reconciler.loading.loader import load_manifest
from reconciler.model.manifest import Manifest
from reconciler.model.plan import Action, Plan
from reconciler.model.report import Outcome, Report
from reconciler.planning.host_plan import decide
from reconciler.state.local_images import record_local_images
from tests.fake_daemon import FakeDockerHost

NOW = 2_000_000_000.0


def _manifest(tmp_path: Path, body: str) -> Manifest:
    (tmp_path / "app").mkdir(exist_ok=True)
    if not (tmp_path / "app" / "Dockerfile").exists():
        (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\nCOPY main.py /\n")
        (tmp_path / "app" / "main.py").write_text("print(1)\n")
    path = tmp_path / "images.yaml"
    path.write_text("version: 1\n" + body)
    return load_manifest(path, {})


def _plan(host: FakeDockerHost, manifest: Manifest, state: Path) -> Plan:
    return decide(manifest, read_host_facts(host, manifest, None, state, NOW), NOW).plan


def _apply(host: FakeDockerHost, manifest: Manifest, state: Path) -> Report:
    """As apply does: plan, run, record what was built and loaded."""
    facts = read_host_facts(host, manifest, None, state, NOW)
    report = Executor(host).apply(decide(manifest, facts, NOW).plan)
    done = [r for r in report.results if r.outcome is Outcome.DONE and r.step.inputs and r.image_id]
    record_local_images(
        state,
        loaded={r.step.inputs: r.image_id for r in done if r.step.action is Action.LOAD},  # type: ignore[misc]
        built={r.step.inputs: facts.local.inputs[f"docker.io/library/{r.step.ref}"] for r in done if r.step.action is Action.BUILD},  # type: ignore[misc]
    )
    return report


BUILT = """images:
  - name: app
    tags: ["1", "stable"]
    aliases: ["app:latest"]
    source: build
    context: app
    args: {VERSION: "1"}
"""


def test_a_build_tags_every_tag_and_alias_and_the_next_plan_is_empty(tmp_path: Path) -> None:
    host = FakeDockerHost()
    manifest = _manifest(tmp_path, BUILT)
    plan = _plan(host, manifest, tmp_path / "state")
    assert [(s.action, s.ref, s.reason) for s in plan.steps] == [
        (Action.BUILD, "app:1", "not built yet"),
        (Action.TAG, "app:latest", "alias of app:1; not on the host"),
        (Action.TAG, "app:stable", "tag of app:1; not on the host"),
    ]
    report = _apply(host, manifest, tmp_path / "state")
    assert report.complete, report
    assert host.builds[0].labels["io.reconciler.build-inputs"] == plan.steps[0].inputs
    assert host.builds[0].args == {"VERSION": "1"}
    assert not _plan(host, manifest, tmp_path / "state").steps


def test_a_changed_context_file_or_arg_rebuilds_and_says_which(tmp_path: Path) -> None:
    host = FakeDockerHost()
    state = tmp_path / "state"
    manifest = _manifest(tmp_path, BUILT)
    _apply(host, manifest, state)
    (tmp_path / "app" / "main.py").write_text("print(2)\n")
    plan = _plan(host, manifest, state)
    assert [(s.action, s.reason) for s in plan.steps if s.action is Action.BUILD] == [
        (Action.BUILD, "context file main.py changed")
    ]
    _apply(host, manifest, state)
    assert not _plan(host, manifest, state).steps
    changed = _manifest(tmp_path, BUILT.replace('VERSION: "1"', 'VERSION: "2"'))
    assert [s.reason for s in _plan(host, changed, state).steps if s.action is Action.BUILD] == [
        "build arg VERSION changed"
    ]


def test_a_failed_build_tags_nothing_and_cancels_its_tags_while_other_entries_converge(tmp_path: Path) -> None:
    host = FakeDockerHost()
    host.add_to_registry("other:1")
    host.fail_builds["docker.io/library/app:1"] = "The command '/bin/sh -c false' returned a non-zero code: 1"
    manifest = _manifest(tmp_path, BUILT + "  - name: other\n    tags: ['1']\n")
    report = _apply(host, manifest, tmp_path / "state")
    outcomes = {r.step.ref: (r.outcome, r.detail) for r in report.results}
    assert outcomes["app:1"][0] is Outcome.FAILED and "returned a non-zero code" in outcomes["app:1"][1]
    assert outcomes["app:latest"] == (Outcome.SKIPPED, "app:1 was not built, so nothing was tagged")
    assert outcomes["app:stable"][0] is Outcome.SKIPPED
    assert outcomes["other:1"][0] is Outcome.DONE
    assert "docker.io/library/app:1" not in host.refs


def test_an_archive_loads_once_and_again_only_when_it_changed_or_its_image_went(tmp_path: Path) -> None:
    host = FakeDockerHost()
    state = tmp_path / "state"
    (tmp_path / "tool.tar.gz").write_bytes(gzip.compress(b"first archive"))
    manifest = _manifest(tmp_path, "images:\n  - name: tool\n    tags: ['2']\n    source: load\n    archive: tool.tar.gz\n")
    first = _plan(host, manifest, state)
    assert [(s.action, s.ref, s.reason) for s in first.steps] == [(Action.LOAD, "tool:2", "not loaded yet")]
    assert _apply(host, manifest, state).complete
    assert not _plan(host, manifest, state).steps
    loaded = host.refs["docker.io/library/tool:2"]
    assert host.delete("tool:2") == (loaded,)  # its last reference: the image goes with it
    again = _plan(host, manifest, state)
    assert [(s.action, s.reason) for s in again.steps] == [
        (Action.LOAD, f"the image {loaded[7:19]} this archive gave is gone")
    ]
    _apply(host, manifest, state)
    (tmp_path / "tool.tar.gz").write_bytes(gzip.compress(b"second archive"))
    changed = _plan(host, manifest, state)
    assert [s.action for s in changed.steps] == [Action.LOAD]
    assert changed.steps[0].reason.startswith("the archive is new or changed")


def test_a_loaded_image_still_there_is_tagged_again_not_loaded(tmp_path: Path) -> None:
    host = FakeDockerHost()
    state = tmp_path / "state"
    (tmp_path / "tool.tar").write_bytes(b"an archive")
    manifest = _manifest(tmp_path, "images:\n  - name: tool\n    tags: ['2']\n    source: load\n    archive: tool.tar\n")
    _apply(host, manifest, state)
    loaded = host.refs["docker.io/library/tool:2"]
    host.add_image(["tool:2"])  # someone points the tag elsewhere; the loaded image keeps its other tag
    host.tag(loaded, "keep", "me")
    plan = _plan(host, manifest, state)
    assert [(s.action, s.source) for s in plan.steps] == [(Action.TAG, loaded)]
    assert _apply(host, manifest, state).complete
    assert host.refs["docker.io/library/tool:2"] == loaded


def test_retention_never_takes_a_declared_built_tag(tmp_path: Path) -> None:
    host = FakeDockerHost()
    state = tmp_path / "state"
    body = BUILT + "prune: {unlisted_tags: true}\nretention:\n  min_age: 0s\n  unmatched: remove\n"
    manifest = _manifest(tmp_path, body)
    _apply(host, manifest, state)
    host.tag(host.refs["docker.io/library/app:1"], "app", "scratch")
    plan = _plan(host, manifest, state)
    assert [(s.action, s.ref) for s in plan.steps] == [(Action.UNTAG, "app:scratch")]


class _InterruptedBuild(FakeDockerHost):
    """A build that a SIGINT cuts midway: the daemon's interrupt ends it, as it kills a CLI build."""

    interrupt_during_build: Interrupt | None = None

    def build_image(self, request: BuildRequest, deadline: float, on_line: OutputLine) -> str:
        assert self.interrupt_during_build is not None
        self.interrupt_during_build.fire(signal.SIGINT)
        assert self.calls["interrupt"] == 1  # the running build was watched, so it was cut
        raise BuildFailed("docker build exited with -9")


def test_an_interrupted_build_is_not_done_rather_than_failed_and_nothing_after_it_starts(tmp_path: Path) -> None:
    host = _InterruptedBuild()
    interrupt = Interrupt()
    host.interrupt_during_build = interrupt
    manifest = _manifest(tmp_path, BUILT)
    plan = decide(manifest, read_host_facts(host, manifest, None, tmp_path / "state", NOW), NOW).plan
    report = Executor(host, interrupt=interrupt).apply(plan)
    assert [(r.step.ref, r.outcome) for r in report.results] == [
        ("app:1", Outcome.SKIPPED),
        ("app:latest", Outcome.SKIPPED),
        ("app:stable", Outcome.SKIPPED),
    ]
    assert report.results[0].detail == "not done: the run was interrupted (SIGINT); the build was cancelled"
