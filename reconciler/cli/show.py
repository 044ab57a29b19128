"""Where outcomes become output: each host's plan or report as text or JSON, the one place that prints them."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli import render
from reconciler.cli.console import echo_json, err, error, out, warn
from reconciler.cli.markup import escape
from reconciler.errors import LargeRemovalRefused
from reconciler.flows.outcomes import ApplyOutcome, HostFailure, PlanOutcome
from reconciler.model.plan import Action, Plan

if TYPE_CHECKING:
    from reconciler.cli.progress import PullDisplay
    from reconciler.daemon.pulling import PullEvent
    from reconciler.model.report import StepResult


def host_heading(address: str) -> None:
    """Before each daemon's turn when several are given (text output)."""
    out().print(f"\n[bold]== {escape(address)} ==[/]", highlight=False)


def show_plan(
    outcome: PlanOutcome | HostFailure, output: str, quiet: bool, label: str | None = None
) -> dict[str, Any] | None:
    """Print one host's plan as text, or return its JSON document; ``label`` (several hosts) starts
    each line on stderr."""
    if isinstance(outcome, HostFailure):
        return _failure(outcome, label)
    named = f"{label}: " if label else ""
    if outcome.event_gap is not None:
        warn(named + outcome.event_gap)
    if outcome.saved_to is not None:
        name = escape(str(outcome.saved_to))
        err().print(f"Saved the plan to {name}; `reconcile apply {name}` applies exactly it.")
        # On a line of its own, for a pipeline to pin what was reviewed.
        err().print(
            f"Plan digest: {outcome.saved_digest} "
            f"(`reconcile apply {name} --require-digest {outcome.saved_digest}` refuses any other plan)."
        )
    verdicts = outcome.verdicts
    document = None
    if verdicts is not None:
        from reconciler.cli.explain import (  # only --explain has verdicts to show
            budget_json,
            budget_text,
            verdicts_json,
            verdicts_table,
            verdicts_text,
        )
    if output == "json":
        images = (
            verdicts_json(
                verdicts.result,
                verdicts.inventory,
                verdicts.now,
                verdicts.last_used,
                verdicts.arrived,
            )
            if verdicts
            else None
        )
        document = render.plan_document(outcome.plan, images=images)
        if verdicts is not None:
            document["holds"] = [h.as_dict() for h in verdicts.holds]
            if (budget := budget_json(verdicts.result)) is not None:
                document["disk_budget"] = budget
        if outcome.saved_to is not None:
            document["saved"] = {"path": str(outcome.saved_to), "digest": outcome.saved_digest}
        if outcome.refusal is not None:
            document["summary"]["refused"] = outcome.refusal
        document["stale_containers"] = [found.as_dict() for found in outcome.stale]
    elif quiet and outcome.plan.has_changes:
        out().print(render.plan_summary_text(outcome.plan), highlight=False)
    else:
        out().print(render.plan_text(outcome.plan), highlight=False)
    if outcome.stale and output != "json" and not quiet:
        out().print(render.stale_text(outcome.stale), highlight=False)
    if verdicts is not None and output != "json":
        out().print()
        out().print(
            verdicts_table(verdicts.result, verdicts.inventory, verdicts.now, verdicts.last_used)
        )
        if (budget_line := budget_text(verdicts.result)) is not None:
            out().print(escape(budget_line), highlight=False)
        text = verdicts_text(
            verdicts.result,
            verdicts.inventory,
            verdicts.now,
            verdicts.last_used,
            outcome.refusal,
            verdicts.event_gap,
            verdicts.holds,
        )
        out().print("\n" + text, highlight=False)
    if outcome.refusal is not None:
        error(named + str(LargeRemovalRefused(outcome.refusal)))
    return document


def show_apply(
    outcome: ApplyOutcome | HostFailure, output: str, quiet: bool, label: str | None = None
) -> dict[str, Any] | None:
    """Print the end of one host's apply (the steps were printed as they ran), or return its JSON document."""
    if isinstance(outcome, HostFailure):
        return _failure(outcome, label)
    text = output == "text"
    report = outcome.report
    if outcome.cancelled:  # answered no: programs get the plan that was not applied
        if text:
            return None
        cancelled = render.plan_document(outcome.plan)
        cancelled["summary"]["cancelled"] = True
        return cancelled
    if report is None:  # refused: programs get the refused plan, with why, and the exit code
        document = None
        if text:
            out().print(render.plan_text(outcome.plan), highlight=False)
        else:
            document = render.plan_document(outcome.plan)
            document["summary"]["refused"] = outcome.refusal
        error((f"{label}: " if label else "") + str(LargeRemovalRefused(outcome.refusal or "")))
        return document
    if not text:
        return {
            **render.report_document(report),
            "stale_containers": [found.as_dict() for found in outcome.stale],
        }
    if not outcome.plan.has_changes:
        out().print(render.plan_text(outcome.plan), highlight=False)
    elif quiet:  # an incomplete apply is an error: with -q its summary goes where errors go
        (out() if report.complete else err()).print(
            render.report_summary_text(report), highlight=False
        )
    else:
        out().print("\n" + render.report_summary_text(report), highlight=False)
    if outcome.stale and not quiet:
        out().print(render.stale_text(outcome.stale), highlight=False)
    return None


