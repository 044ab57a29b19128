"""Read once: everything a manifest needs from a host, in one stage, into one :class:`HostFacts`.

Always the image and container lists (two calls, whatever the number of images). Only
what the manifest asks for costs more: a registry digest per ``pull: always`` tag; with
``retention:``, ``--explain`` or for an apply (which records usage whatever its manifest)
the usage state and the daemon's events since the last run (one call: at most dockerd's
last 256 events; on Podman, what its event log holds since then); with a disk budget one ``/system/df`` (its shared sizes then
serve the sizing too; a ``max_total`` it cannot measure is refused, never skipped) and,
for ``high``/``low``, the filesystem holding Docker's data.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.daemon.host import DiskUsageReport, DockerHost
from reconciler.daemon.on_sessions import map_on_sessions
from reconciler.errors import DiskUsageError
from reconciler.model.host_facts import DiskUsage, HostFacts
from reconciler.model.inventory import ContainerRecord, Inventory
from reconciler.model.manifest import DiskBudget, ImageSource, Manifest, PullPolicy
from reconciler.model.units import format_size
from reconciler.state.disk_usage_cache import has_kept_disk_usage, keep_disk_usage, kept_disk_usage
from reconciler.state.holds_store import holds_recorded, read_holds
from reconciler.state.lock_dir import daemon_identity, lock_directory

if TYPE_CHECKING:
    from reconciler.daemon.registry_auth import RegistryAuth
    from reconciler.flows.prefetch import Prefetch
    from reconciler.model.usage import EventMark, UsageFacts, UsageState

DIGEST_LOOKUPS_AT_ONCE = 4  # registry digest lookups at once, each thread on a kept connection
# With no recorded cursor, look back this far; the daemon keeps only recent events anyway.
FIRST_LOOKBACK_SECONDS = 30 * 86_400


def read_host_facts(
    host: DockerHost,
    manifest: Manifest | None,
    auth: RegistryAuth | None,
    state_dir: Path,
    now: float,
    *,
    explain: bool = False,
    learn: bool = False,
    warn: Callable[[str], None] | None = None,
    prefetched: Prefetch | None = None,
    disk_usage_ahead: DiskUsageAhead | None = None,
) -> HostFacts:
    """The facts of ``host`` that planning ``manifest`` at ``now`` needs (``None``: the lists only).

    With ``retention:``, ``explain`` or ``learn`` (an apply, which records what it learnt
    with or without retention) also the usage state with what this run learns folded in:
    the events since the last run, the images and containers it sees, where the declared
    tags point. With a manifest, the daemon's holds too (keyed on its identity: one ``GET /info``,
    asked only when a hold was ever placed from this state directory).
    Reads the state files, never writes them. The lists ``prefetched`` read already (or their
    errors) are taken from it, in the order the reads are made here; so is ``disk_usage_ahead``,
    the ``/system/df`` :func:`ask_disk_usage` started for this manifest.
    """
    inventory = read_inventory(host, manifest, auth, prefetched)
    if manifest is None:
        return HostFacts(inventory)
    lock_dir = lock_directory(state_dir, create=False)
    holds = read_holds(lock_dir, daemon_identity(host), warn) if holds_recorded(lock_dir) else ()
    cache = host.build_cache() if manifest.build_cache is not None else None
    local = None
    if any(spec.origin is not ImageSource.PULL for spec in manifest.present()):
        from reconciler.flows.local_facts import read_local_facts  # built and loaded entries only

        local = read_local_facts(manifest, state_dir)
    if manifest.retention is None and not explain and not learn:
        return HostFacts(inventory, holds=holds, build_cache=cache, local=local)
    # The usage state: only retention:, --explain and apply read and learn it.
    from reconciler.state.usage_store import read_usage

    ahead = disk_usage_ahead or ask_disk_usage(manifest, host, state_dir)
    stored = read_usage(state_dir, host.address)
    learning = learn_usage(host, inventory, stored, manifest.declared.tags, now)
    disk = None
    sizes_read = False
    if manifest.retention is not None and manifest.retention.disk is not None:
        disk, inventory = read_disk_usage(host, manifest.retention.disk, inventory, state_dir)
        sizes_read = True
    return HostFacts(
        inventory,
        stored.folded(*learning.facts),
        learning.facts,
        disk,
        sizes_read,
        learning.gap,
        learning.anchor,
        holds=holds,
        build_cache=cache,
        local=local,
        disk_usage_ahead=ahead,
    )


def ask_disk_usage(manifest: Manifest, host: DockerHost | None, state_dir: Path | None) -> DiskUsageAhead | None:
    """The ``/system/df`` a retention plan's removals are sized with, asked now on a session of its
    own, so the daemon answers it while the rest is read and decided; None for any other manifest
    (a disk budget reads it among the facts), without a connected ``host``, or when an answer of this
    host is kept (most plans of a host whose images did not change take it instead)."""
    if host is None or manifest.retention is None or manifest.retention.disk is not None:
        return None
    if state_dir is not None and has_kept_disk_usage(state_dir, host.address):
        return None
    return DiskUsageAhead(host, state_dir)


class DiskUsageAhead:
    """:func:`cached_disk_usage` of a host, asked on a session of its own from now on; calling the
    instance waits for the answer, or raises the read's error there. A plan that removes nothing
    never calls it: the answer is dropped, and the thread ends with its read."""

    def __init__(self, host: DockerHost, state_dir: Path | None) -> None:
        self._answered = threading.Event()
        self._usage: DiskUsageReport | None = None
        self._error: BaseException | None = None
        thread = threading.Thread(
            target=self._read, args=(host, state_dir), name="reconcile-disk-usage", daemon=True
        )
        thread.start()

    def _read(self, host: DockerHost, state_dir: Path | None) -> None:
        try:
            session = host.session()
            try:
                self._usage = cached_disk_usage(session, state_dir)
            finally:
                session.close()
        except BaseException as exc:  # raised where the answer is taken
            self._error = exc
        finally:
            self._answered.set()

    def __call__(self) -> DiskUsageReport:
        self._answered.wait()
        if self._error is not None:
            raise self._error
        assert self._usage is not None
        return self._usage


@dataclass(frozen=True)
class Learning:
    facts: tuple[UsageFacts, ...]
    gap: str | None  # why the events since the last run may be incomplete
    anchor: EventMark | None  # the newest event seen, to record


def learn_usage(
    host: DockerHost, inventory: Inventory, stored: UsageState, declared_tags: Iterable[str], now: float
) -> Learning:
    """What one run learns: the daemon's events since the last run, and what it sees itself."""
    from reconciler.model.usage import (  # with retention:, --explain and apply only
        event_gap,
        facts_from_events,
        newest_mark,
        sighting_facts,
        snapshot_facts,
    )

    if stored.anchor is not None:
        # From the newest event the last run saw: finding it again shows the buffer kept everything since.
        since = stored.anchor.time - 0.001
    elif stored.events_until is not None:
        since = stored.events_until
    else:
        since = now - FIRST_LOOKBACK_SECONDS
    window = host.events(since, now)
    counted = stored.events_until
    fresh = [e for e in window.events if counted is None or e.time > counted]
    facts = (
        facts_from_events(fresh, inventory),
        sighting_facts(inventory, stored.arrived, now),
        snapshot_facts(inventory, declared_tags, now),
    )
    return Learning(facts, event_gap(stored, window, since), newest_mark(stored, window.events))


