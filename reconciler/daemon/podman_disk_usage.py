"""Podman's disk usage, sized from its images' layers, as Docker's ``/system/df`` gives it.

Podman 4.3's ``GET /system/df`` gives ``LayersSize`` 0 and ids without ``sha256:``, and its
``SharedSize`` (there and in ``GET /libpod/system/df``) follows parent and child images only:
two images built on one base share its layers, yet both read ``SharedSize`` 0 once the base
image itself is gone (measured on podman 4.3.1), so removing one would seem to free it all.
The libpod API has no layer total in 4.3 either. So the figures are made from what every
engine answers: each image's layers (``RootFS.Layers`` of its inspection, identified by chain
id) and their sizes (its history). A layer counts once however many images use it; an
image's bytes beyond its layers (Podman counts its manifest and config in ``Size``) are its
own. An image id's layers never change, so each image is read once per connection's life, and
not at all when the caller knows it already (the state directory's layer cache): what was read
is handed back in ``layers_read`` for the caller to keep.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.daemon.host import DiskUsageReport, DockerHost, KnownLayersSource
from reconciler.daemon.on_sessions import map_on_sessions
from reconciler.model.inventory import ImageRecord, KnownLayers
from reconciler.planning.freed_space import chain_ids, layer_sizes

READS_AT_ONCE = 4  # images read at once, each reader on its own connection


@dataclass(frozen=True)
class SizedImage:
    """One image: its layers bottom first (chain id, bytes), and its whole size as listed."""

    layers: tuple[tuple[str, int], ...]
    size: int
    known: KnownLayers = field(default_factory=lambda: KnownLayers(()))  # as the layer cache keeps it

    @property
    def own_bytes(self) -> int:
        """Bytes of the image beyond its layers (0 on Docker; Podman's manifest and config)."""
        return max(self.size - sum(size for _, size in self.layers), 0)


def usage_from_layers(images: Mapping[str, SizedImage | None]) -> DiskUsageReport:
    """The layers' total and each image's shared bytes (Docker's meaning: bytes of its layers
    that another image uses too). An image whose layers could not be sized (None) makes the
    total unknowable: it is then 0, which a ``max_total`` budget refuses, and its shared bytes -1."""
    known = {image_id: found for image_id, found in images.items() if found is not None}
    users = Counter(chain for found in known.values() for chain in {c for c, _ in found.layers})
    shared: dict[str, int] = {image_id: -1 for image_id, found in images.items() if found is None}
    for image_id, found in known.items():
        shared[image_id] = sum(size for chain, size in dict(found.layers).items() if users[chain] > 1)
    if len(known) < len(images):
        return DiskUsageReport(layers_size=0, shared_sizes=shared)
    layer_bytes = dict(layer for found in known.values() for layer in found.layers)
    total = sum(layer_bytes.values()) + sum(found.own_bytes for found in known.values())
    return DiskUsageReport(layers_size=total, shared_sizes=shared)


class PodmanDiskUsage:
    """Disk usage of a Podman service, its images' layers kept by image id (safe across threads)."""

    def __init__(self) -> None:
        self._known: dict[str, SizedImage | None] = {}
        self._lock = threading.Lock()

    def read(self, daemon: DockerHost, cached: KnownLayersSource | None = None) -> DiskUsageReport:
        """One image list, and the layers of each image neither read before nor in ``cached`` with its
        sizes (an inspection and a history), READS_AT_ONCE images at a time."""
        images = daemon.list_images()
        with self._lock:
            known: dict[str, SizedImage | object | None] = dict(self._known)
        if cached is not None and any(image.id not in known for image in images):
            earlier = cached()
            for image in images:
                layers = earlier.get(image.id)
                if image.id not in known and layers is not None and layers.sizes is not None:
                    known[image.id] = _from_known(layers, image.size)
        new = [image for image in images if image.id not in known]
        read = dict(zip((image.id for image in new), map_on_sessions(daemon, new, _sized, READS_AT_ONCE), strict=True))
        found: dict[str, SizedImage | None] = {}
        for image in images:
            sized = known[image.id] if image.id in known else read[image.id]
            if sized is _GONE:
                continue  # deleted since the listing: it takes no room
            found[image.id] = sized if isinstance(sized, SizedImage) else None
        with self._lock:
            self._known.update(found)
        learnt = {i: s.known for i, s in read.items() if isinstance(s, SizedImage)}
        return dataclasses.replace(usage_from_layers(found), layers_read=learnt)


_GONE = object()


def _sized(daemon: DockerHost, image: ImageRecord) -> SizedImage | object | None:
    """The image's layers with their sizes; None when its history does not match its layers; _GONE."""
    details = daemon.inspect_image(image.id)
    history = daemon.image_history(image.id) if details is not None else None
    if details is None or history is None:
        return _GONE
    sizes = layer_sizes(details.layers, history[::-1])
    if sizes is None:
        return None
    return _from_known(KnownLayers(details.layers, tuple(sizes)), image.size)


def _from_known(layers: KnownLayers, size: int) -> SizedImage:
    assert layers.sizes is not None
    return SizedImage(tuple(zip(chain_ids(layers.diff_ids), layers.sizes, strict=True)), size, layers)
