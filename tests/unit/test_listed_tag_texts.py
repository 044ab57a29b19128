"""A listed image keeps the daemon's texts and parses its tags, digests and labels on first use:
a plan knows a declared tag by its text, and plans the same whatever form the daemon lists it in."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.daemon.api_records import image_from_api
from reconciler.model.inventory import ImageRecord, Inventory
from reconciler.model.manifest import ImageState, Manifest
from reconciler.model.reference import parse_reference
from reconciler.planning.images import plan_changes

from .planning_data import container, image_id, inventory, manifest, spec

# Docker Hub's official and user repositories, one whose familiar name reads as the registry of the next, others.
REPOS = ("docker.io/library/nginx", "docker.io/team/app", "docker.io/a.b/c", "a.b/c", "reg.local:5000/x")
TAGS = ("1", "2", "latest")


def spellings(canonical: str) -> list[str]:
    """Texts that parse as ``canonical`` (name:tag): Docker's familiar one, Podman's full one, and
    others no daemon lists but the parser reads the same."""
    ref = parse_reference(canonical)
    texts = {canonical, ref.familiar()}
    if ref.domain == "docker.io":
        texts |= {f"index.docker.io/{ref.path}:{ref.tag}", f"{ref.path}:{ref.tag}"}
        if ref.path.startswith("library/"):
            texts.add(f"docker.io/{ref.path.removeprefix('library/')}:{ref.tag}")
    return sorted(text for text in texts if parse_reference(text) == ref)


def listed(record: ImageRecord, texts: dict[str, str]) -> ImageRecord:
    """``record`` as read from an image list whose RepoTags spell each tag as ``texts`` says."""
    entry: dict[str, Any] = {
        "Id": record.id,
        "RepoTags": [texts[tag.canonical()] for tag in record.tags] or None,
        "RepoDigests": [ref.canonical() for ref in record.digests] or None,
        "Created": record.created,
        "Size": record.size,
        "SharedSize": record.shared_size if record.shared_size is not None else -1,
        "Labels": dict(record.labels) or None,
        "ParentId": record.parent_id,
    }
    return image_from_api(entry)


@st.composite
def hosts(draw: st.DrawFn) -> tuple[Inventory, Inventory]:
    """The same host twice: as plain records, and as listed ones spelling each tag some way."""
    refs = draw(st.lists(st.sampled_from([f"{r}:{t}" for r in REPOS for t in TAGS]), unique=True, max_size=8))
    images: list[ImageRecord] = []
    for i, group in enumerate(draw(st.lists(st.integers(0, 3), min_size=len(refs), max_size=len(refs)))):
        while len(images) <= group:
            images.append(ImageRecord(id=image_id(f"img{len(images)}"), size=10, shared_size=0))
        image = images[group]
        images[group] = dataclasses.replace(image, tags=(*image.tags, parse_reference(refs[i])))
    plain = tuple(images)
    texts = {ref: draw(st.sampled_from(spellings(ref))) for ref in (parse_reference(r).canonical() for r in refs)}
    users = draw(st.lists(st.sampled_from(plain), unique_by=lambda r: r.id, max_size=1)) if plain else []
    containers = tuple(dataclasses.replace(container(f"c{i}", "x"), image_id=r.id) for i, r in enumerate(users))
    return (
        inventory(*plain, containers=containers),
        inventory(*(listed(record, texts) for record in plain), containers=containers),
    )


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    specs = []
    for repo in REPOS:
        state = draw(st.sampled_from(["present", "absent", "none"]))
        if state == "present":
            tags = draw(st.lists(st.sampled_from(TAGS), unique=True, min_size=1, max_size=2))
            specs.append(spec(repo, *tags))
        elif state == "absent":
            specs.append(spec(repo, state=ImageState.ABSENT))
    return manifest(*specs, unlisted_tags=draw(st.booleans()), dangling=draw(st.booleans()))


@settings(max_examples=300, deadline=None)
@given(manifests(), hosts())
def test_the_plan_is_the_same_whatever_form_the_daemon_lists_tags_in(m: Manifest, host: tuple[Inventory, Inventory]) -> None:
    plain, as_listed = host
    assert plan_changes(m, as_listed) == plan_changes(m, plain)


def test_a_no_change_plan_parses_no_tag_a_manifest_declares() -> None:
    tags = [f"reg.local:5000/x:{n}" for n in range(50)]
    m = manifest(spec("reg.local:5000/x", *(t.rpartition(":")[2] for t in tags)), unlisted_tags=True, dangling=True)
    records = [
        image_from_api({"Id": image_id(t), "RepoTags": [t], "RepoDigests": None, "Labels": {"k": "v"}}) for t in tags
    ]
    assert plan_changes(m, inventory(*records)).steps == ()
    assert not any("tags" in record.__dict__ or "labels" in record.__dict__ for record in records)
    # Read, they are parsed, and the record equals the one made by hand.
    assert records[0] == ImageRecord(id=image_id(tags[0]), tags=(parse_reference(tags[0]),), labels=(("k", "v"),))


def test_a_tag_listed_in_an_unusual_form_is_still_found_and_kept() -> None:
    # Text that no daemon lists, but that names the declared tag: found once every tag is parsed.
    record = image_from_api({"Id": image_id("n"), "RepoTags": ["index.docker.io/library/nginx:1"]})
    host = inventory(record)
    m = manifest(spec("nginx", "1"), unlisted_tags=True, dangling=True)
    assert host.image_with_tag(parse_reference("nginx:1")) is record
    assert plan_changes(m, host).steps == ()


def test_every_listed_form_of_a_reference_reads_back_as_it() -> None:
    for text in ("nginx:1", "team/app:2", "docker.io/a.b/c:3", "reg.local:5000/x:4", "localhost/y:5"):
        ref = parse_reference(text)
        assert all(parse_reference(form) == ref for form in ref.listed_forms)
    # Docker Hub's a.b/c shows as "a.b/c", which reads as the registry a.b: only the full form is its.
    assert parse_reference("docker.io/a.b/c:3").listed_forms == ("docker.io/a.b/c:3",)
    assert set(parse_reference("nginx:1").listed_forms) == {"docker.io/library/nginx:1", "nginx:1"}


def test_an_image_listed_with_only_texts_that_are_no_tags_is_dangling() -> None:
    # No daemon lists such texts; should one, the image has no tag, as the parser reads them.
    record = image_from_api({"Id": image_id("odd"), "RepoTags": ["not a tag", "Upper:1"]})
    plan = plan_changes(manifest(dangling=True), inventory(record))
    assert [(step.action.value, step.ref) for step in plan.steps] == [("remove", record.id)]
