"""What a host has, written as an images.yaml (version 1) that plans to no changes.

Pure: an Inventory and a clock in, YAML text out. Every name, tag and digest
is written double-quoted (JSON string syntax is valid YAML), so ``1.10`` stays
the tag ``1.10`` and ``on`` stays a string when the loader reads it back.

What version 1 can express decides what is listed:
- one entry per repository, with every tag it has on the host, sorted;
- an image with no tag but a digest reference (pulled by digest) as ``digest:``,
  when its repository has no tag and no other such image (an entry pins one digest);
- untagged images without digest references are not listed. Nor is anything
  version 1 cannot say; those are named in comments so nothing is hidden.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.model.inventory import Inventory
from reconciler.model.reference import InvalidReference, Reference, parse_repository


@dataclass(frozen=True)
class _Entry:
    name: str  # familiar repository name
    tags: tuple[str, ...] = ()
    digest: str | None = None


def export_manifest(inventory: Inventory, created: datetime) -> str:
    """The manifest text of ``inventory``, with a header naming its host and ``created``."""
    entries, unlisted = _entries(inventory)
    lines = [
        f"# Images on {inventory.host or 'the Docker host'} on {_timestamp(created)}, written by `reconcile export`.",
        "# Version 1 of images.yaml; `reconcile plan` on this file and host shows no changes.",
    ]
    untagged = sum(1 for image in inventory.images if not image.tags and not image.digests)
    if untagged:
        lines.append(f"# Not listed: {untagged} untagged image{'s' if untagged != 1 else ''} (no tag, no digest).")
    lines += [f"# Not listed, version 1 has no way to say it: {ref}" for ref in unlisted]
    lines += ["version: 1", "images: []" if not entries else "images:"]
    for entry in entries:
        lines.append(f"  - name: {_quote(entry.name)}")
        if entry.tags:
            lines.append(f"    tags: [{', '.join(_quote(tag) for tag in entry.tags)}]")
        if entry.digest:
            lines.append(f"    digest: {_quote(entry.digest)}")
    return "\n".join(lines) + "\n"


def _entries(inventory: Inventory) -> tuple[list[_Entry], list[str]]:
    """The entries, sorted by repository, and the digest references left out."""
    tags: dict[str, set[str]] = {}
    for image in inventory.images:
        for ref in image.tags:
            assert ref.tag is not None  # RepoTags always carry a tag
            tags.setdefault(ref.name, set()).add(ref.tag)
    pinned: dict[str, list[Reference]] = {}
    for image in inventory.images:
        if image.tags:
            continue  # a tagged image is listed by its tags
        for ref in image.digests:
            pinned.setdefault(ref.name, []).append(ref)
    names: dict[str, str] = {}
    for ref in _all_refs(inventory):
        names.setdefault(ref.name, _written_name(ref))
    entries: list[_Entry] = []
    unlisted: list[str] = []
    for name in sorted(set(tags) | set(pinned), key=lambda n: names[n]):
        familiar = names[name]
        digests = sorted(pinned.get(name, ()), key=lambda r: r.canonical())
        if name in tags:
            entries.append(_Entry(familiar, tags=tuple(sorted(tags[name]))))
            unlisted += [ref.familiar() for ref in digests]
        else:
            entries.append(_Entry(familiar, digest=digests[0].digest))
            unlisted += [ref.familiar() for ref in digests[1:]]
    return entries, unlisted


def _all_refs(inventory: Inventory) -> Iterable[Reference]:
    for image in inventory.images:
        yield from image.tags
        yield from image.digests


def _written_name(ref: Reference) -> str:
    """The familiar name (``nginx``) when it reads back as the same repository, else the full one."""
    try:
        if parse_repository(ref.familiar_name).name == ref.name:
            return ref.familiar_name
    except InvalidReference:
        pass
    return ref.name


def _quote(text: str) -> str:
    # Names, tags and digests are ASCII by Docker's grammar; a JSON string is a YAML double-quoted scalar.
    return json.dumps(text)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
