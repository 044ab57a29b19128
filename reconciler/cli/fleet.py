"""``plan`` and ``apply`` over several hosts: which hosts (``-H``, ``--inventory``, ``--limit``),
each host's output printed whole when it ends, and the summary that ends the run."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconciler.cli.console import echo_json, out, warn
from reconciler.cli.markup import escape
from reconciler.errors import ExitCode, HostTimedOut, LargeRemovalRefused, LockHeld
from reconciler.flows.outcomes import ApplyOutcome, HostFailure, PlanOutcome, worst_exit_code
from reconciler.flows.turn import HostRun, Turn, one_host
from reconciler.model.plan import Action

if TYPE_CHECKING:
    from reconciler.model.fleet import TlsSettings
    from reconciler.model.manifest import Manifest
    from reconciler.model.report import Report

Outcomes = PlanOutcome | ApplyOutcome | HostFailure
T = TypeVar("T", PlanOutcome, ApplyOutcome)
Options = TypeVar("Options")


@dataclass(frozen=True)
class Target:
    """One host of the run: its label, its daemon, the manifest it must match."""

    name: str
    address: str | None
    manifest: Path | None
    tls: TlsSettings | None = None


def choose_targets(
    manifest_file: Path | None, hosts: tuple[str, ...], inventory: Path | None, limit: str | None
) -> list[Target]:
    """The hosts of this run: each ``-H`` (named by its address), or the inventory's hosts ``--limit`` picks."""
    if inventory is None:
        if limit is not None:
            raise click.UsageError("--limit picks hosts of an inventory; give --inventory FILE.")
        if manifest_file is None:
            raise click.UsageError(
                "Missing argument 'FILE': the manifest (images.yaml) to plan or apply."
            )
        return [Target(address or "", address, manifest_file) for address in hosts] or [
            Target("", None, manifest_file)
        ]
    if hosts:
        raise click.UsageError("Give the hosts either with --host or with --inventory, not both.")
    from reconciler.loading.inventory_loader import load_inventory
    from reconciler.planning.host_limit import LimitError, select_hosts

    fleet = load_inventory(inventory)
    names = [h.name for h in fleet.hosts]
    chosen = names
    if limit is not None:
        try:
            selection = select_hosts(limit, names, dict(fleet.groups))
        except LimitError as exc:
            raise click.UsageError(str(exc)) from None
        for term in selection.unmatched:
            warn(f"--limit: {term!r} matches no host or group of {inventory}.")
        chosen = list(selection.hosts)
    targets = []
    for name in chosen:
        host = fleet.host(name)
        manifest = Path(host.manifest) if host.manifest else manifest_file
        if manifest is None:
            raise click.UsageError(
                f"The host {name} of {inventory} has no manifest: give one to its group (`manifest:`) or as FILE."
            )
        targets.append(Target(name, host.address, manifest, host.tls))
    return targets


class HostSections:
    """Text output of several hosts: each host's lines kept until it ends, then printed whole."""

    def __init__(self, targets: Sequence[Target]) -> None:
        self.targets = targets
        self.lines: dict[int, list[str]] = {index: [] for index in range(len(targets))}
        self.started: dict[int, float] = {}
        self.elapsed: dict[int, float] = {}

    def start(self, turn: Turn) -> None:
        self.started[turn.index] = time.monotonic()

    def end(self, turn: Turn) -> list[str]:
        """The lines the host left (and the time its turn took), once: later writes go nowhere."""
        self.elapsed[turn.index] = time.monotonic() - self.started.get(turn.index, time.monotonic())
        lines, self.lines[turn.index] = self.lines[turn.index], []
        return lines

    def heading(self, turn: Turn) -> None:
        target = self.targets[turn.index]
        address = f" ({target.address})" if target.address and target.address != target.name else ""
        out().print(f"\n[bold]== {escape(target.name)}{escape(address)} ==[/]", highlight=False)


def host_warn(label: str, turn: Turn) -> Callable[[str], None]:
    """Warnings of one of several hosts: named, and none once its turn was given up."""
    return lambda message: turn.while_live(lambda: warn(f"{label}: {message}"))


# --- the summary -------------------------------------------------------------------

_COLUMNS = ("host", "result", "pulled", "tagged", "untagged", "removed", "freed", "time", "exit")


@dataclass(frozen=True)
class HostSummary:
    name: str
    address: str | None
    result: str
    counts: dict[str, int]  # action -> steps done (apply) or planned (plan)
    freed: int | None  # bytes
    seconds: float
    code: ExitCode
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.address,
            "name": self.name,
            "result": self.result,
            **{_PAST[action]: count for action, count in self.counts.items()},
            "bytes_freed": self.freed,
            "seconds": round(self.seconds, 3),
            "exit_code": int(self.code),
            "error": self.error,
        }


