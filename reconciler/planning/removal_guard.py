"""The one removal guard: what ``--explain`` reports is what ``plan`` and ``apply`` enforce.

``--max-removals`` (a count) and ``retention.max_removal_percent`` (a share of the host's
images, default 50 where ``retention:`` is given) bound a plan's runnable removals.
"""

from __future__ import annotations

from reconciler.model.manifest import Manifest
from reconciler.model.plan import Action, Plan


def removal_refusal(plan: Plan, manifest: Manifest | None, host_images: int, max_removals: int | None) -> str | None:
    """Why ``plan`` removes too much for ``manifest``'s guard and ``max_removals``, or None."""
    percent = manifest.retention.max_removal_percent if manifest and manifest.retention else None
    return removal_guard(plan, host_images, percent, max_removals)


def removal_guard(
    plan: Plan, total_images: int | None, max_removal_percent: float | None, max_removals: int | None
) -> str | None:
    """Why ``plan`` removes too much, or None. Counts every removal that will run."""
    removals = plan.count(Action.REMOVE)
    problems = []
    if max_removals is not None and removals > max_removals:
        problems.append(f"it would remove {removals} images, more than --max-removals {max_removals}")
    if (
        max_removal_percent is not None
        and total_images
        and removals * 100 > max_removal_percent * total_images
    ):
        problems.append(
            f"it would remove {removals} of the {total_images} images on the host,"
            f" more than max_removal_percent {max_removal_percent:g}%"
        )
    if not problems:
        return None
    return (
        "The plan was refused and nothing was done: "
        + "; ".join(problems)
        + ". Check the plan's removals; pass --allow-large-removal to go ahead."
    )
