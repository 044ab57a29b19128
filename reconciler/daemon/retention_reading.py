"""What retention reads from the daemon besides the inventory: usage events and disk usage.

Each is one call, made only when the manifest has a ``retention:`` section
(events) or a ``disk:`` budget (disk usage).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from reconciler.daemon.connection import Daemon, unavailable_as_error
from reconciler.errors import DiskUsageError
from reconciler.model.inventory import Inventory
from reconciler.model.manifest import DiskBudget
from reconciler.planning.retention import DiskUsage

EVENT_FILTERS = {
    "type": ["container", "image"],
    "event": ["create", "start", "pull", "tag"],
}
# With no recorded cursor, look back this far; the daemon keeps only recent events anyway.
FIRST_LOOKBACK_SECONDS = 30 * 86_400


def read_events(daemon: Daemon, since: float | None, until: float) -> list[Mapping[str, Any]]:
    """Container create/start and image pull/tag events in (since, until], in one call."""
    start = since if since is not None else until - FIRST_LOOKBACK_SECONDS
    wanted = []
    with unavailable_as_error(daemon.address):
        # With `until` set the daemon ends the stream, so this returns. Fractions of a second
        # matter: a whole-second `until` would leave out the events of the current second.
        stream = daemon.api.events(since=start, until=until, filters=EVENT_FILTERS, decode=True)
        for event in stream:
            # The daemon filters by action for both types; keep only the pairs that mean use.
            kind, action = event.get("Type"), event.get("Action")
            if (kind, action) in _WANTED:
                wanted.append(event)
    return wanted


_WANTED = {("container", "create"), ("container", "start"), ("image", "pull"), ("image", "tag")}


def read_disk_usage(
    daemon: Daemon, budget: DiskBudget, inventory: Inventory
) -> tuple[DiskUsage, Inventory]:
    """The disk usage a budget needs, and the inventory with shared sizes from the same call.

    ``max_total`` needs the layers' total (``/system/df``); ``high``/``low`` need the
    filesystem holding Docker's data, which only a daemon on this machine shares with us.
    """
    filesystem_size = filesystem_used = 0
    if budget.high is not None:
        if not daemon.address.startswith(("unix://", "http+unix://")):
            raise DiskUsageError(
                f"The disk budget's high/low percentages need the filesystem of the daemon's data,"
                f" which cannot be read from here: {daemon.address} is not a local socket."
                " Use retention.disk.max_total (bytes the images may take) for a remote daemon."
            )
        with unavailable_as_error(daemon.address):
            root = str(daemon.api.info().get("DockerRootDir") or "")
        filesystem_size, filesystem_used = _filesystem(root)
    with unavailable_as_error(daemon.address):
        usage = daemon.api.df()
    shared = {raw["Id"]: int(raw.get("SharedSize", -1)) for raw in usage.get("Images") or ()}
    images = tuple(
        dataclasses.replace(image, shared_size=shared[image.id])
        if image.id in shared and shared[image.id] >= 0
        else image
        for image in inventory.images
    )
    disk = DiskUsage(filesystem_size, filesystem_used, int(usage.get("LayersSize") or 0))
    return disk, dataclasses.replace(inventory, images=images)


def _filesystem(root: str) -> tuple[int, int]:
    try:
        found = os.statvfs(root)
    except OSError as exc:
        raise DiskUsageError(
            f"Cannot read the filesystem of Docker's data directory {root!r}:"
            f" {exc.strerror or exc}. Run reconcile where it can read that directory,"
            " or use retention.disk.max_total instead of high/low."
        ) from exc
    size = found.f_blocks * found.f_frsize
    return size, size - found.f_bfree * found.f_frsize