def read_inventory(
    host: DockerHost,
    manifest: Manifest | None = None,
    auth: RegistryAuth | None = None,
    prefetched: Prefetch | None = None,
) -> Inventory:
    """List images and containers; ask the registry about ``pull: always`` tags of ``manifest``.

    With a manifest, a container whose image name the list gives as an id (the name it was created
    from points elsewhere now) is asked what that name was: the stale-container report needs it.
    """
    listed_at = time.monotonic() if prefetched is None else None
    containers = prefetched.list_containers(host) if prefetched is not None else host.list_containers()
    if manifest is not None:
        containers = creation_names(host, containers)
    return Inventory(
        images=prefetched.list_images(host) if prefetched is not None else host.list_images(),
        containers=containers,
        remote_digests=read_remote_digests(host, manifest, auth) if manifest else {},
        host=host.address,
        listed_at=listed_at,
    )


def creation_names(host: DockerHost, containers: tuple[ContainerRecord, ...]) -> tuple[ContainerRecord, ...]:
    """``containers`` with the name each was created from, one inspect per container the list names by id."""
    named = []
    for container in containers:
        if container.image_name.startswith("sha256:"):
            original = host.container_image_name(container.id)
            if original and not original.startswith("sha256:"):
                container = dataclasses.replace(container, image_name=original)
        named.append(container)
    return tuple(named)


