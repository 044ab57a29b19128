"""What a command's work on one host comes to: plain values with their exit code, for the CLI to render."""

from __future__ import annotations

import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.errors import ExitCode, ReconcilerError
from reconciler.model.holds import Hold
from reconciler.model.inventory import Inventory
from reconciler.model.plan import Plan
from reconciler.planning.stale_containers import StaleContainer

if TYPE_CHECKING:
    from reconciler.model.report import Report
    from reconciler.planning.retention_verdicts import RetentionResult


@dataclass(frozen=True)
class Verdicts:
    """``--explain``'s input: every image's retention verdict, on the sized inventory."""

    result: RetentionResult
    inventory: Inventory
    now: float
    last_used: Mapping[str, float] = field(default_factory=dict)
    arrived: Mapping[str, float] = field(default_factory=dict)  # image id -> arrival on the host
    event_gap: str | None = None  # why the events behind last use may be incomplete
    holds: tuple[Hold, ...] = ()  # the daemon's active holds


@dataclass(frozen=True)
class PlanOutcome:
    host: str
    plan: Plan
    code: ExitCode
    refusal: str | None = None  # the removal guard's refusal; nothing may run
    verdicts: Verdicts | None = None  # with --explain
    saved_to: Path | None = None  # plan --out
    saved_digest: str | None = None  # the saved plan's digest, for apply --require-digest
    daemon: str | None = None  # which daemon (lock.daemon_identity), when it was asked
    event_gap: str | None = None  # a warning: the daemon's events since the last run may be incomplete
    stale: tuple[StaleContainer, ...] = ()  # containers running an image a declared tag no longer points at


@dataclass(frozen=True)
class ApplyOutcome:
    host: str
    plan: Plan
    code: ExitCode
    report: Report | None = None  # None when nothing ran: the plan was refused
    refusal: str | None = None
    daemon: str | None = None  # which daemon (lock.daemon_identity)
    stale: tuple[StaleContainer, ...] = ()  # after the run: containers running an image a declared tag left
    cancelled: bool = False  # the user answered no when asked to confirm: nothing ran


@dataclass(frozen=True)
class HostFailure:
    """A host whose turn ended in an error before it had a plan or a report."""

    host: str
    error: ReconcilerError

    @property
    def code(self) -> ExitCode:
        return self.error.exit_code


def apply_exit_code(report: Report) -> ExitCode:
    """0 when every step was done; 4 when a saved plan's step was stale (it wins: plan again
    first); 69 when the daemon stopped answering; 75 when only registry rate limits stood
    in the way; else 3."""
    from reconciler.model.report import Outcome  # an apply's: a plan has no report

    if report.interrupted is not None:
        return ExitCode.TERMINATED if report.interrupted == signal.SIGTERM else ExitCode.INTERRUPTED
    if report.stale:
        return ExitCode.STALE_PLAN
    not_done = [r for r in report.results if r.outcome is not Outcome.DONE]
    if not not_done:
        return ExitCode.OK
    if any(r.daemon_lost for r in not_done):
        return ExitCode.DAEMON_UNAVAILABLE
    if all(r.rate_limited for r in not_done):
        return ExitCode.TEMPORARY_FAILURE
    return ExitCode.INCOMPLETE


# Which exit code a run over several daemons ends with: the most serious of theirs.
_SEVERITY = [
    ExitCode.OK,
    ExitCode.CHANGES_PENDING,
    ExitCode.TEMPORARY_FAILURE,
    ExitCode.INCOMPLETE,
    ExitCode.STALE_PLAN,
    ExitCode.INVALID_MANIFEST,
    ExitCode.USAGE,
    ExitCode.DAEMON_UNAVAILABLE,
    ExitCode.INTERRUPTED,
    ExitCode.TERMINATED,
    ExitCode.UNEXPECTED,
]


def worst_exit_code(codes: Iterable[ExitCode]) -> ExitCode:
    """The most serious of several daemons' exit codes (an unknown one counts as unexpected)."""
    rank = {code: index for index, code in enumerate(_SEVERITY)}
    return max(codes, key=lambda code: rank.get(code, len(_SEVERITY)), default=ExitCode.OK)


def merge_reports(reports: list[Report]) -> Report | None:
    """One report over several daemons' runs, for the metrics file; None when none finished."""
    from reconciler.model.report import Report  # an apply's: a plan has no report

    if not reports:
        return None
    if len(reports) == 1:
        return reports[0]
    return Report(
        results=tuple(r for report in reports for r in report.results),
        host=", ".join(report.host for report in reports),
        manifest_path=reports[0].manifest_path,
    )