def print_documents(documents: Sequence[tuple[str, dict[str, Any] | None]], several: bool) -> None:
    """JSON output: one host's document, or ``{"hosts": [...]}`` with each host's."""
    if not several:
        if documents and documents[0][1] is not None:
            echo_json(documents[0][1])
        return
    click.echo(
        render.hosts_json([{"host": host, **doc} for host, doc in documents if doc is not None])
    )


def _failure(failure: HostFailure, label: str | None = None) -> dict[str, Any]:
    error(f"{label or failure.host}: {failure.error}")
    return {"error": str(failure.error), "exit_code": int(failure.code)}


class ApplyConsole:
    """Renders an apply as it runs: the plan, pull progress on stderr, a line per step result.

    With ``-o json`` nothing at all (stdout carries the JSON only); with ``-q`` only the
    steps that were not done. One host of several (``label``): its stdout goes to ``lines``,
    printed whole when it ends, its progress lines on stderr start with its label, and nothing
    is written once its turn was given up (``while_live``).
    """

    def __init__(
        self,
        output: str,
        quiet: bool,
        *,
        label: str | None = None,
        lines: list[str] | None = None,
        while_live: Callable[[Callable[[], None]], None] = lambda write: write(),
    ) -> None:
        self.text = output == "text"
        self.quiet = quiet
        self._display: PullDisplay | None = None
        self._label = label
        self._lines = lines
        self._while_live = while_live
        self._shown: Plan | None = None

    def confirm(self, plan: Plan) -> bool:
        """Show the plan (on stderr when stdout carries JSON) and ask before it takes anything away."""
        from reconciler.cli.confirm import ask

        console = out() if self.text else err()
        console.print(render.plan_text(plan) + "\n", highlight=False)
        self._shown = plan
        return ask(
            plan,
            sys.stderr,
            sys.stdin,
            lambda message: err().print(escape(message), highlight=False),
        )

    def _print(self, markup: str) -> None:
        if self._lines is not None:
            lines = self._lines
            self._while_live(lambda: lines.append(markup))
        else:
            out().print(markup, highlight=False)

    def applying(self, plan: Plan) -> None:
        if self.text and not self.quiet:
            if self._shown is not plan:
                self._print(render.plan_text(plan))
            self._print("\nApplying:")
            # Pull progress goes to stderr, and only with text output; one line an event for several hosts;
            # no display (nor its import) when nothing is pulled.
            if any(step.action is Action.PULL for step in plan.runnable):
                from reconciler.cli.progress import PlainPullLog, pull_display

                self._display = (
                    PlainPullLog(err(), f"{self._label}: ") if self._label else pull_display(err())
                )

    def pull_event(self, event: PullEvent) -> None:
        display = self._display
        if display is not None:
            self._while_live(lambda: display(event))

    def build_output(self, ref: str, line: str) -> None:
        """A build's or a load's output, line by line, to stderr as pull progress goes (text output only)."""
        if not self.text or self.quiet:
            return
        if self._display is not None:
            self._display.stop()  # the pulls have ended: builds run after them
        prefix = f"{self._label}: " if self._label else ""
        text = escape(f"{prefix}{ref}: {line}")
        self._while_live(lambda: err().print(f"[dim]{text}[/]", highlight=False))

    def step_result(self, result: StepResult) -> None:
        from reconciler.model.report import Outcome  # an apply's: a plan's output never loads it

        if self._display is not None:
            self._display.stop()  # results come once every pull has ended; the live display must not garble them
        if self.text and not self.quiet:
            self._print(render.result_line(result))
        elif (
            self.text and result.outcome is not Outcome.DONE
        ):  # -q: what went wrong, where errors go
            line = render.result_line(result)
            self._while_live(lambda: err().print(line, highlight=False))

    def finished(self) -> None:
        if self._display is not None:
            self._display.stop()
            self._display = None
