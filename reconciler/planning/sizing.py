"""Sizing: the one place a step's bytes are written. Pure.

A removal frees its image's unique bytes: per layer when the layers were read
(:mod:`reconciler.planning.freed_space`), else the image size less its shared bytes,
else unknown (None).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from reconciler.model.inventory import Inventory
from reconciler.model.plan import Action, Plan, Step


def sized_plan(plan: Plan, inventory: Inventory, freed: Mapping[str, int] | None = None) -> Plan:
    """``plan`` with each removal's bytes: ``freed`` (by image id) for runnable ones where it
    knows, else the image's unique size from ``inventory``."""
    known = freed or {}

    def sized(step: Step) -> Step:
        if step.action is not Action.REMOVE or not step.image_id:
            return step
        if step.blocked is None and step.image_id in known:
            return dataclasses.replace(step, bytes=known[step.image_id])
        image = inventory.image_by_id.get(step.image_id)
        return dataclasses.replace(step, bytes=image.unique_size if image else None)

    return dataclasses.replace(plan, steps=tuple(sized(step) for step in plan.steps))