_PAST = {
    "pull": "pulled",
    "build": "built",
    "load": "loaded",
    "tag": "tagged",
    "untag": "untagged",
    "remove": "removed",
    "prune-cache": "cache_records_pruned",
}
_TABLE_ACTIONS = (
    "pull",
    "tag",
    "untag",
    "remove",
)  # the table's count columns; JSON has every action


def summarize(target: Target, outcome: Outcomes, seconds: float) -> HostSummary:
    """One row of the summary: what the host came to."""
    counts = {action.value: 0 for action in Action}
    if isinstance(outcome, HostFailure):
        return HostSummary(
            target.name,
            target.address,
            _failure_result(outcome),
            counts,
            None,
            seconds,
            outcome.code,
            str(outcome.error),
        )
    if isinstance(outcome, ApplyOutcome) and outcome.report is not None:
        from reconciler.model.report import Outcome  # an apply's: a plan has no report

        report = outcome.report
        for done in report.with_outcome(Outcome.DONE):
            counts[done.step.action.value] += 1
        freed: int | None = (
            report.measured_freed if report.measured_freed is not None else report.bytes_freed
        )
        result = "converged" if report.complete else _incomplete(outcome.code)
        if not report.results:
            result = "no changes"
        return HostSummary(
            target.name, target.address, result, counts, freed, seconds, outcome.code
        )
    plan = outcome.plan
    for action in Action:
        counts[action.value] = plan.count(action)
    if outcome.refusal is not None:
        result = "refused"
    elif isinstance(outcome, PlanOutcome):
        result = "changes" if plan.has_runnable else "no changes"
    else:
        result = "no changes"
    freed = plan.bytes_to_free if plan.bytes_to_free_known else None
    return HostSummary(target.name, target.address, result, counts, freed, seconds, outcome.code)


def _failure_result(failure: HostFailure) -> str:
    error = failure.error
    if isinstance(error, HostTimedOut):
        return "timed out"
    if isinstance(error, LockHeld):
        return "locked"
    if isinstance(error, LargeRemovalRefused):
        return "refused"
    if failure.code is ExitCode.DAEMON_UNAVAILABLE:
        return "unreachable"
    return "failed"


def _incomplete(code: ExitCode) -> str:
    return {
        ExitCode.STALE_PLAN: "stale",
        ExitCode.DAEMON_UNAVAILABLE: "daemon lost",
        ExitCode.TEMPORARY_FAILURE: "rate limited",
        ExitCode.INTERRUPTED: "interrupted",
        ExitCode.TERMINATED: "interrupted",
    }.get(code, "incomplete")


