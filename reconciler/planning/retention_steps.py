"""Retention verdicts as plan steps, and the blast-radius guard. Pure: plain data in and out.

:func:`plan_retention` adds to a plan (the one :func:`~reconciler.planning.images.plan_changes`
made from ``images:`` and ``prune:``) the untag and remove steps the verdicts of
:func:`~reconciler.planning.retention.evaluate_retention` call for, with the same shape as
the planner's: the other tags of a removed image are untagged first, its last
reference removed; a step the plan already has is not added twice.
"""

from __future__ import annotations

import dataclasses

from reconciler.model.inventory import ImageRecord, Inventory
from reconciler.model.manifest import RetentionSpec
from reconciler.model.plan import Action, Plan, Step
from reconciler.model.reference import familiar_key, reference_key
from reconciler.model.units import format_age, format_duration
from reconciler.planning.images import run_order
from reconciler.planning.retention_verdicts import Decision, Fate, RetentionResult, Rung, Verdict


def plan_retention(
    plan: Plan, inventory: Inventory, spec: RetentionSpec, result: RetentionResult, now: float
) -> Plan:
    """``plan`` with the steps ``result`` calls for; sorted as the planner sorts."""
    handled = {(reference_key(s.ref), s.image_id) for s in plan.steps if s.is_destructive}
    removed = {s.image_id for s in plan.steps if s.action is Action.REMOVE}
    rules = {rule.name: rule for rule in spec.rules}
    # Rule name -> its older_than as the reasons word it (None: the rule has none), once per plan.
    older_than = {
        name: None if rule.older_than is None else format_duration(rule.older_than)
        for name, rule in rules.items()
    }
    added: list[Step] = []
    for verdict in result.verdicts:
        if verdict.outcome is Fate.KEEP or verdict.image_id in removed:
            continue
        image = inventory.image_by_id.get(verdict.image_id)
        if image is None:
            continue
        gone = {key for t in image.tags if (key := familiar_key(t), image.id) in handled} if handled else set()
        if verdict.removes:
            added += _removal(image, verdict, gone, older_than, now)
        else:
            added += _untags(image, verdict, gone, older_than, now)
    if not added:
        return plan
    steps = sorted({*plan.steps, *added}, key=lambda step: run_order(step, inventory))
    return dataclasses.replace(plan, steps=tuple(steps))


def _removal(
    image: ImageRecord,
    verdict: Verdict,
    gone: set[str],
    older_than: dict[str, str | None],
    now: float,
) -> list[Step]:
    """Untag every tag but the last, then remove the last reference (the image goes with it)."""
    why = _reason(_deciding(verdict), older_than, now)
    tags = [t for t in image.tags if familiar_key(t) not in gone] if gone else image.tags
    refs = sorted([t.familiar() for t in tags])
    if not image.tags:
        refs = [min((d.familiar() for d in image.digests), default=image.id)]
    if not refs:
        return []  # the plan already drops every tag: the planner's own steps remove it
    untags = [_step(Action.UNTAG, image, ref, why, 0) for ref in refs[:-1]]
    last = _step(Action.REMOVE, image, refs[-1], why, None)  # sized later, with the whole plan
    return [*untags, last]


def _untags(
    image: ImageRecord,
    verdict: Verdict,
    gone: set[str],
    older_than: dict[str, str | None],
    now: float,
) -> list[Step]:
    by_subject = {d.subject: d for d in verdict.decisions}
    left = {familiar_key(t) for t in image.tags} - gone
    steps = []
    for ref in verdict.untag:
        if familiar_key(ref) not in left or len(left) == 1:
            continue  # already dropped, or the image's last tag: untagging it would remove it
        left.discard(familiar_key(ref))
        decision = by_subject.get(ref.familiar()) or _deciding(verdict)
        steps.append(_step(Action.UNTAG, image, ref.familiar(), _reason(decision, older_than, now), 0))
    return steps


def _step(action: Action, image: ImageRecord, ref: str, reason: str, size: int | None) -> Step:
    return Step(action=action, ref=ref, image_id=image.id, reason=reason, bytes=size)


def _deciding(verdict: Verdict) -> Decision:
    """The decision that drops the image: the disk budget's, else the first that does not keep."""
    first_dropping = None
    for decision in verdict.decisions:
        if not decision.kept:
            if decision.rung is Rung.DISK:
                return decision
            if first_dropping is None:
                first_dropping = decision
    return verdict.decisions[0] if first_dropping is None else first_dropping


def _reason(decision: Decision, older_than: dict[str, str | None], now: float) -> str:
    """A step reason naming the rule or rung that decided, with its inputs."""
    age = format_age(decision.age)
    if decision.rung is Rung.DISK:
        last = (
            f"last use {format_age(now - decision.last_used)} ago"
            if decision.last_used is not None
            else f"no recorded use; created {age} ago"
        )
        return f"disk budget: evicted, least recently used ({last}); {decision.reason.split(': ', 1)[-1]}"
    if decision.rung is Rung.UNMATCHED:
        return f"retention: no rule selects it, unmatched: remove (age {age})"
    limit = older_than.get(decision.rule or "")
    name = decision.rule or "?"
    if decision.condition == "older_than" and limit is not None:
        return f"retention rule {name}: older_than {limit} (age {age})"
    return f"retention rule {name}: selected and kept by none of its conditions (age {age})"
