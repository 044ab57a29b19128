"""Retention on a real host: gather its inputs (usage state, events, disk usage), evaluate, record.

The edge around the pure :func:`~reconciler.planning.retention.evaluate_retention`:
``plan`` and ``apply`` both read the usage state and the daemon's recent
events; only ``apply`` writes the state back (:func:`record_run`), so a plan
changes nothing, not even reconcile's own state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler.daemon.host import DockerHost
from reconciler.daemon.reading import with_shared_sizes
from reconciler.daemon.retention_reading import read_disk_usage, read_events
from reconciler.errors import ReconcilerError
from reconciler.model.inventory import Inventory
from reconciler.model.manifest import Manifest, RetentionSpec
from reconciler.model.plan import Action
from reconciler.model.reference import InvalidReference, parse_reference
from reconciler.model.report import Outcome, Report
from reconciler.planning.retention import RetentionResult, declared_references, evaluate_retention
from reconciler.state.usage import (
    UsageFacts,
    UsageState,
    facts_from_events,
    read_usage,
    record_usage,
    snapshot_facts,
)


@dataclass(frozen=True)
class RetentionRun:
    """One evaluation on a host, with what it was made from."""

    result: RetentionResult
    inventory: Inventory  # with shared sizes when they were read
    usage: UsageState  # the stored state with this run's facts folded in
    facts: tuple[UsageFacts, ...]  # what this run learnt (events, tag snapshot), to record on apply
    now: float


def evaluate_host(
    manifest: Manifest, host: DockerHost, inventory: Inventory, state_dir: Path, now: float
) -> RetentionRun:
    """Read what retention needs from the state file and the daemon, and evaluate."""
    spec = manifest.retention or RetentionSpec()
    stored = read_usage(state_dir, inventory.host)
    facts: tuple[UsageFacts, ...] = ()
    disk = None
    if manifest.retention is not None:
        events = read_events(host, stored.events_until, now)
        declared_tags = _declared_tags(manifest)
        facts = (facts_from_events(events, inventory), snapshot_facts(inventory, declared_tags, now))
        if spec.disk is not None:
            disk, inventory = read_disk_usage(host, spec.disk, inventory)
    usage = stored.folded(*facts)

    def evaluate(images: Inventory) -> RetentionResult:
        return evaluate_retention(
            spec,
            images.images,
            images.containers,
            declared_references(manifest),
            now,
            last_used=usage.last_used,
            previous=usage.previous(images),
            disk=disk,
        )

    result = evaluate(inventory)
    if result.unknown_sizes:
        inventory = with_shared_sizes(host, inventory)
        result = evaluate(inventory)
    return RetentionRun(result, inventory, usage, facts, now)


def record_run(
    state_dir: Path, run: RetentionRun, report: Report, warn: Callable[[str], None]
) -> None:
    """Store what an apply learnt: events, tag snapshot, and its own pulls and tags. Never raises."""
    done = [r for r in report.results if r.outcome is Outcome.DONE and r.image_id]
    uses = {r.image_id: run.now for r in done if r.step.action is Action.PULL and r.image_id}
    tags = tuple(
        (tag, r.image_id, run.now)
        for r in done
        if r.step.action in (Action.PULL, Action.TAG) and r.image_id and (tag := _tag(r.step.ref))
    )
    try:
        record_usage(state_dir, run.inventory.host, (*run.facts, UsageFacts(uses, tags)), run.now)
    except (sqlite3.Error, OSError, ReconcilerError) as exc:
        warn(f"The usage state could not be written to {state_dir} ({exc}); the apply itself is not affected.")


def _declared_tags(manifest: Manifest) -> set[str]:
    tags: set[str] = set()
    for spec in manifest.present():
        tags.update(ref.canonical() for ref in (*spec.tag_references(), *spec.aliases))
    return tags


def _tag(text: str) -> str | None:
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return None
    return ref.canonical() if ref.tag is not None and ref.digest is None else None
