"""The planner: plain manifests and inventories in, plain plans out."""

from __future__ import annotations

import random

from reconciler.model.manifest import ImageState, PullPolicy
from reconciler.model.plan import Action, Step
from reconciler.planning.images import plan_changes
from reconciler.planning.sizing import sized_plan

from .planning_data import container, digest, image, image_id, inventory, manifest, spec


def actions(plan_steps: tuple[Step, ...]) -> list[tuple[str, str]]:
    return [(s.action.value, s.ref) for s in plan_steps]


def test_missing_tags_are_pulled_and_present_ones_left_alone() -> None:
    m = manifest(spec("nginx", "latest", "1.23.1"))
    inv = inventory(image("a", "nginx:latest"))
    plan = plan_changes(m, inv)
    assert actions(plan.steps) == [("pull", "nginx:1.23.1")]
    assert plan.steps[0].image_id is None
    assert plan.steps[0].blocked is None


def test_in_sync_host_gives_an_empty_plan() -> None:
    m = manifest(spec("nginx", "latest"), spec("localhost:5000/app", "1"), dangling=True, unlisted_tags=True)
    inv = inventory(image("a", "nginx:latest"), image("b", "localhost:5000/app:1"))
    plan = plan_changes(m, inv)
    assert plan.steps == ()
    assert not plan.has_changes


def test_alias_is_tagged_from_the_first_tag() -> None:
    m = manifest(spec("nginx", "1.23.1", "latest", aliases=("nginx:my_blog_stable",)))
    inv = inventory(image("a", "nginx:1.23.1", "nginx:latest"))
    (step,) = plan_changes(m, inv).steps
    assert (step.action, step.ref, step.source, step.image_id) == (
        Action.TAG,
        "nginx:my_blog_stable",
        "nginx:1.23.1",
        image_id("a"),
    )


def test_alias_pointing_elsewhere_is_moved_and_alias_in_place_is_not() -> None:
    m = manifest(spec("nginx", "latest", aliases=("blog:stable", "blog:ok")))
    inv = inventory(image("a", "nginx:latest", "blog:ok"), image("b", "blog:stable", "other:1"))
    (step,) = plan_changes(m, inv).steps
    assert step.ref == "blog:stable"
    assert "now points at" in step.reason


def test_alias_of_a_tag_still_to_pull_is_tagged_after_the_pull() -> None:
    m = manifest(spec("nginx", "latest", aliases=("blog:stable",)))
    plan = plan_changes(m, inventory())
    assert actions(plan.steps) == [("pull", "nginx:latest"), ("tag", "blog:stable")]
    assert plan.steps[1].image_id is None  # unknown until pulled


def test_removing_one_of_several_tags_only_untags() -> None:
    m = manifest(spec("nginx", "latest"), unlisted_tags=True)
    inv = inventory(image("a", "nginx:latest", "nginx:old"))
    (step,) = plan_changes(m, inv).steps
    assert (step.action, step.ref, step.bytes) == (Action.UNTAG, "nginx:old", 0)


def test_unlisted_tags_left_alone_unless_asked() -> None:
    m = manifest(spec("nginx", "latest"))
    inv = inventory(image("a", "nginx:latest"), image("b", "nginx:old"))
    assert plan_changes(m, inv).steps == ()


def test_unlisted_last_tag_removes_the_image_with_its_unique_bytes() -> None:
    m = manifest(spec("nginx", "latest"), unlisted_tags=True)
    inv = inventory(image("a", "nginx:latest"), image("b", "nginx:old", size=5000, shared=1200))
    (step,) = sized_plan(plan_changes(m, inv), inv).steps  # the sizing stage writes the bytes
    assert (step.action, step.ref, step.image_id, step.bytes) == (Action.REMOVE, "nginx:old", image_id("b"), 3800)


def test_unlisted_tags_only_in_declared_repositories() -> None:
    m = manifest(spec("nginx", "latest"), unlisted_tags=True)
    inv = inventory(image("a", "nginx:latest"), image("b", "redis:7"))
    assert plan_changes(m, inv).steps == ()


def test_absent_repository_untags_then_removes_last_tag() -> None:
    m = manifest(spec("localhost:5000/old/tool", state=ImageState.ABSENT))
    inv = inventory(
        image("a", "localhost:5000/old/tool:1", "localhost:5000/old/tool:2"),
        image("b", "localhost:5000/old/tool:3", "keep:me"),
    )
    plan = plan_changes(m, inv)
    assert actions(plan.steps) == [
        ("untag", "localhost:5000/old/tool:1"),
        ("untag", "localhost:5000/old/tool:3"),
        ("remove", "localhost:5000/old/tool:2"),
    ]


def test_absent_repository_images_pulled_by_digest_only_are_removed() -> None:
    m = manifest(spec("localhost:5000/old/tool", state=ImageState.ABSENT))
    inv = inventory(image("a", digests=(f"localhost:5000/old/tool@{digest('x')}",)))
    (step,) = plan_changes(m, inv).steps
    assert (step.action, step.ref) == (Action.REMOVE, f"localhost:5000/old/tool@{digest('x')}")


