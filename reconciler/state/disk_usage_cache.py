"""The images' part of a host's last ``/system/df``, kept between runs while the host lists the same images.

An image's shared bytes (those of its layers other images use too) and the layers' total depend only on
which images the host holds, and each image is fixed by its id: while a daemon lists the same image
ids, its answer for them is the same, and sizing a plan's removals need not ask for it again (a tenth
of a second of the daemon's time per 1,000 images). An answer is kept under the image list it was read
with, and only when it shows every image of that list: an image gone between the two reads would make
it the answer for other images. One entry per daemon address, the newest MAX_HOSTS. The file is a
cache: a missing, corrupt or foreign-version file is ignored (the daemon is asked) and replaced.
Decisions never come from it: a disk budget reads the daemon itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

from reconciler.daemon.host import DiskUsageReport
from reconciler.state.atomic_file import read_document, write_atomically

CACHE_FILE = "disk-usage.json"
FORMAT = 1
MAX_HOSTS = 64


def listed_key(image_ids: Iterable[str]) -> str:
    """The key of an image list: the sha256 of its ids, sorted, one per line."""
    return hashlib.sha256("\n".join(sorted(set(image_ids))).encode()).hexdigest()


def kept_disk_usage(state_dir: Path, address: str, image_ids: Iterable[str]) -> DiskUsageReport | None:
    """The answer kept for ``address`` when it was read with exactly these images listed; else None."""
    entry = _hosts(state_dir).get(address)
    if not isinstance(entry, dict) or entry.get("listed") != listed_key(image_ids):
        return None
    layers, shared = entry.get("layers_size"), entry.get("shared_sizes")
    if not isinstance(layers, int) or not _count(layers) or not isinstance(shared, dict) or not all(
        isinstance(key, str) and (_count(value) or value == -1) for key, value in shared.items()
    ):
        return None
    return DiskUsageReport(layers_size=layers, shared_sizes=shared)


def has_kept_disk_usage(state_dir: Path, address: str) -> bool:
    """Whether an answer of ``address`` is kept at all (for some image list)."""
    return address in _hosts(state_dir)


def keep_disk_usage(state_dir: Path, address: str, image_ids: Iterable[str], usage: DiskUsageReport) -> None:
    """Keep ``usage``, read with ``image_ids`` listed, when it shows each of them; never raises."""
    listed = set(image_ids)
    if usage.layers_size <= 0 or not listed <= set(usage.shared_sizes):
        return
    hosts = {key: value for key, value in _hosts(state_dir).items() if key != address}
    hosts[address] = {
        "listed": listed_key(listed),
        "layers_size": usage.layers_size,
        "shared_sizes": dict(usage.shared_sizes),
    }
    newest = dict(list(hosts.items())[-MAX_HOSTS:])
    with suppress(OSError):
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = json.dumps({"format": FORMAT, "hosts": newest}, separators=(",", ":"))
        write_atomically(state_dir / CACHE_FILE, text, mode=0o600)


def _hosts(state_dir: Path) -> dict[str, Any]:
    document = read_document(state_dir / CACHE_FILE, FORMAT)
    hosts = document.get("hosts") if document is not None else None
    return hosts if isinstance(hosts, dict) else {}


def _count(value: object) -> bool:
    """A count of bytes as this format writes it: a non-negative int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
