"""What is known of image layers, kept between runs: an image id's layers and their sizes never change.

An image id is the digest of the image's config, which lists its layers (diff ids) and the
history their sizes come from: what was read of an id once holds for ever, on any daemon.
So the sizing of removals reads each image's layers once, and later plans and applies read
only the images that are new. The file is a cache, not state: a missing, unreadable,
corrupt or foreign-version file is ignored (everything is read again), and each write
merges with what another run wrote meanwhile, then replaces the file at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from contextlib import suppress
from pathlib import Path

from reconciler.model.inventory import KnownLayers
from reconciler.state.atomic_file import read_document, write_atomically

__all__ = ["KnownLayers", "cache_path", "read_layer_cache", "write_layer_cache"]

CACHE_FILE = "layers.json"
FORMAT = 1
MAX_IMAGES = 50_000  # beyond this, images not on the host being sized are forgotten first


def cache_path(state_dir: Path) -> Path:
    return state_dir / CACHE_FILE


def read_layer_cache(state_dir: Path) -> dict[str, KnownLayers]:
    """What earlier runs learnt, by image id; empty when the file is missing or not one of ours."""
    document = read_document(cache_path(state_dir), FORMAT)
    if document is None:
        return {}
    images = document.get("images")
    if not isinstance(images, dict):
        return {}
    known: dict[str, KnownLayers] = {}
    for image_id, entry in images.items():
        layers = _entry(entry)
        if layers is not None:
            known[str(image_id)] = layers
    return known


def _entry(entry: object) -> KnownLayers | None:
    """One entry, or None when it is not the shape this format writes (it is then read again)."""
    if not isinstance(entry, dict):
        return None
    diff_ids, sizes = entry.get("layers"), entry.get("sizes")
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        return None
    if sizes is None:
        return KnownLayers(tuple(diff_ids))
    if (
        not isinstance(sizes, list)
        or len(sizes) != len(diff_ids)
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in sizes)
    ):
        return None
    return KnownLayers(tuple(diff_ids), tuple(sizes))


def write_layer_cache(state_dir: Path, learnt: Mapping[str, KnownLayers], present: Iterable[str] = ()) -> None:
    """Add ``learnt`` to the file, with what is there now (another run may have written since).

    Best effort: a state directory that cannot be written costs the next run its reads, no
    more. Past MAX_IMAGES, entries of images not in ``present`` go first.
    """
    if not learnt:
        return
    merged = read_layer_cache(state_dir)
    for image_id, layers in learnt.items():
        old = merged.get(image_id)
        merged[image_id] = layers if layers.sizes is not None or old is None else old
    if len(merged) > MAX_IMAGES:
        keep = set(present) | set(learnt)
        merged = {i: v for i, v in merged.items() if i in keep} or dict(list(learnt.items())[:MAX_IMAGES])
    document = {
        "format": FORMAT,
        "images": {
            image_id: {"layers": list(v.diff_ids), "sizes": list(v.sizes) if v.sizes is not None else None}
            for image_id, v in sorted(merged.items())
        },
    }
    with suppress(OSError):
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(cache_path(state_dir), json.dumps(document, separators=(",", ":")), mode=0o600)

