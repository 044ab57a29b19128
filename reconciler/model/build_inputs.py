"""What a local build is made from, as digests: the key of ``source: build`` and ``source: load``.

A built image carries its inputs' digest as the label :data:`INPUTS_LABEL`; the plan builds again
only when the digest of the inputs now differs. The parts (each context file's digest, the
Dockerfile's, the args, the target) let the plan say what changed when an earlier build's
parts were recorded (:mod:`reconciler.state.local_images`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

INPUTS_LABEL = "io.reconciler.build-inputs"
FORMAT = 1  # bumped when what the digest covers changes: every image then builds once more


@dataclass(frozen=True)
class BuildInputs:
    """The digests of one build's inputs. ``files``: context path -> digest of its type, mode and content."""

    files: Mapping[str, str] = field(default_factory=dict)
    dockerfile: str = ""  # the Dockerfile's path in the context and its content, digested
    args: tuple[tuple[str, str], ...] = ()
    target: str | None = None
    builder: str = "legacy"

    @property
    def digest(self) -> str:
        """``sha256:`` of everything above, in one canonical form: the label's value."""
        document = {
            "format": FORMAT,
            "files": sorted(self.files.items()),
            "dockerfile": self.dockerfile,
            "args": sorted(self.args),
            "target": self.target,
            "builder": self.builder,
        }
        text = json.dumps(document, separators=(",", ":"), ensure_ascii=True)
        return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def what_changed(before: BuildInputs | None, now: BuildInputs) -> str:
    """In a few words, why inputs whose digest differs from ``before``'s need a build."""
    if before is None:
        return "build inputs changed"
    changes: list[str] = []
    files = sorted(set(before.files) | set(now.files))
    changed = [path for path in files if before.files.get(path) != now.files.get(path)]
    if before.dockerfile != now.dockerfile:
        changes.append("the Dockerfile changed")
    for path in changed[:3]:
        if path not in now.files:
            changes.append(f"context file {path} was removed")
        elif path not in before.files:
            changes.append(f"context file {path} was added")
        else:
            changes.append(f"context file {path} changed")
    if len(changed) > 3:
        changes.append(f"{len(changed) - 3} more context files changed")
    old_args, new_args = dict(before.args), dict(now.args)
    for name in sorted(set(old_args) | set(new_args)):
        if old_args.get(name) != new_args.get(name):
            changes.append(f"build arg {name} changed")
    if before.target != now.target:
        changes.append(f"target changed to {now.target or 'the last stage'}")
    if before.builder != now.builder:
        changes.append(f"builder changed to {now.builder}")
    return "; ".join(changes) or "build inputs changed"


@dataclass(frozen=True)
class LocalRecords:
    """What earlier runs recorded (:mod:`reconciler.state.local_images`)."""

    loaded: Mapping[str, str] = field(
        default_factory=dict
    )  # archive sha256 -> the image id it loaded
    built: Mapping[str, BuildInputs] = field(default_factory=dict)  # inputs digest -> its parts


@dataclass(frozen=True)
class LocalFacts:
    """The local files ``source: build`` and ``source: load`` entries are made from, read before
    deciding, and what earlier runs recorded of them."""

    inputs: Mapping[str, BuildInputs] = field(
        default_factory=dict
    )  # canonical first tag -> its inputs now
    archives: Mapping[str, str] = field(default_factory=dict)  # archive path -> its sha256 now
    records: LocalRecords = LocalRecords()


NO_LOCAL_FACTS = LocalFacts()
