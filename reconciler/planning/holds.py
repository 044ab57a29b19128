"""Which images the holds keep, and the plan with every step that would take from them blocked. Pure.

A hold ranks right after "a container uses it": the image it was placed on, and the
image its reference points at now, keep every reference while the hold lasts, whatever
retention, ``prune:`` or an ``absent`` entry says. The same check runs when a plan is
decided (steps shown blocked, with who holds the image and until when) and again in
``apply`` before an image's first untag or removal, from the holds as they are then.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from reconciler.model.holds import Hold
from reconciler.model.inventory import Inventory
from reconciler.model.plan import Plan


def held_images(holds: Iterable[Hold], inventory: Inventory, now: float) -> dict[str, tuple[Hold, ...]]:
    """Image id -> the active holds keeping it, each hold's own image and its reference's image now."""
    held: dict[str, list[Hold]] = {}
    for hold in holds:
        if not hold.active(now):
            continue
        ids = {hold.image_id} if hold.image_id else set()
        current = inventory.image_by_tag.get(hold.reference) or inventory.image_by_digest.get(hold.reference)
        if current is not None:
            ids.add(current.id)
        for image_id in ids:
            held.setdefault(image_id, []).append(hold)
    return {image_id: tuple(sorted(found, key=lambda h: (h.expires, h.id))) for image_id, found in held.items()}


def hold_reason(holds: Iterable[Hold], now: float) -> str:
    """Why a held image keeps its references, naming every hold on it."""
    return "; ".join(h.describe(now) for h in holds) + "; a held image is never untagged or removed until its holds expire or are released"


def block_held_steps(plan: Plan, held: Mapping[str, tuple[Hold, ...]], now: float) -> Plan:
    """``plan`` with every untag and remove of a held image blocked (one already blocked keeps its reason)."""
    if not held:
        return plan
    steps = tuple(
        dataclasses.replace(step, blocked=hold_reason(held[step.image_id], now))
        if step.is_destructive and not step.blocked and step.image_id is not None and step.image_id in held
        else step
        for step in plan.steps
    )
    return dataclasses.replace(plan, steps=steps)
