"""``plan --explain``: every image's retention verdict, with what decided it. Pure: returns data and text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reconciler.cli.markup import escape
from reconciler.model.holds import Hold
from reconciler.model.inventory import ImageRecord, Inventory, short_id
from reconciler.model.units import format_age, format_size
from reconciler.planning.retention_verdicts import Decision, Fate, RetentionResult, Verdict

if TYPE_CHECKING:
    from rich.table import Table

_STYLE = {Fate.KEEP: "green", Fate.UNTAG: "yellow", Fate.REMOVE: "red", Fate.EVICT: "red"}


def verdicts_json(
    result: RetentionResult,
    inventory: Inventory,
    now: float,
    last_used: Mapping[str, float],
    arrived: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """One entry per image: id, references, creation, arrival, last use, verdict, and each decision
    with its inputs. ``arrived`` lacks an image seen for the first time: it arrives ``now``."""
    entries = []
    for verdict in result.verdicts:
        image = inventory.image_by_id.get(verdict.image_id)
        entries.append(
            {
                "image_id": verdict.image_id,
                "tags": sorted(t.familiar() for t in image.tags) if image else [],
                "created": image.created if image else None,
                "arrived": None if arrived is None else arrived.get(verdict.image_id, now),
                "last_used": last_used.get(verdict.image_id),
                "verdict": verdict.outcome.value,
                "untag": [ref.familiar() for ref in verdict.untag],
                "bytes": _freed_bytes(verdict, image),
                "eviction": verdict.eviction,
                "decisions": [_decision_json(d, now) for d in verdict.decisions],
            }
        )
    return entries


def _freed_bytes(verdict: Verdict, image: ImageRecord | None) -> int | None:
    """What the image's removal frees: known at evaluation, or from the sizes read since."""
    if not verdict.removes:
        return verdict.freed_bytes
    return (
        verdict.freed_bytes
        if verdict.freed_bytes is not None
        else image.unique_size
        if image
        else None
    )


def _decision_json(decision: Decision, now: float) -> dict[str, Any]:
    return {
        "subject": decision.subject,
        "kept": decision.kept,
        "rung": decision.rung.value,
        "rule": decision.rule,
        "condition": decision.condition,
        "reason": decision.reason,
        "age_seconds": round(decision.age, 3),
        "arrived": decision.arrived,
        "last_used": decision.last_used,
        "last_used_ago_seconds": None
        if decision.last_used is None
        else round(now - decision.last_used, 3),
        "containers": list(decision.containers),
        "pattern": decision.pattern,
        "rank": decision.rank,
    }


def verdicts_text(
    result: RetentionResult,
    inventory: Inventory,
    now: float,
    last_used: Mapping[str, float],
    refusal: str | None = None,
    event_gap: str | None = None,
    holds: Sequence[Hold] = (),
) -> str:
    """Rich markup: a line per image (verdict, id, tags), then a line per decision; a gap in the
    daemon's events, when there may be one, first, as an input every last use depends on; then the
    active holds (what they keep shows as the ``held`` rung)."""
    lines = [f"Retention verdicts for the {len(result.verdicts)} images on the host:", ""]
    if event_gap:
        lines[1:1] = [f"  [yellow]events:[/] {escape(event_gap)}", ""]
    if holds:
        lines += [f"  [cyan]hold:[/] {escape(_hold_line(h, now))}" for h in holds] + [""]
    for verdict in result.verdicts:
        image = inventory.image_by_id.get(verdict.image_id)
        tags = (
            ", ".join(sorted(t.familiar() for t in image.tags))
            if image and image.tags
            else "<untagged>"
        )
        style = _STYLE[verdict.outcome]
        short = short_id(verdict.image_id)
        used = last_used.get(verdict.image_id)
        seen = f" (last use {format_age(now - used)} ago)" if used is not None else ""
        lines.append(f"  [{style}]{verdict.outcome.value:<6}[/] {short} {escape(tags)}{seen}")
        lines += [f"      {escape(_decision_line(d, now))}" for d in verdict.decisions]
    if refusal:
        lines += ["", f"Removal guard: {escape(refusal)}"]
    return "\n".join(lines)


def _hold_line(hold: Hold, now: float) -> str:
    image = (
        f" (image {short_id(hold.image_id)})"
        if hold.image_id and hold.image_id != hold.reference
        else ""
    )
    return (
        f"{hold.reference}{image} {hold.describe(now)}; it keeps the image from retention, prune:"
        " and absent entries alike"
    )


