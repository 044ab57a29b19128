"""The desired state: what a user declared in images.yaml, validated and normalised.

Plain frozen data. Built by :mod:`reconciler.loader`; read by the planner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.reference import Reference


class PullPolicy(StrEnum):
    IF_MISSING = "if-missing"  # pull only when the tag is not on the host
    ALWAYS = "always"  # re-pull when the registry's digest for the tag moved
    NEVER = "never"  # never contact a registry; a missing tag is a problem


class ImageState(StrEnum):
    PRESENT = "present"
    ABSENT = "absent"  # every local tag of the repository goes


@dataclass(frozen=True)
class Source:
    """Where a declaration stands in the manifest, for messages."""

    file: str
    path: str  # e.g. ``images[1]``
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column} ({self.path})"


@dataclass(frozen=True)
class ImageSpec:
    """One entry of ``images:``.

    ``repository`` is a name without tag or digest. ``aliases`` are full
    references (with a tag) that must point at the image of the first tag.
    """

    repository: Reference
    tags: tuple[str, ...] = ()
    aliases: tuple[Reference, ...] = ()
    digest: str | None = None
    platform: str | None = None
    pull: PullPolicy = PullPolicy.IF_MISSING
    state: ImageState = ImageState.PRESENT
    source: Source | None = field(default=None, compare=False)

    def tag_references(self) -> tuple[Reference, ...]:
        """The references ``repository:tag`` for every declared tag, in order."""
        return tuple(self.repository.with_tag(tag) for tag in self.tags)


@dataclass(frozen=True)
class PruneSpec:
    unlisted_tags: bool = False  # untag local tags of declared repositories that are not listed
    dangling: bool = False  # remove images with no tag that no container uses


@dataclass(frozen=True)
class Manifest:
    images: tuple[ImageSpec, ...] = ()
    prune: PruneSpec = PruneSpec()
    path: str = "<memory>"
    digest: str = ""  # sha256 of the manifest file's bytes, to detect a changed file

    def present(self) -> tuple[ImageSpec, ...]:
        return tuple(spec for spec in self.images if spec.state is ImageState.PRESENT)

    def absent(self) -> tuple[ImageSpec, ...]:
        return tuple(spec for spec in self.images if spec.state is ImageState.ABSENT)