def test_image_used_by_a_container_is_never_removed() -> None:
    m = manifest(spec("old", state=ImageState.ABSENT), dangling=True)
    inv = inventory(
        image("a", "old:1", "old:2"),
        image("d"),
        containers=(container("web", "a"), container("job", "d")),
    )
    plan = plan_changes(m, inv)
    assert plan.runnable == ()
    assert [(s.action, s.ref) for s in plan.blocked] == [(Action.UNTAG, "old:1"), (Action.REMOVE, "old:2")]
    assert all("web" in (s.blocked or "") for s in plan.blocked)


def test_in_use_image_can_still_lose_a_tag_it_does_not_need() -> None:
    m = manifest(spec("old", state=ImageState.ABSENT))
    inv = inventory(image("a", "old:1", "keep:1"), containers=(container("web", "a"),))
    (step,) = plan_changes(m, inv).steps
    assert (step.action, step.blocked) == (Action.UNTAG, None)


def test_dangling_images_removed_only_when_asked_and_unused() -> None:
    inv = inventory(image("a", "nginx:latest"), image("d1"), image("d2"), containers=(container("c", "d2"),))
    assert plan_changes(manifest(spec("nginx", "latest")), inv).steps == ()
    plan = plan_changes(manifest(spec("nginx", "latest"), dangling=True), inv)
    assert actions(plan.steps) == [("remove", image_id("d1"))]


def test_dangling_image_with_digest_is_removed_by_its_digest_reference() -> None:
    ref = f"localhost:5000/x@{digest('x')}"
    plan = plan_changes(manifest(dangling=True), inventory(image("d", digests=(ref,))))
    assert actions(plan.steps) == [("remove", ref)]


def test_declared_digest_pin_protects_a_dangling_image() -> None:
    pin = digest("app")
    m = manifest(spec("localhost:5000/app", digest=pin), dangling=True)
    inv = inventory(image("d", digests=(f"localhost:5000/app@{pin}",)))
    assert plan_changes(m, inv).steps == ()


def test_pinned_tag_pulls_the_digest_then_points_the_tag_at_it() -> None:
    pin = digest("app")
    m = manifest(spec("localhost:5000/app", "1.4.2", digest=pin))
    plan = plan_changes(m, inventory(image("old", "localhost:5000/app:1.4.2")))
    assert actions(plan.steps) == [
        ("pull", f"localhost:5000/app@{pin}"),
        ("tag", "localhost:5000/app:1.4.2"),
    ]
    assert plan.steps[0].expected_digest == pin
    assert plan.steps[1].source == f"localhost:5000/app@{pin}"


def test_pinned_tag_already_right_needs_nothing() -> None:
    pin = digest("app")
    m = manifest(spec("localhost:5000/app", "1.4.2", digest=pin))
    inv = inventory(image("a", "localhost:5000/app:1.4.2", digests=(f"localhost:5000/app@{pin}",)))
    assert plan_changes(m, inv).steps == ()


def test_pull_never_makes_a_blocked_step() -> None:
    m = manifest(spec("nginx", "latest", pull=PullPolicy.NEVER))
    (step,) = plan_changes(m, inventory()).steps
    assert step.action is Action.PULL
    assert step.blocked and "pull: never" in step.blocked


def test_pull_always_repulls_only_when_the_registry_digest_moved() -> None:
    m = manifest(spec("nginx", "latest", pull=PullPolicy.ALWAYS), dangling=True)
    here = image("a", "nginx:latest", digests=(f"nginx@{digest('v1')}",))
    same = inventory(here, remote={"docker.io/library/nginx:latest": digest("v1")})
    assert plan_changes(m, same).steps == ()
    moved = inventory(here, remote={"docker.io/library/nginx:latest": digest("v2")})
    plan = plan_changes(m, moved)
    # The old image loses its only tag to the pull, so prune.dangling removes it too.
    assert actions(plan.steps) == [("pull", "nginx:latest"), ("remove", f"nginx@{digest('v1')}")]


def test_pull_always_with_unknown_registry_digest_pulls_but_removes_nothing() -> None:
    m = manifest(spec("nginx", "latest", pull=PullPolicy.ALWAYS), dangling=True)
    inv = inventory(image("a", "nginx:latest", digests=(f"nginx@{digest('v1')}",)))
    assert actions(plan_changes(m, inv).steps) == [("pull", "nginx:latest")]


def test_plan_is_deterministic_whatever_the_listing_order() -> None:
    m = manifest(
        spec("nginx", "latest", aliases=("blog:stable",)),
        spec("old", state=ImageState.ABSENT),
        unlisted_tags=True,
        dangling=True,
    )
    images = [
        image("a", "nginx:latest", "nginx:1"),
        image("b", "old:1", "old:2"),
        image("c", "old:3"),
        image("d1"),
        image("d2"),
        image("e", "nginx:2"),
    ]
    expected = plan_changes(m, inventory(*images))
    rng = random.Random(7)
    for _ in range(20):
        rng.shuffle(images)
        assert plan_changes(m, inventory(*images)) == expected


