"""What retention reads from the daemon besides the inventory: usage events and disk usage.

Each is one call, made only when the manifest has a ``retention:`` section
(events) or a ``disk:`` budget (disk usage).
"""

from __future__ import annotations

import dataclasses
import os

from reconciler.daemon.host import DockerHost
from reconciler.errors import DiskUsageError
from reconciler.model.inventory import DaemonEvent, Inventory
from reconciler.model.manifest import DiskBudget
from reconciler.planning.retention import DiskUsage

# With no recorded cursor, look back this far; the daemon keeps only recent events anyway.
FIRST_LOOKBACK_SECONDS = 30 * 86_400


def read_events(host: DockerHost, since: float | None, until: float) -> tuple[DaemonEvent, ...]:
    """Container create/start and image pull/tag events in (since, until], in one call."""
    start = since if since is not None else until - FIRST_LOOKBACK_SECONDS
    return host.events(start, until)


def read_disk_usage(
    host: DockerHost, budget: DiskBudget, inventory: Inventory
) -> tuple[DiskUsage, Inventory]:
    """The disk usage a budget needs, and the inventory with shared sizes from the same call.

    ``max_total`` needs the layers' total (``/system/df``); ``high``/``low`` need the
    filesystem holding Docker's data, which only a daemon on this machine shares with us.
    """
    filesystem_size = filesystem_used = 0
    if budget.high is not None:
        if not host.address.startswith(("unix://", "http+unix://")):
            raise DiskUsageError(
                f"The disk budget's high/low percentages need the filesystem of the daemon's data,"
                f" which cannot be read from here: {host.address} is not a local socket."
                " Use retention.disk.max_total (bytes the images may take) for a remote daemon."
            )
        root = host.identity().root_dir
        filesystem_size, filesystem_used = _filesystem(root)
    usage = host.disk_usage()
    shared = usage.shared_sizes
    images = tuple(
        dataclasses.replace(image, shared_size=shared[image.id])
        if image.id in shared and shared[image.id] >= 0
        else image
        for image in inventory.images
    )
    disk = DiskUsage(filesystem_size, filesystem_used, usage.layers_size)
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

