"""The Engine API's answers as the project's records: images, containers, image details, events.

Untagged forms are normalised here (``RepoTags`` empty, null or ``<none>:<none>``); nothing
else reads an API dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.daemon.host import ImageDetails
from reconciler.model.inventory import ContainerRecord, DaemonEvent, ImageRecord
from reconciler.model.reference import InvalidReference, Reference, parse_reference

_NONE_REFS = {"<none>:<none>", "<none>@<none>"}


def image_from_api(raw: Mapping[str, Any]) -> ImageRecord:
    """One entry of ``GET /images/json`` as an ImageRecord (untagged forms normalised). Its tags,
    digests and labels are made when first read (:class:`~reconciler.model.inventory.ImageRecord`):
    until then a plan reads the texts of its tags, which on a large host are mostly declared."""
    get = raw.get
    shared = get("SharedSize")
    repo_tags = get("RepoTags")
    # ImageRecord(...) made in one step: the frozen dataclass's __init__ sets each field through
    # object.__setattr__, a sixth of a record's cost on a host of 11,000 images.
    record = object.__new__(ImageRecord)
    record.__dict__.update(
        id=str(raw["Id"]),
        created=int(get("Created") or 0),
        size=int(get("Size") or 0),
        shared_size=shared if type(shared) is int and shared >= 0 else None,
        parent_id=str(get("ParentId") or ""),
        tag_texts=_tag_texts(repo_tags) if repo_tags else (),
        _unparsed=(_parsed_fields, repo_tags, get("RepoDigests"), get("Labels")),
    )
    return record


def _tag_texts(values: Any) -> tuple[str, ...]:
    """The texts of RepoTags that may be tags: not ``<none>:<none>``, nor the digest references
    Podman 4.3 lists there for an image pulled by digest."""
    if type(values) is not list:
        return ()
    try:
        joined = " ".join(values)  # one look at all the texts for the rare ones
    except TypeError:  # not all strings
        joined = "@"
    if "@" in joined or "<none>" in joined:
        return tuple(text for text in values if type(text) is str and "@" not in text and text not in _NONE_REFS)
    return tuple(values)


def _parsed_fields(repo_tags: Any, repo_digests: Any, labels: Any) -> dict[str, Any]:
    """A listed image's tags, digests and labels, from its RepoTags, RepoDigests and Labels."""
    listed = parse_refs(repo_tags if type(repo_tags) is list else None)
    return {
        "tags": tuple(ref for ref in listed if ref.tag is not None),
        "digests": _digests(parse_refs(repo_digests if type(repo_digests) is list else None), listed),
        "labels": _labels(labels) if labels else (),
    }


def _digests(repo_digests: tuple[Reference, ...], listed: tuple[Reference, ...]) -> tuple[Reference, ...]:
    """RepoDigests, with the digest references Podman lists among RepoTags; one per canonical form, sorted."""
    pinned = [ref for ref in listed if ref.tag is None]
    if not pinned and len(repo_digests) <= 1:
        return repo_digests  # the common case, already sorted: nothing to merge
    merged = {ref.canonical(): ref for ref in (*repo_digests, *pinned)}
    return tuple(sorted(merged.values(), key=lambda r: r.canonical()))


def _labels(raw: Any) -> tuple[tuple[str, str], ...]:
    """``Labels`` of the image list: a mapping, or null for an image without labels."""
    if not isinstance(raw, Mapping):
        return ()
    return tuple(sorted((str(key), str(value)) for key, value in raw.items()))


def container_from_api(raw: Mapping[str, Any]) -> ContainerRecord:
    names = raw.get("Names") or ()
    name = str(names[0]).lstrip("/") if names else str(raw["Id"])[:12]
    created = raw.get("Created")
    return ContainerRecord(
        id=str(raw["Id"]),
        name=name,
        image_id=str(raw.get("ImageID") or ""),
        state=str(raw.get("State") or ""),
        created=created if isinstance(created, int) and created > 0 else 0,
        image_name=str(raw.get("Image") or ""),
    )


def details_from_api(raw: Mapping[str, Any]) -> ImageDetails:
    rootfs = raw.get("RootFS") or {}
    return ImageDetails(
        id=str(raw["Id"]),
        repo_tags=tuple(str(t) for t in raw.get("RepoTags") or () if t not in _NONE_REFS),
        repo_digests=tuple(str(d) for d in raw.get("RepoDigests") or () if d not in _NONE_REFS),
        size=int(raw.get("Size") or 0),
        layers=tuple(str(layer) for layer in rootfs.get("Layers") or ()),
        os=text(raw.get("Os")),
        architecture=text(raw.get("Architecture")),
        variant=text(raw.get("Variant")),
    )


def event_from_api(raw: Mapping[str, Any]) -> DaemonEvent:
    actor = raw.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    actor_id = text(actor.get("ID"))
    if not actor_id and text(raw.get("Action")) == "pull":
        # Podman 4.3's pull events carry an empty Actor.ID and the whole reference in the `name`
        # attribute (Docker puts the reference in the ID and only the repository in `name`).
        actor_id = text(attributes.get("name"))
    return DaemonEvent(
        type=text(raw.get("Type")),
        action=text(raw.get("Action")),
        actor_id=actor_id,
        attributes={str(k): str(v) for k, v in attributes.items()},
        time=float(raw.get("timeNano") or 0) / 1e9 or float(raw.get("time") or 0),
        source=text(raw.get("from")),
    )


def parse_refs(values: Iterable[str] | None) -> tuple[Reference, ...]:
    """RepoTags/RepoDigests may be null, empty or ``<none>:<none>`` for untagged images."""
    refs = []
    for text in values or ():
        if text in _NONE_REFS:
            continue
        try:
            refs.append(parse_reference(text))
        except InvalidReference:
            continue  # the daemon never hands out invalid references; ignore rather than crash
    if len(refs) > 1:
        refs.sort(key=lambda r: r.canonical())
    return tuple(refs)


def text(value: Any) -> str:
    """A string field of an answer, stripped; anything else is empty."""
    return value.strip() if isinstance(value, str) else ""