def test_steps_run_pulls_then_tags_then_untags_then_removes() -> None:
    m = manifest(spec("nginx", "latest", aliases=("blog:stable",)), spec("old", state=ImageState.ABSENT))
    inv = inventory(image("b", "old:1", "old:2"))
    order = [s.action for s in plan_changes(m, inv).steps]
    assert order == [Action.PULL, Action.TAG, Action.UNTAG, Action.REMOVE]


def test_remove_bytes_unknown_without_shared_sizes() -> None:
    m = manifest(spec("old", state=ImageState.ABSENT))
    plan = plan_changes(m, inventory(image("b", "old:1", shared=None)))
    assert plan.steps[0].bytes is None
    assert not plan.bytes_to_free_known


def test_images_built_on_others_are_removed_before_their_parents() -> None:
    import dataclasses

    base = image("base", "reg.local/x/a:1")
    child = dataclasses.replace(image("child", "reg.local/x/b:1"), parent_id=base.id)
    grandchild = dataclasses.replace(image("grand", "reg.local/x/c:1"), parent_id=child.id)
    m = manifest(*(spec(f"reg.local/x/{n}", state=ImageState.ABSENT) for n in "abc"))
    plan = plan_changes(m, inventory(base, child, grandchild))
    assert [s.ref for s in plan.steps] == ["reg.local/x/c:1", "reg.local/x/b:1", "reg.local/x/a:1"]


def test_tags_dropped_from_a_pinned_image_are_untagged_but_the_pin_survives() -> None:
    pin = digest("app")
    pinned = f"reg.local/app@{pin}"
    # Absent repository c: its tag on the pinned image goes, as an untag (the pin keeps the image).
    m = manifest(spec("reg.local/app", digest=pin), spec("reg.local/c", state=ImageState.ABSENT))
    inv = inventory(image("a", "reg.local/c:1", digests=(pinned,)))
    assert [(s.action, s.ref) for s in plan_changes(m, inv).steps] == [(Action.UNTAG, "reg.local/c:1")]
    # Unlisted tags of the pinned repository: all but the last of them may go; here a declared one stays.
    m = manifest(spec("reg.local/app", "1", digest=pin), unlisted_tags=True)
    inv = inventory(image("a", "reg.local/app:1", "reg.local/app:2", digests=(pinned,)))
    assert [(s.action, s.ref) for s in plan_changes(m, inv).steps] == [(Action.UNTAG, "reg.local/app:2")]
    # A pin with no declared tag: dropping the repository's last tags would delete the pin with them.
    m = manifest(spec("reg.local/app", digest=pin), unlisted_tags=True)
    inv = inventory(image("a", "reg.local/app:2", digests=(pinned,)))
    assert plan_changes(m, inv).steps == ()


def test_an_image_held_by_another_repositorys_digest_reference_is_only_untagged() -> None:
    # Pulled by digest from reg.local/d too: deleting its last tag leaves it, as `docker rmi` does.
    m = manifest(spec("reg.local/e", "2", pull=PullPolicy.NEVER), unlisted_tags=True)
    inv = inventory(image("a", "reg.local/e:1", digests=(f"reg.local/d@{digest('x')}", f"reg.local/e@{digest('x')}")))
    steps = [(s.action, s.ref) for s in plan_changes(m, inv).runnable]
    assert steps == [(Action.UNTAG, "reg.local/e:1")]


def test_an_absent_repositorys_digest_reference_goes_from_an_image_kept_by_its_tags() -> None:
    m = manifest(spec("reg.local/e", "1"), spec("reg.local/d", state=ImageState.ABSENT))
    inv = inventory(image("a", "reg.local/e:1", digests=(f"reg.local/d@{digest('x')}",)))
    assert [(s.action, s.ref) for s in plan_changes(m, inv).steps] == [(Action.UNTAG, f"reg.local/d@{digest('x')}")]


def test_tags_waiting_on_a_pull_that_pull_never_forbids_are_blocked_too() -> None:
    pin = digest("app")
    m = manifest(spec("reg.local/f", "1", digest=pin, aliases=("reg.local/g:x",), pull=PullPolicy.NEVER), dangling=True)
    inv = inventory(image("b", "reg.local/f:1", digests=(f"reg.local/f@{digest('b')}",)))
    plan = plan_changes(m, inv)
    assert plan.runnable == ()
    assert not plan.has_runnable
    assert {s.action for s in plan.blocked} == {Action.PULL, Action.TAG}


def test_a_dangling_image_others_are_built_on_is_left_alone() -> None:
    import dataclasses

    parent = image("p", digests=(f"reg.local/v@{digest('v')}",))
    child = dataclasses.replace(image("c", "reg.local/child:1"), parent_id=parent.id)
    assert plan_changes(manifest(spec("reg.local/child", "1"), dangling=True), inventory(parent, child)).steps == ()
