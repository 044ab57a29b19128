"""Planner properties over random hosts: convergence, safety, determinism.

Each plan runs through the real executor on the in-memory daemon (:mod:`tests.fake_daemon`,
Docker's own delete rules), which also serves the model registry: one model of Docker,
the fake's, for the executor's tests and these alike.
"""

from __future__ import annotations

import dataclasses
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.daemon.pulling import Puller
from reconciler.execution.executor import Executor
from reconciler.model.inventory import ImageRecord, Inventory
from reconciler.model.manifest import ImageState, Manifest, PullPolicy
from reconciler.model.plan import Action, Plan
from reconciler.model.reference import parse_reference
from reconciler.model.report import Outcome, Report
from reconciler.planning.images import plan_changes

from ..fake_daemon import FakeDockerHost, FakeImage
from .planning_data import container, digest, image_id, inventory, manifest, spec

REPOS = ("reg.local/a", "reg.local/b", "reg.local/c", "reg.local/d")
TAGS = ("1", "2", "latest")
# The model registry: every repo:tag exists there; `latest` is the same content as `2`.
REGISTRY = {f"{r}:{t}": f"{r}:{'2' if t == 'latest' else t}" for r in REPOS for t in TAGS}


# Content by its digest, for pulls by digest: repository name and content.
BY_DIGEST = {f"{ref.rsplit(':', 1)[0]}@{digest(content)}": content for ref, content in REGISTRY.items()}


def registry_image(ref: str) -> ImageRecord:
    """The image a pull of ``ref`` (name:tag or name@digest) yields in the model."""
    if "@" in ref:
        name, content = ref.split("@", 1)[0], BY_DIGEST[ref]
        tags: tuple[str, ...] = ()
    else:
        name, content = ref.rsplit(":", 1)[0], REGISTRY[ref]
        tags = (ref,)
    return ImageRecord(
        id=image_id(content),
        tags=tuple(parse_reference(t) for t in tags),
        digests=(parse_reference(f"{name}@{digest(content)}"),),
        size=100,
        shared_size=0,
    )


@st.composite
def hosts(draw: st.DrawFn) -> Inventory:
    """Local images: registry images with random subsets of their tags, plus dangling ones."""
    images: dict[str, ImageRecord] = {}
    for ref in draw(st.lists(st.sampled_from(sorted(REGISTRY)), unique=True, max_size=8)):
        pulled = registry_image(ref)
        have = images.get(pulled.id, dataclasses.replace(pulled, tags=()))
        images[pulled.id] = dataclasses.replace(have, tags=(*have.tags, *pulled.tags))
    # Some images were also pulled by digest from another repository: a digest reference of
    # a repository the image carries no tag of, which Docker keeps when the tags go.
    for record in list(images.values()):
        if draw(st.integers(0, 3)) == 0:
            other = draw(st.sampled_from(REPOS))
            ref = parse_reference(f"{other}@{digest('mirror-' + record.id)}")
            images[record.id] = dataclasses.replace(record, digests=(*record.digests, ref))
    # Some images also carry a tag of another repository, as `docker tag` makes them.
    for record in list(images.values()):
        if draw(st.booleans()):
            other = draw(st.sampled_from([f"{r}:copy" for r in REPOS]))
            if all(other != t.familiar() for i in images.values() for t in i.tags):
                images[record.id] = dataclasses.replace(record, tags=(*record.tags, parse_reference(other)))
    extra_tags = draw(st.lists(st.sampled_from([f"{r}:old" for r in REPOS]), unique=True, max_size=3))
    for i, ref in enumerate(extra_tags):
        # Built locally: an image of its own, with no digest reference (a digest names one image only).
        images[f"x{i}"] = ImageRecord(id=image_id(f"extra{i}"), tags=(parse_reference(ref),), size=80, shared_size=0)
    for i in range(draw(st.integers(0, 2))):
        images[f"d{i}"] = ImageRecord(id=image_id(f"dangling{i}"), size=50, shared_size=0)
    records = tuple(images.values())
    users = draw(st.lists(st.sampled_from(records), unique_by=lambda r: r.id, max_size=2)) if records else []
    containers = tuple(dataclasses.replace(container(f"c{i}", "x"), image_id=r.id) for i, r in enumerate(users))
    return inventory(*records, containers=containers)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    repos = list(REPOS)
    draw(st.randoms(use_true_random=False)).shuffle(repos)
    present_count = draw(st.integers(0, 3))
    specs = []
    for repo in repos[:present_count]:
        tags = draw(st.lists(st.sampled_from(TAGS), unique=True, min_size=0, max_size=2))
        pin = digest(REGISTRY[f"{repo}:{draw(st.sampled_from(TAGS))}"]) if draw(st.booleans()) or not tags else None
        alias = (f"reg.local/alias-{repo[-1]}:x",) if draw(st.booleans()) else ()
        specs.append(spec(repo, *tags, aliases=alias, digest=pin, pull=PullPolicy.IF_MISSING))
    specs += [spec(repo, state=ImageState.ABSENT) for repo in repos[present_count:] if draw(st.booleans())]
    return manifest(*specs, unlisted_tags=draw(st.booleans()), dangling=draw(st.booleans()))