def summary_table(rows: Sequence[HostSummary], *, planned: bool) -> str:
    """The plain-text table that ends a run over several hosts (plan: the counts are planned steps)."""
    from reconciler.cli.render import human_bytes

    header = list(_COLUMNS)
    if planned:
        header[2:7] = ["to pull", "to tag", "to untag", "to remove", "to free"]
    body = [
        [
            row.name,
            row.result,
            *(str(row.counts.get(action, 0)) for action in _TABLE_ACTIONS),
            human_bytes(row.freed) if row.freed is not None else "-",
            f"{row.seconds:.1f}s",
            str(int(row.code)),
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    ]
    worst = worst_exit_code(row.code for row in rows)
    ok = sum(1 for row in rows if row.code in (ExitCode.OK, ExitCode.CHANGES_PENDING))
    lines.append(f"{len(rows)} hosts: {ok} ok, {len(rows) - ok} not; exit code {int(worst)}.")
    lines += [f"  {row.name}: {row.error}" for row in rows if row.error]
    return "\n".join(lines)


def summary_document(rows: Sequence[HostSummary]) -> dict[str, Any]:
    worst = worst_exit_code(row.code for row in rows)
    results: dict[str, int] = {}
    for row in rows:
        results[row.result] = results.get(row.result, 0) + 1
    return {
        "hosts": len(rows),
        "results": results,
        "failed_hosts": [
            row.name for row in rows if row.code not in (ExitCode.OK, ExitCode.CHANGES_PENDING)
        ],
        "exit_code": int(worst),
        "table": [row.as_dict() for row in rows],
    }


def with_host(options: Any, turn: Turn, target: Target, label: str | None) -> Any:
    """A run's PlanOptions or ApplyOptions for one host: its deadline, TLS and, for several, its warnings."""
    changes: dict[str, Any] = {"deadline": turn.deadline, "tls": target.tls}
    if hasattr(options, "while_live"):
        changes["while_live"] = turn.while_live
        changes["manifest_file"] = target.manifest
        if label is not None:
            changes["warn"] = host_warn(label, turn)
    return dataclasses.replace(options, **changes)


def load_manifests(targets: Sequence[Target], state_dir: Path) -> dict[Path | None, Manifest]:
    """Each manifest the hosts must match, loaded once (or taken from an earlier run's load of the
    same bytes, kept in ``state_dir``); any invalid one stops the run before a host is touched."""
    from reconciler.loading.manifest_file import load_manifest_file
    from reconciler.state.manifest_cache import ManifestCache

    loaded = ManifestCache(state_dir)
    return {
        path: load_manifest_file(path, loaded)
        for path in dict.fromkeys(t.manifest for t in targets)
        if path is not None
    }


class FleetRun:
    """One plan or apply over the run's hosts: output per host as each ends, the summary at the end."""

    def __init__(
        self,
        targets: Sequence[Target],
        output: str,
        forks: int,
        host_timeout: float | None,
        stopped: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.targets = targets
        self.output = output
        self.several = len(targets) > 1
        self.how = HostRun(forks=forks, host_timeout=host_timeout, stopped=stopped)
        self.sections = HostSections(targets)
        self.documents: dict[int, dict[str, Any] | None] = {}
        self.rows: dict[int, HostSummary] = {}
        self.outcomes: list[Any] = []

    def label(self, turn: Turn) -> str | None:
        return self.targets[turn.index].name if self.several else None

    def options_for(self, options: Options, turn: Turn) -> Options:
        return with_host(options, turn, self.targets[turn.index], self.label(turn))  # type: ignore[no-any-return]

    def console_for(self, turn: Turn) -> dict[str, Any]:
        """ApplyConsole's settings for one host: with several, its lines kept until it ends."""
        if not self.several:
            return {}
        return {
            "label": self.label(turn),
            "lines": self.sections.lines[turn.index],
            "while_live": turn.while_live,
        }

    def each(
        self,
        run: Callable[[Target, Turn], T],
        show: Callable[[T | HostFailure, str | None], dict[str, Any] | None],
    ) -> list[T | HostFailure]:
        def run_turn(turn: Turn) -> T:
            self.sections.start(turn)
            return run(self.targets[turn.index], turn)

        def done(turn: Turn, outcome: T | HostFailure) -> None:
            lines = self.sections.end(turn)
            if self.several and self.output == "text":
                self.sections.heading(turn)
                for line in lines:
                    out().print(line, highlight=False)
            self.documents[turn.index] = show(outcome, self.label(turn))
            self.rows[turn.index] = summarize(
                self.targets[turn.index], outcome, self.sections.elapsed[turn.index]
            )

        if not self.several:
            outcomes: list[T | HostFailure] = [one_host(self.targets[0].address, run_turn, self.how, done)]
        else:
            # A thread per host, with deadlines to watch: only a run over several hosts needs it.
            from reconciler.flows.several_hosts import for_each_host

            outcomes = for_each_host([t.address for t in self.targets], run_turn, self.how, done, warn)
        self.outcomes = list(outcomes)
        return outcomes

    def finish(self, *, planned: bool) -> None:
        """JSON: the one host's document, or every host's with the summary; text: the summary table (several)."""
        rows = [self.rows[index] for index in range(len(self.targets))]
        if self.output == "json":
            if not self.several:
                if self.documents.get(0) is not None:
                    echo_json(self.documents[0])
                return
            hosts = [
                {
                    "host": row.address,
                    "name": row.name,
                    "exit_code": int(row.code),
                    **(self.documents[index] or {}),
                }
                for index, row in enumerate(rows)
            ]
            summary = summary_document(rows)
            echo_json({"hosts": hosts, "summary": summary, "exit_code": summary["exit_code"]})
        elif self.several:
            out().print("\n" + escape(summary_table(rows, planned=planned)), highlight=False)

    def reports(self) -> list[tuple[str, Report | None, float]]:
        """Each host's label, report (None: it gave none) and time, for the metrics file."""
        found = []
        for index, outcome in enumerate(self.outcomes):
            report = outcome.report if isinstance(outcome, ApplyOutcome) else None
            label = self.targets[index].name or str(self.targets[index].address or "")
            found.append((label, report, self.sections.elapsed.get(index, 0.0)))
        return found
