"""The gates before an image's first untag or removal: holds, make before break, containers.

Mixed into :class:`reconciler.execution.executor.Executor`. A removal is one unit: each gate
is asked once per image, and its answer serves every step of that image.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from reconciler.daemon.host import DaemonRefused, DockerHost
from reconciler.errors import DaemonUnavailable
from reconciler.execution.step_errors import AGAIN, daemon_lost
from reconciler.model.inventory import ContainerRecord
from reconciler.model.plan import Step
from reconciler.model.reference import parse_reference
from reconciler.model.report import Outcome, StepResult

CONTAINERS_FRESH_FOR = 1.0  # seconds a container list serves removal checks before it is read again


class RemovalGates:
    """State: the executor's ``host``, ``held``, ``refuse_stale`` and the per-image answers below."""

    @property
    def host(self) -> DockerHost:
        raise NotImplementedError

    held: Callable[[str], str | None] | None
    refuse_stale: bool
    _hold_gates: dict[str, str | None]  # image id -> why it is held (None: it is not)
    _holds_lock: threading.Lock
    _failed_repos: dict[str, bool]  # repositories whose pull or tag failed -> only rate-limited
    _not_made: dict[str, str]  # refs whose build or load failed -> "built" or "loaded"
    _removed: set[str]  # images a runnable removal of the plan deletes
    _gates: dict[str, str | None]  # image id -> why its removal does not start (None: it may)
    _containers: tuple[float, tuple[ContainerRecord, ...]] | None  # (read at, containers)

    def _hold_gate(self, step: Step) -> StepResult | None:
        """A hold placed since the plan was made keeps the image whole: asked before its first
        untag or removal, and that answer serves its other steps (a removal is one unit)."""
        if self.held is None or not step.is_destructive or not step.image_id:
            return None
        if step.image_id not in self._hold_gates:
            try:
                # The holds are read on the run's first connection: one worker at a time asks.
                with self._holds_lock:
                    self._hold_gates[step.image_id] = self.held(step.image_id)
            except DaemonUnavailable as exc:
                return daemon_lost(step, exc)
            except DaemonRefused as exc:
                return StepResult(
                    step,
                    Outcome.SKIPPED,
                    f"kept: the holds could not be checked ({exc.explanation})",
                )
        why = self._hold_gates[step.image_id]
        return None if why is None else StepResult(step, Outcome.SKIPPED, why)

    def _held_for_replacement(self, step: Step) -> StepResult | None:
        """Make before break: a reference of a repository whose pull or tag failed in this run stays,
        with the image behind it, until what was to replace it has arrived."""
        if step.ref.startswith("sha256:"):
            return None
        name = parse_reference(step.ref).name
        if name not in self._failed_repos:
            return None
        familiar = parse_reference(step.ref).familiar_name
        return StepResult(
            step,
            Outcome.SKIPPED,
            f"kept: a {self._what_failed(name)} of {familiar} failed in this run, so nothing it was to replace is touched",
            rate_limited=self._failed_repos[name],
        )

    def _what_failed(self, name: str) -> str:
        verbs = {"built": "build", "loaded": "load"}
        made = {verbs[v] for k, v in self._not_made.items() if parse_reference(k).name == name}
        return " or ".join(sorted(made)) if made else "pull or tag"

    def _removal_gate(self, step: Step) -> StepResult | None:
        """A removal is one unit: before the first untag of an image the plan removes, the image is
        checked once for containers; one in use keeps every tag, none of its steps run."""
        image_id = step.image_id
        if image_id is None or image_id not in self._removed:
            return None
        if image_id not in self._gates:
            # The container list of the last second serves, as for every removal check: a container
            # made after it gets the final delete refused (409), and the untagged tags are put back.
            try:
                users = self._containers_using(image_id)
            except DaemonUnavailable as exc:
                return daemon_lost(step, exc)
            except DaemonRefused as exc:
                return StepResult(
                    step, Outcome.FAILED, f"the containers could not be listed: {exc.explanation}"
                )
            self._gates[image_id] = ", ".join(users) if users else None
        users_text = self._gates[image_id]
        if users_text is None:
            return None
        if self.refuse_stale:
            why = f"the image is now used by container {users_text}, so it is kept with all its tags{AGAIN}"
            return StepResult(step, Outcome.STALE, why)
        why = f"in use by container {users_text}; an image a container uses is never removed, and none of its tags go"
        return StepResult(step, Outcome.SKIPPED, why)

    def _containers_using(self, image_id: str) -> list[str]:
        """Names (and short ids) of the containers, running or stopped, that use ``image_id``.

        The container list is read again when it is older than CONTAINERS_FRESH_FOR, not
        before every removal: a container made in that window is still caught, because a
        delete without force is refused by the daemon for an image a container uses.
        """
        now = time.monotonic()
        if self._containers is None or now - self._containers[0] > CONTAINERS_FRESH_FOR:
            self._containers = (now, self.host.list_containers())
        return sorted(
            f"{c.name} ({c.short_id})" for c in self._containers[1] if c.image_id == image_id
        )
