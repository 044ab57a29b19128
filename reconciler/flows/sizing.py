"""Size once: the reads the sizing of a decided plan needs, then :func:`~reconciler.planning.sizing.sized_plan`.

Nothing is read when the plan removes nothing. Otherwise one ``/system/df`` for shared
sizes (none when the facts already carry them), and, for removed images that share
layers, their layer lists and histories and those of the kept images sharing with them.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.daemon.host import DockerHost
from reconciler.flows.host_facts import with_shared_sizes
from reconciler.model.host_facts import HostFacts
from reconciler.model.inventory import Inventory
from reconciler.model.plan import Action, Plan
from reconciler.planning.freed_space import (
    ImageLayers,
    chain_ids,
    freed_by_image,
    image_layers,
    removed_images,
)
from reconciler.planning.sizing import sized_plan


def size_plan(host: DockerHost, facts: HostFacts, plan: Plan) -> tuple[Plan, Inventory]:
    """``plan`` with its removals' bytes, and the inventory with the sizes that were read."""
    inventory = facts.inventory
    if not any(step.action is Action.REMOVE for step in plan.steps):
        return plan, inventory
    if not facts.sizes_read:
        inventory = with_shared_sizes(host, inventory)
    removed = removed_images(plan)
    freed = read_freed_bytes(host, inventory, removed) if removed else None
    return sized_plan(plan, inventory, freed), inventory


def read_freed_bytes(host: DockerHost, inventory: Inventory, removed: Sequence[str]) -> dict[str, int] | None:
    """Exact bytes each removed image frees (see :mod:`reconciler.planning.freed_space`); None if unknowable.

    Needs the shared sizes. When no removed image shares a layer, each frees its whole
    size and no call is made; otherwise the removed images and the kept images that
    share layers are inspected, and the removed ones' histories read.
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
