"""Read the daemon into an :class:`Inventory`, with a fixed number of calls through the seam.

Two list calls cover the common path, whatever the number of images. Only what the
plan truly needs costs more: one disk-usage call when something will be removed, and
one registry lookup per ``pull: always`` tag.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from reconciler.daemon.host import DockerHost
from reconciler.daemon.registry_auth import RegistryAuth
from reconciler.model.inventory import Inventory
from reconciler.model.manifest import Manifest, PullPolicy
from reconciler.planning.freed_space import ImageLayers, chain_ids, freed_by_image, image_layers


def read_inventory(host: DockerHost, manifest: Manifest | None = None, auth: RegistryAuth | None = None) -> Inventory:
    """List images and containers; ask the registry about ``pull: always`` tags of ``manifest``."""
    images = host.list_images()
    containers = host.list_containers()
    remote = read_remote_digests(host, manifest, auth) if manifest else {}
    return Inventory(images=images, containers=containers, remote_digests=remote, host=host.address)


def with_shared_sizes(host: DockerHost, inventory: Inventory) -> Inventory:
    """Add each image's shared size (one ``/system/df`` call), so unique sizes are known."""
    shared = host.disk_usage().shared_sizes
    images = tuple(
        dataclasses.replace(image, shared_size=shared[image.id]) if image.id in shared else image
        for image in inventory.images
    )
    return dataclasses.replace(inventory, images=images)


def read_remote_digests(host: DockerHost, manifest: Manifest, auth: RegistryAuth | None = None) -> dict[str, str]:
    """Registry digest of every ``pull: always`` tag, asked without pulling.

    A tag whose registry cannot be asked is left out; the planner then re-pulls it,
    which is what ``pull: always`` promises anyway.
    """
    digests: dict[str, str] = {}
    for spec in manifest.present():
        if spec.pull is not PullPolicy.ALWAYS:
            continue
        for ref in spec.tag_references():
            header = auth.header(ref.domain) if auth else None
            digest = host.registry_digest(ref.canonical(), header)
            if digest:
                digests[ref.canonical()] = digest
    return digests


def read_freed_bytes(host: DockerHost, inventory: Inventory, removed: Sequence[str]) -> dict[str, int] | None:
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
    for image_id in sharing_removed:
        found = _read_image_layers(host, image_id)
        if found is None:
            return None
        layers[image_id] = found
    kept = {chain for image_id in sharing for chain in _read_chain_ids(host, image_id)}
    return unique | freed_by_image(sharing_removed, layers, kept)


def _read_image_layers(host: DockerHost, image_id: str) -> ImageLayers | None:
    details = host.inspect_image(image_id)
    history = host.image_history(image_id) if details is not None else None
    if details is None or history is None:
        return None  # gone since the listing: the plan's removal will say so
    return image_layers(image_id, details.layers, history[::-1])


def _read_chain_ids(host: DockerHost, image_id: str) -> tuple[str, ...]:
    details = host.inspect_image(image_id)
    return chain_ids(details.layers) if details is not None else ()  # removed since the listing: keeps no layer


def read_layers_size(host: DockerHost) -> int:
    """Bytes all image layers take on the daemon's disk, as ``docker system df`` counts them."""
    return host.disk_usage().layers_size
