"""Plan the steps that take a host from its inventory to a manifest.

A pure function of (manifest, inventory): no daemon, no files, no clock. The
same inputs give the same plan, whatever order the daemon listed things in.

Docker semantics the plan follows:
- A tag is only a reference. Dropping one of several tags of an image is an
  ``untag``; dropping the last one is a ``remove`` (the image goes with it).
- An image that any container uses, running or stopped, is never removed: its
  steps are planned as blocked, with the container named, and left alone.
- An image that holds a declared digest pin is never removed.
- ``prune.dangling`` leaves a held image alone, as it leaves one a container uses; the
  other steps on a held image are blocked afterwards (:mod:`reconciler.planning.holds`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Set
from typing import TYPE_CHECKING

from reconciler.model.inventory import ImageRecord, Inventory, short_id
from reconciler.model.manifest import (
    DeclaredReferences,
    ImageSource,
    ImageSpec,
    Manifest,
    PullPolicy,
)
from reconciler.model.plan import Action, Plan, Step
from reconciler.model.reference import Reference, listed_tag_repository, parse_reference

if TYPE_CHECKING:
    from reconciler.model.build_inputs import LocalFacts


def plan_changes(
    manifest: Manifest, inventory: Inventory, held: Set[str] = frozenset(), local: LocalFacts | None = None
) -> Plan:
    """Return the plan that makes ``inventory`` match ``manifest``; ``held`` images are no dangling images
    to prune; ``local``: the inputs of built and loaded entries, read from their files (None: none read)."""
    claims = manifest.declared
    ensure = _wait_on_blocked_pulls(
        [step for spec in manifest.present() for step in _ensure_present(spec, inventory, local)]
    )
    moved_away = _tags_moved_away(ensure, inventory)
    wanted_gone = _tags_to_drop(manifest, inventory, claims)
    drops = _drop_steps(manifest, inventory, claims, wanted_gone, moved_away, _tags_gained(ensure))
    untagged = _absent_untagged_steps(manifest, inventory, claims)
    dangling = _dangling_steps(inventory, claims, moved_away, wanted_gone, held) if manifest.prune.dangling else []
    steps = sorted({*ensure, *drops, *untagged, *dangling}, key=lambda step: run_order(step, inventory))
    return Plan(
        steps=tuple(steps),
        manifest_path=manifest.path,
        manifest_digest=manifest.digest,
        host=inventory.host,
    )


def run_order(step: Step, inventory: Inventory) -> tuple[int, int, str, str]:
    """Steps in action order; removals of images built on others first, so a parent goes last."""
    action, ref, image_id = step.sort_key()
    depth = inventory.depth_of(image_id) if step.action is Action.REMOVE and image_id else 0
    return (action, -depth, ref, image_id)


# --- what must be present -------------------------------------------------


def _ensure_present(spec: ImageSpec, inventory: Inventory, local: LocalFacts | None) -> Iterator[Step]:
    """Pull, build, load and tag steps that make every declared tag, pin and alias of ``spec`` true."""
    if spec.origin is not ImageSource.PULL:
        yield from _ensure_made_here(spec, inventory, local)
        return
    primary_image: ImageRecord | None = None
    primary_settled = True  # False when the primary reference will be (re)pulled or moved
    for index, ref in enumerate(spec.tag_references()):
        if index == 0 and spec.digest:
            steps = list(_ensure_pinned_tag(spec, ref, inventory))
        else:
            steps = list(_ensure_tag(spec, ref, inventory))
        yield from steps
        if index == 0:
            primary_image = inventory.image_with_tag(ref)
            primary_settled = not steps
    if not spec.tags and spec.digest:
        pinned = spec.repository.with_digest(spec.digest)
        primary_image = inventory.image_by_digest.get(pinned.canonical())
        if primary_image is None:
            primary_settled = False
            yield _pull_step(spec, pinned, "the pinned digest is not on the host")
    yield from _ensure_aliases(spec, primary_image if primary_settled else None, inventory)


def _ensure_made_here(spec: ImageSpec, inventory: Inventory, local: LocalFacts | None) -> Iterator[Step]:
    """A built or loaded entry: its first tag built or loaded; its other tags and aliases point there."""
    # Only built and loaded entries come here: a manifest without them never imports these.
    from reconciler.model.build_inputs import NO_LOCAL_FACTS
    from reconciler.planning.local_images import ensure_built, ensure_loaded

    first, *others = spec.tag_references()
    make = ensure_built if spec.origin is ImageSource.BUILD else ensure_loaded
    steps = list(make(spec, first, inventory, local if local is not None else NO_LOCAL_FACTS))
    yield from steps
    primary = None if steps else inventory.image_with_tag(first)
    for ref in (*others, *spec.aliases):
        here = inventory.image_with_tag(ref)
        if primary is not None and here is not None and here.id == primary.id:
            continue
        kind = "alias" if ref in spec.aliases else "tag"
        where = "not on the host" if here is None else f"now points at {short_id(here.id)}"
        yield _tag_step(ref, first, primary, f"{kind} of {first.familiar()}; {where}")


def _wait_on_blocked_pulls(steps: list[Step]) -> list[Step]:
    """A tag whose source a blocked pull, build or load was to make cannot run either."""
    unreachable = {step.ref: step for step in steps if step.makes_image and step.blocked}
    return [
        dataclasses.replace(step, blocked=_unreachable_source(step.source, unreachable[step.source]))
        if step.action is Action.TAG and not step.blocked and step.source in unreachable
        else step
        for step in steps
    ]


def _unreachable_source(source: str, maker: Step) -> str:
    if maker.action is Action.PULL:
        return f"it points at {source}, which cannot be pulled (pull: never)"
    return f"it points at {source}, which this run cannot {maker.action.value} ({maker.blocked})"


def _ensure_tag(spec: ImageSpec, ref: Reference, inventory: Inventory) -> Iterator[Step]:
    local = inventory.image_with_tag(ref)
    if local is None:
        yield _pull_step(spec, ref, "the tag is not on the host")
        return
    if spec.pull is not PullPolicy.ALWAYS:
        return
    remote = inventory.remote_digests.get(ref.canonical())
    local_digests = {d.digest for d in local.digests if d.name == ref.name}
    if remote is None:
        yield _pull_step(spec, ref, "pull: always, and the registry's digest could not be read", local)
    elif remote not in local_digests:
        yield _pull_step(spec, ref, f"pull: always, and the registry moved the tag to {_short(remote)}", local)


def _ensure_pinned_tag(spec: ImageSpec, ref: Reference, inventory: Inventory) -> Iterator[Step]:
    """The first tag of a pinned image must point at exactly the pinned content."""
    assert spec.digest is not None
    pinned = spec.repository.with_digest(spec.digest)
    pinned_image = inventory.image_by_digest.get(pinned.canonical())
    local = inventory.image_with_tag(ref)
    if local is not None and pinned_image is not None and local.id == pinned_image.id:
        return
    if pinned_image is None:
        yield _pull_step(spec, pinned, "the pinned digest is not on the host")
    if local is None:
        reason = f"{ref.familiar()} must point at the pinned digest {_short(spec.digest)}"
    else:
        reason = f"{ref.familiar()} points at {short_id(local.id)}, not at the pinned digest {_short(spec.digest)}"
    yield _tag_step(ref, pinned, pinned_image, reason)


def _ensure_aliases(spec: ImageSpec, primary: ImageRecord | None, inventory: Inventory) -> Iterator[Step]:
    if not spec.aliases:
        return
    source = _primary_reference(spec)
    for alias in spec.aliases:
        local = inventory.image_with_tag(alias)
        if primary is not None and local is not None and local.id == primary.id:
            continue
        if local is None:
            reason = f"alias of {source.familiar()}; not on the host"
        else:
            reason = f"alias of {source.familiar()}; now points at {short_id(local.id)}"
        yield _tag_step(alias, source, primary, reason)


def _tag_step(target: Reference, source: Reference, image: ImageRecord | None, reason: str) -> Step:
    """Point ``target`` at the image of ``source``; ``image`` is that image when already known."""
    return Step(
        action=Action.TAG,
        ref=target.familiar(),
        source=source.familiar(),
        image_id=image.id if image else None,
        reason=reason,
        bytes=0,
    )


def _primary_reference(spec: ImageSpec) -> Reference:
    """The reference whose image aliases point at: the pin when there is one, else the first tag."""
    if spec.digest:
        return spec.repository.with_digest(spec.digest)
    return spec.repository.with_tag(spec.tags[0])


def _pull_step(spec: ImageSpec, ref: Reference, reason: str, local: ImageRecord | None = None) -> Step:
    if spec.pull is PullPolicy.NEVER:
        return Step(
            action=Action.PULL,
            ref=ref.familiar(),
            reason=reason,
            platform=spec.platform,
            blocked="pull: never is set, so the missing image cannot be fetched",
        )
    return Step(
        action=Action.PULL,
        ref=ref.familiar(),
        reason=reason,
        image_id=local.id if local else None,
        platform=spec.platform,
        expected_digest=ref.digest,
    )


def _tags_moved_away(steps: Iterable[Step], inventory: Inventory) -> dict[str, set[str]]:
    """Image id -> canonical tags that pull or tag steps will point elsewhere."""
    moved: dict[str, set[str]] = {}
    for step in steps:
        if step.blocked or not (step.makes_image or step.action is Action.TAG):
            continue
        ref = parse_reference(step.ref)
        if ref.digest:
            continue
        old = inventory.image_with_tag(ref)
        if step.action is Action.PULL and ref.canonical() not in inventory.remote_digests:
            continue  # a re-pull whose registry digest is unknown may well leave the tag in place
        if old is not None and (step.action is not Action.TAG or old.id != step.image_id):
            moved.setdefault(old.id, set()).add(ref.canonical())
    return moved


# --- what must go -----------------------------------------------------------


def _tags_to_drop(manifest: Manifest, inventory: Inventory, claims: DeclaredReferences) -> dict[str, set[str]]:
    """Image id -> canonical references the manifest wants gone from images that have tags:
    tags of absent repositories and unlisted tags, and digest references of absent repositories
    (images with digest references only are _absent_untagged_steps' business)."""
    absent = {spec.repository.name for spec in manifest.absent()}
    pruned = {spec.repository.name for spec in manifest.present()} if manifest.prune.unlisted_tags else set()
    drops: dict[str, set[str]] = {}
    claimed, dropping = claims.tags, absent | pruned
    for image in inventory.images:
        if dropping and _may_drop_a_tag(image, claims.tag_texts, dropping):
            for tag in image.tags:
                if tag.canonical() not in claimed and tag.name in dropping:
                    drops.setdefault(image.id, set()).add(tag.canonical())
        # A repository's digest references go with its last tag; only those of repositories the
        # image carries no tag of need a step of their own.
        if absent and image.digests and (tagged := {tag.name for tag in image.tags}):
            for ref in image.digests:
                if ref.name in absent and ref.name not in tagged and ref.canonical() not in claims.pins:
                    drops.setdefault(image.id, set()).add(ref.canonical())
    return drops


def _may_drop_a_tag(image: ImageRecord, declared_texts: Set[str], dropping: Set[str]) -> bool:
    """Whether a tag of ``image`` may be undeclared in a repository of ``dropping``, as the texts the
    daemon lists its tags in tell: on a large host most images have none, and stay unparsed."""
    for text in image.tag_texts:
        if text not in declared_texts:
            repository = listed_tag_repository(text)
            if repository is None or repository in dropping:
                return True
    return False


def _keeps_a_tag(image: ImageRecord, declared_texts: Set[str]) -> bool:
    """Whether ``image`` has a tag: a text that is declared or reads as a tag says so unparsed."""
    for text in image.tag_texts:
        if text in declared_texts or listed_tag_repository(text) is not None:
            return True
    return bool(image.tags)


def _stays(image: ImageRecord, dropped: set[str], moved: set[str]) -> bool:
    """Whether the image keeps a reference once ``dropped`` are deleted and ``moved`` pulled elsewhere,
    as Docker counts them: a tag left, or a digest reference the deletions do not take along (the
    daemon deletes a repository's digest references with its last tag, and only those)."""
    if {t.canonical() for t in image.tags} - dropped - moved:
        return True
    # With no tag left, a repository loses its digest references when a tag of it is deleted here;
    # one whose tags a pull only moved elsewhere keeps them.
    emptied = {parse_reference(c).name for c in dropped if "@" not in c}
    return any(d.canonical() not in dropped and d.name not in emptied for d in image.digests)


def _tags_gained(steps: Iterable[Step]) -> dict[str, set[str]]:
    """Image id -> canonical tags that this plan's tag steps point at it (when the image is known)."""
    gained: dict[str, set[str]] = {}
    for step in steps:
        if step.action is Action.TAG and step.image_id and not step.blocked:
            gained.setdefault(step.image_id, set()).add(parse_reference(step.ref).canonical())
    return gained


def _drop_steps(
    manifest: Manifest,
    inventory: Inventory,
    claims: DeclaredReferences,
    wanted_gone: dict[str, set[str]],
    moved_away: dict[str, set[str]],
    gained: dict[str, set[str]],
) -> list[Step]:
    absent = {spec.repository.name for spec in manifest.absent()}
    steps: list[Step] = []
    for image_id, dropped in sorted(wanted_gone.items()):
        image = inventory.image_by_id[image_id]
        if _holds_pin(image, claims):
            # A pinned image stays whatever happens to its tags: only untags, and never of the
            # last tags of the pinned repository, which the daemon deletes with its digest references.
            dropped = dropped - _tags_holding_pins(image, dropped, claims, gained.get(image_id, set()))
            refs = sorted(parse_reference(c).familiar() for c in dropped)
            steps.extend(_untag(image, ref, _drop_reason(parse_reference(ref), absent)) for ref in refs)
            continue
        # Digest references first, a tag last: the removal that deletes the image goes by a tag,
        # which, should a pull of this run have given the image another, only untags.
        refs = sorted((parse_reference(c).familiar() for c in dropped), key=lambda r: ("@" not in r, r))
        why = {r: _drop_reason(parse_reference(r), absent) for r in refs}
        if _stays(image, dropped, moved_away.get(image_id, set())):
            steps.extend(_untag(image, ref, why[ref]) for ref in refs)
            continue
        blocked = _in_use(image, inventory)
        steps.extend(_untag(image, ref, why[ref], blocked) for ref in refs[:-1])
        steps.append(_remove(image, refs[-1], f"{why[refs[-1]]}; it is the image's last tag", blocked))
    return steps


def _absent_untagged_steps(manifest: Manifest, inventory: Inventory, claims: DeclaredReferences) -> list[Step]:
    """Images of an absent repository that carry no tag, only digest references (pulled by digest)."""
    absent = {spec.repository.name for spec in manifest.absent()}
    if not absent:
        return []
    steps: list[Step] = []
    for image in inventory.images:
        if image.tags or _holds_pin(image, claims):
            continue
        mine = sorted(d.familiar() for d in image.digests if d.name in absent)
        if mine:
            reason = f"{parse_reference(mine[0]).familiar_name} is declared absent"
            steps.append(_remove(image, mine[0], reason, _in_use(image, inventory)))
    return steps


def _dangling_steps(
    inventory: Inventory,
    claims: DeclaredReferences,
    moved_away: dict[str, set[str]],
    drops: dict[str, set[str]],
    held: Set[str],
) -> list[Step]:
    """Remove images with no tag and no container: now, or once this plan moved or dropped their tags.

    Such an image may still hold digest references (pulled by digest, or of a repository it had
    no tag of); they go one by one, the last deleting the image.
    """
    steps: list[Step] = []
    parents = {image.parent_id for image in inventory.images if image.parent_id}
    no_change: set[str] = set()
    declared_texts = claims.tag_texts
    for image in inventory.images:
        if image.id not in drops and image.id not in moved_away and _keeps_a_tag(image, declared_texts):
            continue  # the common case on a large host: it keeps every tag it has
        dropped = drops.get(image.id, no_change)
        left = {t.canonical() for t in image.tags} - moved_away.get(image.id, no_change) - dropped
        # An image others are built on is no dangling image to `docker image prune` either.
        if left or _holds_pin(image, claims) or inventory.users_of(image.id) or image.id in parents or image.id in held:
            continue
        # The daemon deletes a repository's digest references with the last tag this plan drops of it.
        emptied = {parse_reference(c).name for c in dropped if "@" not in c}
        refs = sorted(d.familiar() for d in image.digests if d.canonical() not in dropped and d.name not in emptied)
        if image.tags and not refs and dropped:
            continue  # the drop steps' last removal deletes it
        if image.tags:
            reason = "dangling once this plan moves or drops its tags"
        else:
            reason = "dangling: no tag and no container"
        refs = refs or [image.id]
        steps.extend(_untag(image, ref, f"{reason}; its other references go first") for ref in refs[:-1])
        steps.append(_remove(image, refs[-1], reason, None))
    return steps


def _drop_reason(ref: Reference, absent: set[str]) -> str:
    if ref.name in absent:
        return f"{ref.familiar_name} is declared absent"
    return f"not listed for {ref.familiar_name} (prune.unlisted_tags)"


def _untag(image: ImageRecord, ref: str, reason: str, blocked: str | None = None) -> Step:
    return Step(action=Action.UNTAG, ref=ref, image_id=image.id, reason=reason, bytes=0, blocked=blocked)


def _remove(image: ImageRecord, ref: str, reason: str, blocked: str | None) -> Step:
    """Delete ``ref``, the last reference the image carries by the time the step runs."""
    return Step(
        action=Action.REMOVE,
        ref=ref,
        image_id=image.id,
        reason=reason,
        blocked=blocked,
    )


def _in_use(image: ImageRecord, inventory: Inventory) -> str | None:
    users = inventory.users_of(image.id)
    if not users:
        return None
    names = ", ".join(f"{c.name} ({c.short_id})" for c in users)
    noun = "container" if len(users) == 1 else "containers"
    return f"in use by {noun} {names}; an image a container uses is never removed"


def _tags_holding_pins(image: ImageRecord, dropped: set[str], claims: DeclaredReferences, gained: set[str]) -> set[str]:
    """Dropped tags that must stay: in a pinned repository where no other tag of the image remains,
    counting the tags this plan gives the image."""
    keep: set[str] = set()
    for pin in (d for d in image.digests if d.canonical() in claims.pins):
        same_repo = {t.canonical() for t in image.tags if t.name == pin.name}
        arriving = {t for t in gained if parse_reference(t).name == pin.name}
        if same_repo and same_repo <= dropped and not arriving:
            keep |= same_repo
    return keep


def _holds_pin(image: ImageRecord, claims: DeclaredReferences) -> bool:
    return any(d.canonical() in claims.pins for d in image.digests)


def _short(digest_or_id: str) -> str:
    algo, _, hexpart = digest_or_id.partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else digest_or_id[:12]
