"""``reconcile df``: disk use per repository, what `docker system df -v` does not add up. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.inventory import ImageRecord, Inventory

UNTAGGED = "<untagged>"


@dataclass(frozen=True)
class RepositoryUsage:
    repository: str  # familiar name; UNTAGGED for images without a tag
    images: int
    tags: int
    unique_bytes: int  # what removing all of them alone would free
    shared_bytes: int  # layers they share with other images (counted once per image)
    oldest: int  # creation times, Unix seconds
    newest: int
    in_use: int  # images a container uses


def repository_usage(inventory: Inventory) -> tuple[RepositoryUsage, ...]:
    """One entry per repository (an image of several repositories counts in each), largest unique bytes first."""
    used = {c.image_id for c in inventory.containers}
    groups: dict[str, list[tuple[ImageRecord, int]]] = {}
    for image in inventory.images:
        repositories: dict[str, int] = {}
        for tag in image.tags:
            name = tag.familiar_name
            repositories[name] = repositories.get(name, 0) + 1
        for name, count in (repositories or {UNTAGGED: 0}).items():
            groups.setdefault(name, []).append((image, count))
    usage = [
        RepositoryUsage(
            repository=name,
            images=len(members),
            tags=sum(count for _, count in members),
            unique_bytes=sum(image.unique_size or 0 for image, _ in members),
            shared_bytes=sum(max(image.shared_size or 0, 0) for image, _ in members),
            oldest=min(image.created for image, _ in members),
            newest=max(image.created for image, _ in members),
            in_use=sum(1 for image, _ in members if image.id in used),
        )
        for name, members in groups.items()
    ]
    return tuple(sorted(usage, key=lambda u: (-u.unique_bytes, u.repository)))
