"""Read the daemon into an :class:`Inventory`, with a fixed number of API calls.

Two list calls cover the common path, whatever the number of images (docker-py's
high-level ``images.list()`` would inspect every image). Only what the plan
truly needs costs more: one disk-usage call when something will be removed, and
one registry lookup per ``pull: always`` tag.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import docker

from reconciler.daemon.connection import Daemon, unavailable_as_error
from reconciler.daemon.registry_auth import RegistryAuth
from reconciler.model.inventory import ContainerRecord, ImageRecord, Inventory
from reconciler.model.manifest import Manifest, PullPolicy
from reconciler.model.reference import Reference, ReferenceError, parse_reference
from reconciler.planning.freed_space import (
    HistoryEntry,
    ImageLayers,
    chain_ids,
    freed_by_image,
    image_layers,
)

_NONE_REFS = {"<none>:<none>", "<none>@<none>"}


def read_inventory(daemon: Daemon, manifest: Manifest | None = None, auth: RegistryAuth | None = None) -> Inventory:
    """List images and containers; ask the registry about ``pull: always`` tags of ``manifest``."""
    api, address = daemon.api, daemon.address
    with unavailable_as_error(address):
        images = tuple(image_from_api(raw) for raw in api.images(all=False))
        containers = tuple(container_from_api(raw) for raw in api.containers(all=True))
        remote = read_remote_digests(api, manifest, auth) if manifest else {}
    return Inventory(images=images, containers=containers, remote_digests=remote, host=address)


def with_shared_sizes(daemon: Daemon, inventory: Inventory) -> Inventory:
    """Add each image's shared size (one ``/system/df`` call), so unique sizes are known."""
    with unavailable_as_error(daemon.address):
        usage = daemon.api.df()
    shared = {raw["Id"]: int(raw.get("SharedSize", -1)) for raw in usage.get("Images") or ()}
    images = tuple(
        dataclasses.replace(image, shared_size=shared[image.id]) if image.id in shared else image
        for image in inventory.images
    )
    return dataclasses.replace(inventory, images=images)


def read_remote_digests(
    api: docker.APIClient, manifest: Manifest, auth: RegistryAuth | None = None
) -> dict[str, str]:
    """Registry digest of every ``pull: always`` tag, asked without pulling.

    ``auth`` supplies the credentials; without it docker-py reads the Docker config.

    A tag whose registry cannot be asked is left out; the planner then re-pulls it,
    which is what ``pull: always`` promises anyway.
    """
    digests: dict[str, str] = {}
    for spec in manifest.present():
        if spec.pull is not PullPolicy.ALWAYS:
            continue
        for ref in spec.tag_references():
            try:
                auth_config = auth.for_registry(ref.domain) if auth else None
                answer = api.inspect_distribution(ref.canonical(), auth_config=auth_config)
            except docker.errors.APIError:
                continue
            digest = (answer.get("Descriptor") or {}).get("digest")
            if digest:
                digests[ref.canonical()] = str(digest)
    return digests


def image_from_api(raw: Mapping[str, Any]) -> ImageRecord:
    """One entry of ``GET /images/json`` as an ImageRecord (untagged forms normalised)."""
    shared = raw.get("SharedSize")
    return ImageRecord(
        id=str(raw["Id"]),
        tags=_parse_refs(raw.get("RepoTags")),
        digests=_parse_refs(raw.get("RepoDigests")),
        created=int(raw.get("Created") or 0),
        size=int(raw.get("Size") or 0),
        shared_size=int(shared) if isinstance(shared, int) and shared >= 0 else None,
        parent_id=str(raw.get("ParentId") or ""),
    )


def container_from_api(raw: Mapping[str, Any]) -> ContainerRecord:
    names = raw.get("Names") or ()
    name = str(names[0]).lstrip("/") if names else str(raw["Id"])[:12]
    return ContainerRecord(
        id=str(raw["Id"]),
        name=name,
        image_id=str(raw.get("ImageID") or ""),
        state=str(raw.get("State") or ""),
    )


def _parse_refs(values: Iterable[str] | None) -> tuple[Reference, ...]:
    """RepoTags/RepoDigests may be null, empty or ``<none>:<none>`` for untagged images."""
    refs = []
    for text in values or ():
        if text in _NONE_REFS:
            continue
        try:
            refs.append(parse_reference(text))
        except ReferenceError:
            continue  # the daemon never hands out invalid references; ignore rather than crash
    return tuple(sorted(refs, key=lambda r: r.canonical()))


def read_freed_bytes(daemon: Daemon, inventory: Inventory, removed: Sequence[str]) -> dict[str, int] | None:
    """Exact bytes each removed image frees (see :mod:`reconciler.planning.freed_space`); None if unknowable.

    Needs the shared sizes (:func:`with_shared_sizes`). When no removed image shares a
    layer, each frees its whole size and no call is made; otherwise the removed images
    and the kept images that share layers are inspected, and the removed ones' histories read.
    """
    by_id = inventory.image_by_id
    # An image sharing no layer frees its whole size; only the sharing ones need their layers read.
    unique = {i: by_id[i].size for i in removed if by_id[i].shared_size == 0}
    sharing_removed = [i for i in removed if i not in unique]
    if not sharing_removed:
        return unique
    gone = set(removed)
    sharing = [i.id for i in inventory.images if i.id not in gone and (i.shared_size is None or i.shared_size > 0)]
    layers = {}
    with unavailable_as_error(daemon.address):
        for image_id in sharing_removed:
            found = _read_image_layers(daemon.api, image_id)
            if found is None:
                return None
            layers[image_id] = found
        kept = {chain for image_id in sharing for chain in _read_chain_ids(daemon.api, image_id)}
    return unique | freed_by_image(sharing_removed, layers, kept)


def _read_image_layers(api: docker.APIClient, image_id: str) -> ImageLayers | None:
    try:
        diff_ids = api.inspect_image(image_id)["RootFS"].get("Layers") or ()
        history = api.history(image_id)
    except docker.errors.NotFound:
        return None  # gone since the listing: the plan's removal will say so
    entries = [HistoryEntry(int(h.get("Size") or 0), str(h.get("CreatedBy") or "")) for h in history]
    return image_layers(image_id, diff_ids, entries[::-1])


def _read_chain_ids(api: docker.APIClient, image_id: str) -> tuple[str, ...]:
    try:
        return chain_ids(api.inspect_image(image_id)["RootFS"].get("Layers") or ())
    except docker.errors.NotFound:
        return ()  # removed since the listing: it keeps no layer


def read_layers_size(daemon: Daemon) -> int:
    """Bytes all image layers take on the daemon's disk, as ``docker system df`` counts them."""
    with unavailable_as_error(daemon.address):
        return int(daemon.api.df().get("LayersSize") or 0)