def read_remote_digests(
    host: DockerHost, manifest: Manifest, auth: RegistryAuth | None, parallelism: int = DIGEST_LOOKUPS_AT_ONCE
) -> dict[str, str]:
    """Registry digest of every ``pull: always`` tag, asked without pulling, ``parallelism`` at a time
    (each worker on its own session: a registry round trip each, as pulls are).

    A tag whose registry cannot be asked is left out; the planner then re-pulls it,
    which is what ``pull: always`` promises anyway.
    """
    refs = [ref for spec in manifest.present() if spec.pull is PullPolicy.ALWAYS for ref in spec.tag_references()]
    headers = {ref.domain: auth.header(ref.domain) if auth else None for ref in refs}
    asks = [(ref.canonical(), headers[ref.domain]) for ref in refs]
    found = map_on_sessions(host, asks, lambda session, ask: session.registry_digest(*ask), parallelism)
    return {ref.canonical(): digest for ref, digest in zip(refs, found, strict=True) if digest}


def with_shared_sizes(
    host: DockerHost,
    inventory: Inventory,
    state_dir: Path | None = None,
    ahead: Callable[[], DiskUsageReport] | None = None,
) -> Inventory:
    """``inventory`` with each image's shared bytes from one ``/system/df`` (``ahead``'s answer, when
    it was asked already), so unique sizes are known. With ``state_dir``, the answer an earlier run
    read while the host listed the same images is taken instead (``state/disk_usage_cache``)."""
    listed = [image.id for image in inventory.images]
    usage = kept_disk_usage(state_dir, host.address, listed) if state_dir is not None else None
    if usage is None:
        usage = ahead() if ahead is not None else cached_disk_usage(host, state_dir)
        if state_dir is not None:
            keep_disk_usage(state_dir, host.address, listed, usage)
    return inventory.with_shared_sizes(usage.shared_sizes, usage.layers_size)


def cached_disk_usage(host: DockerHost, state_dir: Path | None) -> DiskUsageReport:
    """``host.disk_usage()``; where it is sized from the images' layers (Podman), the images the state
    directory's layer cache knows are not read again, and what was read is kept there."""
    if state_dir is None:
        return host.disk_usage()
    # A disk budget, or sizing a removal, reads the disk usage: the layer cache with it.
    from reconciler.state.layer_cache import read_layer_cache, write_layer_cache

    usage = host.disk_usage(lambda: read_layer_cache(state_dir))
    if usage.layers_read:
        write_layer_cache(state_dir, usage.layers_read, usage.shared_sizes)
    return usage


def read_disk_usage(
    host: DockerHost, budget: DiskBudget, inventory: Inventory, state_dir: Path | None = None
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
        filesystem_size, filesystem_used = _filesystem(host.identity().root_dir)
    usage = cached_disk_usage(host, state_dir)
    if budget.max_total is not None:
        _check_layers_measured(host.address, usage.layers_size, inventory)
    disk = DiskUsage(filesystem_size, filesystem_used, usage.layers_size)
    return disk, inventory.with_shared_sizes(usage.shared_sizes, usage.layers_size)


def _check_layers_measured(address: str, layers_size: int, inventory: Inventory) -> None:
    """A ``max_total`` budget is weighed against the layers' total. A daemon that gives 0 while its
    images take bytes cannot be measured (on Podman: an image whose history does not match its
    layers cannot be sized): planning on as if under budget would skip the budget without a word."""
    if layers_size > 0:
        return
    images_bytes = sum(image.size for image in inventory.images)
    if images_bytes <= 0:
        return  # nothing on the host takes room: 0 is the truth
    raise DiskUsageError(
        f"The Docker daemon at {address} does not say how much room its images take"
        f" (its disk usage gives 0 bytes of layers while its {len(inventory.images)} images list"
        f" {format_size(images_bytes)}), so retention.disk.max_total cannot be checked and nothing was"
        " planned. For this daemon, drop max_total from the manifest, or use retention.disk.high/low"
        " (the filesystem of its data) when it runs on this machine."
    )


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
