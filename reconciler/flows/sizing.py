"""Size once: the reads the sizing of a decided plan needs, then :func:`~reconciler.planning.sizing.sized_plan`.

Nothing is read when the plan removes nothing. Otherwise one ``/system/df`` for shared
sizes (none when the facts already carry them), and, for removed images that share
layers, their layer lists and histories and those of the kept images sharing with them.
An image id's layers never change: what was read once is kept in the state directory's
layer cache (:mod:`reconciler.state.layer_cache`), so only images new since then are
read, several at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.daemon.host import DockerHost
from reconciler.daemon.on_sessions import map_on_sessions
from reconciler.flows.host_facts import with_shared_sizes
from reconciler.model.host_facts import HostFacts
from reconciler.model.inventory import Inventory
from reconciler.model.plan import Action, Plan

if TYPE_CHECKING:
    from reconciler.state.layer_cache import KnownLayers

READS_AT_ONCE = 4  # image inspections at once, each worker on its own session


def size_plan(host: DockerHost, facts: HostFacts, plan: Plan, state_dir: Path | None = None) -> tuple[Plan, Inventory]:
    """``plan`` with its removals' bytes, and the inventory with the sizes that were read.

    With ``state_dir``, layers already known there are not read again, and what is read is kept.
    """
    inventory = facts.inventory
    if not any(step.action is Action.REMOVE for step in plan.steps):
        return plan, inventory
    # Only a plan that removes something is sized: a plan without removals never imports these.
    from reconciler.planning.freed_space import removed_images
    from reconciler.planning.sizing import sized_plan

    if not facts.sizes_read:
        inventory = with_shared_sizes(host, inventory, state_dir, facts.disk_usage_ahead)
    removed = removed_images(plan)
    freed = read_freed_bytes(host, inventory, removed, state_dir) if removed else None
    return sized_plan(plan, inventory, freed), inventory


def read_freed_bytes(
    host: DockerHost, inventory: Inventory, removed: Sequence[str], state_dir: Path | None = None
) -> dict[str, int] | None:
    """Exact bytes each removed image frees (see :mod:`reconciler.planning.freed_space`); None if unknowable.

    Needs the shared sizes. When no removed image shares a layer, each frees its whole
    size and no call is made; otherwise the layers of the removed images and of the kept
    images that share layers are needed (and the removed ones' layer sizes, from their
    histories): from the layer cache, else read.
    """
    from reconciler.planning.freed_space import ImageLayers, chain_ids, freed_by_image
    from reconciler.state.layer_cache import read_layer_cache, write_layer_cache

    by_id = inventory.image_by_id
    # An image sharing no layer frees its whole size; only the sharing ones need their layers read.
    unique = {i: by_id[i].size for i in removed if by_id[i].shared_size == 0}
    sharing_removed = [i for i in removed if i not in unique]
    if not sharing_removed:
        return unique
    gone = set(removed)
    sharing = [i.id for i in inventory.images if i.id not in gone and (i.shared_size is None or i.shared_size > 0)]
    cached = read_layer_cache(state_dir) if state_dir is not None else {}
    wanted = {image_id: True for image_id in sharing_removed} | {image_id: False for image_id in sharing}
    missing = [i for i, sized in wanted.items() if i not in cached or (sized and cached[i].sizes is None)]
    learnt = _read_layers(host, missing, wanted)
    if state_dir is not None:
        write_layer_cache(state_dir, {i: found for i, found in learnt.items() if found is not None}, by_id)
    known = cached | {i: found for i, found in learnt.items() if found is not None}
    layers = {}
    for image_id in sharing_removed:
        found = known.get(image_id)
        if found is None or found.sizes is None:
            return None  # gone since the listing (the plan's removal will say so), or its history does not match
        layers[image_id] = ImageLayers(image_id, tuple(zip(chain_ids(found.diff_ids), found.sizes, strict=True)))
    kept = {chain for image_id in sharing if image_id in known for chain in chain_ids(known[image_id].diff_ids)}
    freed = freed_by_image(sharing_removed, layers, kept)
    # Bytes an image has beyond its layers go with it (none on Docker; Podman counts its manifest and config).
    own = {i: max(by_id[i].size - sum(size for _, size in layers[i].layers), 0) for i in sharing_removed}
    return unique | {i: freed[i] + own[i] for i in sharing_removed}


def _read_layers(host: DockerHost, image_ids: Sequence[str], sized: dict[str, bool]) -> dict[str, KnownLayers | None]:
    """Each image's layers (and, where ``sized``, their sizes), READS_AT_ONCE at a time; None: gone."""
    if not image_ids:
        return {}
    from reconciler.planning.freed_space import layer_sizes
    from reconciler.state.layer_cache import KnownLayers

    def read(session: DockerHost, image_id: str) -> KnownLayers | None:
        details = session.inspect_image(image_id)
        if details is None:
            return None
        if not sized[image_id]:
            return KnownLayers(details.layers)
        history = session.image_history(image_id)
        if history is None:
            return None
        return KnownLayers(details.layers, layer_sizes(details.layers, history[::-1]))

    return dict(zip(image_ids, map_on_sessions(host, image_ids, read, READS_AT_ONCE), strict=True))
