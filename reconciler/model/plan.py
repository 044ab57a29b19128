"""A plan: the ordered steps that take the host from its inventory to the manifest.

Pure data; rendered by :mod:`reconciler.cli.render`, carried out by
:mod:`reconciler.execution.executor`. A step's ``reason`` is for people: the executor
decides only by the other fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reconciler.model.derived import derived
from reconciler.model.manifest import BuildRecipe


class Action(StrEnum):
    PULL = "pull"
    BUILD = "build"  # a local build tags ``ref`` (``build``: how; ``inputs``: its inputs digest)
    LOAD = "load"  # a `docker save` archive is loaded and ``ref`` tagged (``archive``; ``inputs``: its digest)
    TAG = "tag"
    UNTAG = "untag"
    REMOVE = "remove"
    PRUNE_CACHE = "prune-cache"  # one BuildKit build cache record, by id (``ref``)


# Steps run in this order: what is fetched before what is pointed at it, and
# every untag before the removal that deletes the image behind it; the build cache last.
ACTION_ORDER = {
    Action.PULL: 0,
    Action.BUILD: 0,
    Action.LOAD: 0,
    Action.TAG: 1,
    Action.UNTAG: 2,
    Action.REMOVE: 3,
    Action.PRUNE_CACHE: 4,
}


@dataclass(frozen=True)
class Step:
    action: Action
    ref: str  # the reference acted on, as `docker image ls` shows it; an image id for untagged images; a cache record id
    reason: str
    image_id: str | None = None  # the image the step expects to find; None for a pull of a missing tag
    bytes: int | None = None  # pull: unknown before the pull; remove: unique bytes freed
    source: str | None = None  # tag: the reference whose image gets the new tag
    platform: str | None = None  # pull: os/arch[/variant]
    expected_digest: str | None = None  # pull: the content the pulled reference must have
    blocked: str | None = None  # why the step will not run (in use, pull: never, ...)
    build: BuildRecipe | None = None  # build: what to build
    archive: str | None = None  # load: the archive's path
    inputs: str | None = None  # build: the digest of its inputs (the image's label); load: the archive's sha256

    def sort_key(self) -> tuple[int, str, str]:
        return (ACTION_ORDER[self.action], self.ref, self.image_id or "")

    @property
    def makes_image(self) -> bool:
        """A pull, build or load: the steps that bring an image to the host."""
        return self.action in (Action.PULL, Action.BUILD, Action.LOAD)

    @property
    def is_destructive(self) -> bool:
        return self.action in (Action.UNTAG, Action.REMOVE)

    def as_dict(self) -> dict[str, Any]:
        """The step as plain JSON-ready data (plan output and plan files)."""
        return {
            "action": self.action.value,
            "ref": self.ref,
            "image_id": self.image_id,
            "reason": self.reason,
            "bytes": self.bytes,
            "source": self.source,
            "platform": self.platform,
            "expected_digest": self.expected_digest,
            "blocked": self.blocked,
            **({"build": _recipe_dict(self.build)} if self.build else {}),
            **({"archive": self.archive} if self.archive else {}),
            **({"inputs": self.inputs} if self.inputs else {}),
        }


def _recipe_dict(recipe: BuildRecipe) -> dict[str, Any]:
    return {
        "context": recipe.context,
        "dockerfile": recipe.dockerfile,
        "args": dict(recipe.args),
        "target": recipe.target,
        "builder": recipe.builder.value,
    }


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...] = ()
    manifest_path: str = ""
    manifest_digest: str = ""
    host: str = ""

    @derived
    def runnable(self) -> tuple[Step, ...]:
        # Made once: the summary, the guard and the sizing each ask, over thousands of steps.
        return tuple(step for step in self.steps if step.blocked is None)

    @property
    def blocked(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.blocked is not None)

    @property
    def has_changes(self) -> bool:
        """Any step at all, blocked ones included: the host differs from the manifest."""
        return bool(self.steps)

    @property
    def has_runnable(self) -> bool:
        """Some step can run: what `plan --detailed-exitcode` reports as changes pending."""
        return bool(self.runnable)

    def count(self, action: Action) -> int:
        return self._counts.get(action, 0)

    @derived
    def _counts(self) -> dict[Action, int]:
        counts: dict[Action, int] = {}
        for step in self.runnable:
            counts[step.action] = counts.get(step.action, 0) + 1
        return counts

    @property
    def bytes_to_free(self) -> int:
        return sum(step.bytes or 0 for step in self.runnable if step.action is Action.REMOVE)

    @property
    def cache_bytes_to_free(self) -> int:
        """What the build cache records the plan prunes take (shared ones are never planned)."""
        return sum(step.bytes or 0 for step in self.runnable if step.action is Action.PRUNE_CACHE)

    @property
    def bytes_to_free_known(self) -> bool:
        return all(step.bytes is not None for step in self.runnable if step.action is Action.REMOVE)
