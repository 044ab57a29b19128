"""The whole decision for one host: a pure function of (manifest, host facts, now).

The images section's steps, retention's verdicts and steps, the holds (every step that
would take from a held image blocked), and the one removal guard,
all from the facts read once; nothing here goes back to the daemon. Step sizes come
after, from :mod:`reconciler.planning.sizing`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.model.host_facts import HostFacts
from reconciler.model.manifest import Manifest, RetentionSpec
from reconciler.model.plan import Plan
from reconciler.planning.holds import block_held_steps, held_images, hold_reason
from reconciler.planning.images import plan_changes
from reconciler.planning.removal_guard import removal_refusal

if TYPE_CHECKING:
    from reconciler.planning.retention_verdicts import RetentionResult


@dataclass(frozen=True)
class HostPlan:
    plan: Plan
    retention: RetentionResult | None  # every image's verdict, when retention (or --explain) asked for them
    refusal: str | None  # why the removal guard refuses the plan; None when it may run


def decide(
    manifest: Manifest, facts: HostFacts, now: float, *, max_removals: int | None = None, explain: bool = False
) -> HostPlan:
    """Plan ``manifest`` on the host ``facts`` describe at ``now``; ``explain`` evaluates retention
    verdicts even without a ``retention:`` section (they then change nothing)."""
    inventory = facts.inventory
    held = held_images(facts.holds, inventory, now)
    plan = plan_changes(manifest, inventory, held=frozenset(held), local=facts.local)
    result = None
    if manifest.retention is not None or explain:
        # Retention's modules are imported only when it decides: a manifest with retention: or --explain.
        from reconciler.model.usage import UsageState
        from reconciler.planning.retention import evaluate_retention
        from reconciler.planning.retention_steps import plan_retention

        spec = manifest.retention or RetentionSpec()
        usage = facts.usage if facts.usage is not None else UsageState()
        result = evaluate_retention(
            spec,
            inventory.images,
            inventory.containers,
            manifest.declared.all,
            now,
            last_used=usage.last_used,
            arrived=usage.arrived,
            previous=usage.previous(inventory),
            disk=facts.disk,
            held={image_id: hold_reason(holds, now) for image_id, holds in held.items()},
        )
        if manifest.retention is not None:
            plan = plan_retention(plan, inventory, manifest.retention, result, now)
    plan = block_held_steps(plan, held, now)
    if manifest.build_cache is not None and facts.build_cache is not None:
        from reconciler.planning.build_cache import plan_build_cache  # a build_cache: section's

        cache_steps = plan_build_cache(manifest.build_cache, facts.build_cache, now)
        plan = dataclasses.replace(plan, steps=(*plan.steps, *cache_steps))  # after every image step, as ACTION_ORDER has them
    refusal = removal_refusal(plan, manifest, len(inventory.images), max_removals)
    return HostPlan(plan, result, refusal)