def _decision_line(decision: Decision, now: float) -> str:
    who = decision.rung.value if decision.rule is None else f"rule {decision.rule}"
    # Each input says which time it is: rules go by creation, min_age by arrival on the host.
    inputs = [f"created {format_age(decision.age)} ago"]
    if decision.arrived is not None:
        inputs.append(f"arrived {format_age(now - decision.arrived)} ago")
    if decision.last_used is not None:
        inputs.append(f"last use {format_age(now - decision.last_used)} ago")
    if decision.containers:
        inputs.append(f"container {', '.join(decision.containers)}")
    if decision.pattern:
        inputs.append(f"pattern {decision.pattern}")
    if decision.rank is not None:
        inputs.append(f"rank {decision.rank}")
    verb = "keep" if decision.kept else "drop"
    # A decision on the whole image needs no subject: the line above names the image.
    subject = (
        ""
        if decision.subject.startswith("sha256:") or _is_short_id(decision.subject)
        else f"{decision.subject}: "
    )
    return f"{subject}{verb} by {who}: {decision.reason} [{'; '.join(inputs)}]"


def _is_short_id(text: str) -> bool:
    return len(text) == 12 and all(c in "0123456789abcdef" for c in text)


_ORDER = {Fate.EVICT: 0, Fate.REMOVE: 1, Fate.UNTAG: 2, Fate.KEEP: 3}


def verdicts_table(
    result: RetentionResult, inventory: Inventory, now: float, last_used: Mapping[str, float]
) -> Table:
    """One row per image, sorted by verdict (evictions first, in the order the disk budget evicts
    them: least recently used first), with what decided it and, for what goes, the space freed so far."""

    def used(verdict: Verdict) -> float:
        image = inventory.image_by_id.get(verdict.image_id)
        return last_used.get(verdict.image_id, image.created if image else 0)

    from rich import box  # only the table needs rich: explain's text and JSON do not
    from rich.table import Table

    rows = sorted(
        result.verdicts,
        key=lambda v: (_ORDER[v.outcome], _eviction_place(v, used(v)), v.image_id),
    )
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column, justify in (
        ("verdict", "left"),
        ("image", "left"),
        ("size", "right"),
        ("age", "right"),
        ("last use", "right"),
        ("decided by", "left"),
        ("freed", "right"),
    ):
        table.add_column(column, justify=justify, overflow="fold", no_wrap=column != "image")  # type: ignore[arg-type]
    freed = 0
    for verdict in rows:
        image = inventory.image_by_id.get(verdict.image_id)
        tags = (
            ", ".join(sorted(t.familiar() for t in image.tags))
            if image and image.tags
            else f"<untagged> {short_id(verdict.image_id)}"
        )
        size = format_size(
            image.unique_size
            if image and image.unique_size is not None
            else image.size
            if image
            else None
        )
        age = format_age(now - image.created) if image and image.created else "?"
        seen = last_used.get(verdict.image_id)
        running = ""
        if verdict.removes:
            freed += _freed_bytes(verdict, image) or 0
            running = format_size(freed)
        style = _STYLE[verdict.outcome]
        table.add_row(
            f"[{style}]{verdict.outcome.value}[/]",
            escape(tags),
            size,
            age,
            f"{format_age(now - seen)} ago" if seen is not None else "never seen",
            escape(_decided_by(verdict)),
            running,
        )
    return table


def _eviction_place(verdict: Verdict, used: float) -> float:
    if verdict.outcome is not Fate.EVICT:
        return 0
    return verdict.eviction if verdict.eviction is not None else used


def budget_text(result: RetentionResult) -> str | None:
    """The disk budget's line under the table: how far over, and what the evictions free."""
    if result.budget is None:
        return None
    return f"Disk budget: {result.budget.summary()}."


def budget_json(result: RetentionResult) -> dict[str, Any] | None:
    check = result.budget
    if check is None:
        return None
    return {
        "max_total_bytes": check.budget.max_total,
        "high_percent": check.budget.high,
        "low_percent": check.budget.low,
        "images_bytes": check.disk.images_size,
        "bytes_over_max_total": check.over_max_total,
        "bytes_over_low": check.over_low,
        "removals_free_bytes": check.removals_free,
        "evictions": check.evictions,
        "evictions_free_bytes": check.evictions_free,
    }


def _decided_by(verdict: Verdict) -> str:
    """The rung or rule whose decision settled the verdict."""
    wanted = not verdict.removes and verdict.outcome is not Fate.UNTAG
    deciding = [d for d in verdict.decisions if d.kept is wanted] or list(verdict.decisions)
    if not deciding:
        return ""
    decision = deciding[0] if wanted else deciding[-1]
    return decision.rung.value if decision.rule is None else f"rule {decision.rule}"
