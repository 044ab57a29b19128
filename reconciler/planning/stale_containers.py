"""Containers that run an image a declared tag no longer points at. Pure: plain data in and out.

A container created from ``app:1`` keeps running the image ``app:1`` pointed at then; when
``pull: always`` moves the tag, it runs a stale image until someone recreates it. reconcile
only reports them: recreating containers is not its business.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reconciler.model.inventory import Inventory
from reconciler.model.plan import Action, Plan
from reconciler.model.reference import tag_key, tag_reference


@dataclass(frozen=True)
class StaleContainer:
    container: str  # its name
    container_id: str
    tag: str  # the declared tag it was created from, familiar
    old_image: str  # the image it runs
    new_image: str  # the image the tag points at now, or (pending) the registry's digest for it
    pending: bool = False  # the plan's pull is yet to move the tag

    def as_dict(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "container_id": self.container_id,
            "tag": self.tag,
            "old_image": self.old_image,
            "new_image": self.new_image,
            "pending": self.pending,
        }


def stale_containers(declared_tags: Iterable[str], inventory: Inventory, plan: Plan | None = None) -> tuple[StaleContainer, ...]:
    """Each container created from a declared tag (canonical ``name:tag``) that now points at another
    image; with ``plan``, also those whose image a runnable pull of the plan will move the tag away from."""
    declared = set(declared_tags)
    moving = {}
    for step in plan.runnable if plan else ():
        key = tag_key(step.ref)
        if step.action is Action.PULL and key in declared and key in inventory.remote_digests and step.image_id:
            moving[key] = inventory.remote_digests[key]
    found = []
    for container in inventory.containers:
        ref = tag_reference(container.image_name) if container.image_name else None
        if ref is None or (key := ref.canonical()) not in declared:
            continue
        familiar = container.image_name
        current = inventory.image_with_tag(ref)
        if current is not None and current.id != container.image_id:
            found.append(StaleContainer(container.name, container.id, familiar, container.image_id, current.id))
        elif current is not None and key in moving:
            found.append(
                StaleContainer(container.name, container.id, familiar, container.image_id, moving[key], pending=True)
            )
    return tuple(sorted(found, key=lambda s: (s.tag, s.container)))
