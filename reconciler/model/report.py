"""What an apply did, step by step: plain data for the renderers and exit codes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reconciler.model.plan import Action, Step


class Outcome(StrEnum):
    DONE = "done"
    SKIPPED = "skipped"  # not run, for safety: blocked, changed since the plan, or depends on a failure
    FAILED = "failed"
    STALE = "stale"  # not run: a saved plan expected another host state; plan again


@dataclass(frozen=True)
class StepResult:
    step: Step
    outcome: Outcome
    detail: str  # what happened, or why not, as a sentence
    image_id: str | None = None  # the image the step ended on (pull, tag)
    deleted: tuple[str, ...] = ()  # image ids the daemon deleted (parents included)
    bytes: int | None = None  # pull: image size; remove: unique bytes predicted freed
    seconds: float | None = None  # pull: how long it took, retries included
    downloaded_bytes: int | None = None  # pull: bytes fetched from the registry; None when unknown
    all_layers_present: bool = False  # pull: nothing fetched, the daemon had every layer
    rate_limited: bool = False  # not done only because a registry rate-limited a pull (429)
    daemon_lost: bool = False  # not done because the daemon stopped answering


@dataclass(frozen=True)
class Report:
    results: tuple[StepResult, ...] = ()
    host: str = ""
    manifest_path: str = ""
    measured_freed: int | None = None  # layer bytes the daemon's disk usage lost over the run
    interrupted: int | None = None  # the signal (SIGINT, SIGTERM) that stopped the run early

    def with_outcome(self, outcome: Outcome) -> tuple[StepResult, ...]:
        return tuple(r for r in self.results if r.outcome is outcome)

    @property
    def complete(self) -> bool:
        """True when every step was done."""
        return all(r.outcome is Outcome.DONE for r in self.results)

    @property
    def stale(self) -> bool:
        """True when a step of a saved plan was refused because the host changed since."""
        return any(r.outcome is Outcome.STALE for r in self.results)

    @property
    def bytes_freed(self) -> int:
        return sum(
            r.bytes or 0 for r in self.results if r.outcome is Outcome.DONE and r.step.action is Action.REMOVE
        )

    @property
    def pulled(self) -> tuple[StepResult, ...]:
        return tuple(r for r in self.with_outcome(Outcome.DONE) if r.step.action is Action.PULL)

    @property
    def pulled_images(self) -> tuple[StepResult, ...]:
        """One pull per image: tags of one image pulled at once (``web:1.1``, ``web:latest``) are one
        image, whose layers the daemon fetched once while every stream reported them."""
        seen: dict[str, StepResult] = {}
        alone: list[StepResult] = []
        for result in self.pulled:
            if result.image_id is None:
                alone.append(result)
            elif result.image_id not in seen or (result.downloaded_bytes or 0) > (seen[result.image_id].downloaded_bytes or 0):
                seen[result.image_id] = result
        return (*seen.values(), *alone)

    @property
    def bytes_downloaded(self) -> int | None:
        """Bytes the pulls fetched, each image once; None when a pull's stream gave no sizes."""
        counts = [r.downloaded_bytes for r in self.pulled_images]
        return None if None in counts else sum(c or 0 for c in counts)

    @property
    def images_deleted(self) -> tuple[str, ...]:
        return tuple(sorted({image_id for r in self.results for image_id in r.deleted}))
