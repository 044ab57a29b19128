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
    """One entry of ``GET /images/json`` as an ImageRecord (untagged forms normalised)."""
    shared = raw.get("SharedSize")
    # Podman 4.3 lists an image pulled by digest with that digest reference in RepoTags too.
    listed = parse_refs(raw.get("RepoTags"))
    labels = raw.get("Labels")
    return _listed_record(
        id=str(raw["Id"]),
        tags=tuple(ref for ref in listed if ref.tag is not None),
        digests=_digests(parse_refs(raw.get("RepoDigests")), listed),
        created=int(raw.get("Created") or 0),
        size=int(raw.get("Size") or 0),
        shared_size=int(shared) if isinstance(shared, int) and shared >= 0 else None,
        parent_id=str(raw.get("ParentId") or ""),
        labels=_labels(labels) if labels else (),
    )


def _listed_record(**fields: Any) -> ImageRecord:
    """``ImageRecord(**fields)`` for a listed image, made in one step: the frozen dataclass's
    ``__init__`` sets each of its eight fields through ``object.__setattr__``, a sixth of a record's
    cost on a host of 11,000 images. ``fields`` names every field."""
    record = object.__new__(ImageRecord)
    record.__dict__.update(fields)
    return record


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
