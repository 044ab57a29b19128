"""How many bytes removing a set of images frees: their layers that no other image uses.

Pure. An image's size counts every layer it stands on, shared or not, and the
daemon's per-image ``SharedSize`` says only that a layer is shared, not with whom.
Two images that share a layer only with each other free it when both go, which
neither's unique size shows. So the freed space of a set is computed per layer:
layers are identified by their chain id (the digest of the layer with all layers
beneath it, as the daemon's layer store keys them) and sized from the image history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.model.inventory import HistoryEntry
from reconciler.model.plan import Action, Plan


@dataclass(frozen=True)
class ImageLayers:
    """An image's layers, bottom first: (chain id, bytes of that layer alone)."""

    image_id: str
    layers: tuple[tuple[str, int], ...]

    @property
    def chain_ids(self) -> frozenset[str]:
        return frozenset(chain for chain, _ in self.layers)


def chain_ids(diff_ids: Sequence[str]) -> tuple[str, ...]:
    """Chain ids of a stack of layers (OCI image spec: ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n)))."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            chains.append("sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest())
    return tuple(chains)


def layer_sizes(diff_ids: Sequence[str], history_oldest_first: Sequence[HistoryEntry]) -> tuple[int, ...] | None:
    """Each layer's own size, matching history entries to layers; None when they cannot be matched.

    History entries that made no layer (ENV, CMD, ...) have size 0 and, from the classic
    builder, ``#(nop)`` in their command; entries with a size always made a layer.
    """
    layered = [e.size for e in history_oldest_first if e.size > 0 or "#(nop)" not in e.created_by]
    if len(layered) == len(diff_ids):
        return tuple(layered)
    sized = [e.size for e in history_oldest_first if e.size > 0]
    if len(sized) == len(diff_ids):
        return tuple(sized)
    return None


def image_layers(image_id: str, diff_ids: Sequence[str], history_oldest_first: Sequence[HistoryEntry]) -> ImageLayers | None:
    sizes = layer_sizes(diff_ids, history_oldest_first)
    if sizes is None:
        return None
    return ImageLayers(image_id=image_id, layers=tuple(zip(chain_ids(diff_ids), sizes, strict=True)))


def freed_by_image(
    removed_in_order: Sequence[str],
    layers: Mapping[str, ImageLayers],
    kept_chains: Iterable[str],
) -> dict[str, int]:
    """Bytes each removed image frees, in order: a layer counts once, for the first removed user.

    ``kept_chains`` are the chain ids of every image that stays. The values add up to
    the space the whole removal frees.
    """
    used_elsewhere = set(kept_chains)
    counted: set[str] = set()
    freed: dict[str, int] = {}
    for image_id in removed_in_order:
        total = 0
        for chain, size in layers[image_id].layers:
            if chain in used_elsewhere or chain in counted:
                continue
            counted.add(chain)
            total += size
        freed[image_id] = total
    return freed


def removed_images(plan: Plan) -> tuple[str, ...]:
    """Ids of the images the plan's runnable removals delete, in plan order."""
    seen: dict[str, None] = {}
    for step in plan.runnable:
        if step.action is Action.REMOVE and step.image_id:
            seen.setdefault(step.image_id)
    return tuple(seen)