def key(ref: str) -> str:
    """Canonical form of a reference, or the image id a step names instead."""
    return ref if ref.startswith("sha256:") else parse_reference(ref).canonical()


def daemon_of(host: Inventory) -> FakeDockerHost:
    """The in-memory daemon holding ``host``'s images and containers, serving the model registry."""
    daemon = FakeDockerHost(address=host.host)
    for ref, content in REGISTRY.items():
        daemon.add_to_registry(ref, FakeImage(image_id(content), digest(content), ((image_id(content), 100),)))
    for record in host.images:
        refs = [r.familiar() for r in (*record.tags, *record.digests)]
        daemon.add_image(refs, image_id=record.id, size=record.size, created=record.created)
    for user in host.containers:
        daemon.containers[user.id] = user
    return daemon


def execute(plan: Plan, daemon: FakeDockerHost) -> Report:
    """Run ``plan`` through the real executor: no step fails, and no untag deletes an image."""
    report = Executor(daemon, puller=Puller(deadline=5.0, sleep=lambda seconds: None)).apply(plan)
    for r in report.results:
        assert r.outcome is not Outcome.FAILED, (r.step.action.value, r.step.ref, r.detail)
        assert r.step.action is not Action.UNTAG or not r.deleted, f"untag of {r.step.ref} deleted {r.deleted}"
    return report


def read(daemon: FakeDockerHost) -> Inventory:
    return Inventory(images=daemon.list_images(), containers=daemon.list_containers(), host=daemon.address)


def references(host: Inventory) -> set[str]:
    return {ref.canonical() for image in host.images for ref in (*image.tags, *image.digests)}


@settings(max_examples=300, deadline=None)
@given(manifests(), hosts())
def test_plan_apply_plan_again_is_empty(m: Manifest, host: Inventory) -> None:
    plan = plan_changes(m, host)
    daemon = daemon_of(host)
    execute(plan, daemon)
    again = plan_changes(m, read(daemon))
    assert again.runnable == (), [(s.action.value, s.ref, s.reason) for s in again.runnable]


@settings(max_examples=300, deadline=None)
@given(manifests(), hosts())
def test_never_removes_an_image_in_use_or_declared(m: Manifest, host: Inventory) -> None:
    plan = plan_changes(m, host)
    in_use = {c.image_id for c in host.containers}
    declared = {ref.canonical() for s in m.present() for ref in (*s.tag_references(), *s.aliases)}
    pins = {s.repository.with_digest(s.digest).canonical() for s in m.present() if s.digest}
    pinned = {i.id for i in host.images if any(d.canonical() in pins for d in i.digests)}
    for step in plan.runnable:
        if step.action in (Action.UNTAG, Action.REMOVE):
            assert key(step.ref) not in declared
        if step.action is Action.REMOVE:
            assert step.image_id not in in_use
            assert step.image_id not in pinned
    # And so the executor, on a daemon with Docker's rules, keeps them.
    daemon = daemon_of(host)
    execute(plan, daemon)
    after = read(daemon)
    assert in_use | pinned <= {i.id for i in after.images}
    assert (declared | pins) & references(host) <= references(after)


@settings(max_examples=200, deadline=None)
@given(manifests(), hosts(), st.randoms(use_true_random=False))
def test_plan_is_the_same_whatever_the_listing_order(m: Manifest, host: Inventory, rng: random.Random) -> None:
    images = list(host.images)
    rng.shuffle(images)
    shuffled = dataclasses.replace(host, images=tuple(images), containers=tuple(reversed(host.containers)))
    plan = plan_changes(m, host)
    assert plan_changes(m, shuffled) == plan
    # A daemon that lists the same host in another order ends in the same state, step by step.
    daemons = daemon_of(host), daemon_of(shuffled)
    reports = [execute(plan, daemon) for daemon in daemons]
    assert [(r.outcome, r.detail, r.deleted) for r in reports[0].results] == [
        (r.outcome, r.detail, r.deleted) for r in reports[1].results
    ]
    first, second = daemons
    assert (first.refs, first.images, first.containers) == (second.refs, second.images, second.containers)
