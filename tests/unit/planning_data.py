"""Builders of plain manifests and inventories for planner tests."""

from __future__ import annotations

import hashlib

from reconciler.model.inventory import ContainerRecord, ImageRecord, Inventory
from reconciler.model.manifest import ImageSpec, ImageState, Manifest, PruneSpec, PullPolicy
from reconciler.model.reference import parse_reference, parse_repository


def image_id(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(("digest:" + seed).encode()).hexdigest()


def image(
    seed: str,
    *tags: str,
    digests: tuple[str, ...] = (),
    size: int = 1000,
    shared: int | None = 0,
    created: int = 0,
) -> ImageRecord:
    return ImageRecord(
        id=image_id(seed),
        tags=tuple(parse_reference(t) for t in tags),
        digests=tuple(parse_reference(d) for d in digests),
        size=size,
        shared_size=shared,
        created=created,
    )


def container(name: str, seed: str) -> ContainerRecord:
    return ContainerRecord(id=hashlib.sha256(name.encode()).hexdigest(), name=name, image_id=image_id(seed))


def spec(
    name: str,
    *tags: str,
    aliases: tuple[str, ...] = (),
    digest: str | None = None,
    pull: PullPolicy = PullPolicy.IF_MISSING,
    state: ImageState = ImageState.PRESENT,
    platform: str | None = None,
) -> ImageSpec:
    return ImageSpec(
        repository=parse_repository(name),
        tags=tags,
        aliases=tuple(parse_reference(a) for a in aliases),
        digest=digest,
        pull=pull,
        state=state,
        platform=platform,
    )


def manifest(*specs: ImageSpec, unlisted_tags: bool = False, dangling: bool = False) -> Manifest:
    return Manifest(images=specs, prune=PruneSpec(unlisted_tags=unlisted_tags, dangling=dangling), path="images.yaml")


def inventory(
    *images: ImageRecord,
    containers: tuple[ContainerRecord, ...] = (),
    remote: dict[str, str] | None = None,
) -> Inventory:
    return Inventory(images=images, containers=containers, remote_digests=remote or {}, host="unix:///test.sock")
