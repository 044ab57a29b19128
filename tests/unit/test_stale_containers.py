"""Stale containers on plain data and on the fake daemon: created from a declared tag that moved."""

from __future__ import annotations

from reconciler.flows.apply_host import stale_after
from reconciler.flows.host_facts import creation_names
from reconciler.loading.loader import load_manifest_text
from reconciler.model.inventory import Inventory
from reconciler.model.plan import Action, Plan, Step
from reconciler.model.report import Outcome, Report, StepResult
from reconciler.planning.images import plan_changes
from reconciler.planning.stale_containers import StaleContainer, stale_containers

from ..fake_daemon import FakeDockerHost

MANIFEST = """
version: 1
images:
  - name: reg.local/web
    tags: ["1"]
    pull: always
"""


def read(host: FakeDockerHost, remote: dict[str, str] | None = None) -> Inventory:
    containers = creation_names(host, host.list_containers())
    return Inventory(images=host.list_images(), containers=containers, remote_digests=remote or {})


def test_a_container_created_from_a_tag_that_moved_is_reported_with_both_images() -> None:
    host = FakeDockerHost()
    old = host.add_image(["reg.local/web:1"])
    host.add_container("reg.local/web:1", name="web")
    host.add_container(old, name="by-id")  # created from the id: no tag of its own to fall behind
    new = host.add_image(["reg.local/web:1"])  # the tag moves, as a pull moves it
    assert {c.name: c.image_name for c in host.list_containers()}["web"] == old  # the list names it by id now
    found = stale_containers({"docker.io/x:1", "reg.local/web:1"}, read(host))
    assert [(s.container, s.tag, s.old_image, s.new_image, s.pending) for s in found] == [
        ("web", "reg.local/web:1", old, new, False)
    ]
    assert host.calls["container_image_name"] == 2  # only the containers listed by id are asked


def test_a_pull_the_plan_will_run_makes_the_report_pending_with_the_registry_digest() -> None:
    host = FakeDockerHost()
    old = host.add_image(["reg.local/web:1"])
    host.add_container("reg.local/web:1", name="web")
    manifest = load_manifest_text(MANIFEST, "images.yaml", environ={})
    inventory = read(host, {"reg.local/web:1": "sha256:" + "b" * 64})
    plan = plan_changes(manifest, inventory)
    found = stale_containers(manifest.declared.tags, inventory, plan)
    assert [(s.container, s.old_image, s.new_image, s.pending) for s in found] == [("web", old, "sha256:" + "b" * 64, True)]
    assert stale_containers(manifest.declared.tags, inventory) == ()  # nothing moved yet


def test_a_container_of_an_undeclared_tag_or_of_the_current_image_is_not_reported() -> None:
    host = FakeDockerHost()
    host.add_image(["reg.local/web:1"])
    host.add_image(["reg.local/other:1"])
    host.add_container("reg.local/web:1", name="current")
    host.add_container("reg.local/other:1", name="undeclared")
    host.add_image(["reg.local/other:1"])
    assert stale_containers({"reg.local/web:1"}, read(host)) == ()


def _after_a_pull(host: FakeDockerHost) -> tuple[StaleContainer, ...]:
    """What apply reports once its pull of reg.local/web:1 moved the tag (a new image under it)."""
    manifest = load_manifest_text(MANIFEST, "images.yaml", environ={})
    pull = Step(Action.PULL, "reg.local/web:1", "pull: always, the registry has new content")
    new = host.add_image(["reg.local/web:1"])
    report = Report(results=(StepResult(pull, Outcome.DONE, "pulled", image_id=new),))
    return stale_after(host, manifest, None, Plan(steps=(pull,)), report)


def test_after_a_pull_the_images_are_not_read_again_when_no_container_came_from_a_declared_tag() -> None:
    host = FakeDockerHost()
    host.add_image(["reg.local/web:1"])
    host.add_container(host.add_image(["reg.local/other:1"]), name="undeclared")
    host.calls.clear()
    assert _after_a_pull(host) == ()
    assert host.calls["list_containers"] == 1
    assert host.calls["list_images"] == 0  # on a host of 11,000 images, a third of a second saved


def test_after_a_pull_a_container_of_the_moved_tag_is_found_with_one_image_list() -> None:
    host = FakeDockerHost()
    old = host.add_image(["reg.local/web:1"])
    host.add_container("reg.local/web:1", name="web")
    host.calls.clear()
    found = _after_a_pull(host)
    assert [(s.container, s.old_image, s.pending) for s in found] == [("web", old, False)]
    assert host.calls["list_images"] == 1
