"""One command's work on each daemon it is given: plan or apply there, and say how it went.

The click commands in :mod:`reconciler.cli.commands` parse options and call these; these read and
change the host through the workflow, executor and stores, and print through
:mod:`reconciler.cli.console`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from reconciler.cli import render
from reconciler.cli.console import echo_json, err, error, out, warn
from reconciler.cli.explain import verdicts_json, verdicts_text
from reconciler.cli.progress import pull_display
from reconciler.daemon.address import connect
from reconciler.daemon.host import DockerHost
from reconciler.daemon.pulling import Puller
from reconciler.daemon.reading import read_layers_size
from reconciler.daemon.registry_auth import load_registry_auth
from reconciler.errors import ExitCode, LargeRemovalRefused, ReconcilerError
from reconciler.execution.executor import Executor
from reconciler.flows.retention_inputs import RetentionRun, record_run
from reconciler.flows.workflow import apply_exit_code, make_plan, too_many_removals, worst_exit_code
from reconciler.model.manifest import Manifest
from reconciler.model.plan import Plan
from reconciler.model.report import Outcome, Report, StepResult
from reconciler.state.history import RunRecorder
from reconciler.state.lock import daemon_identity, daemon_lock, lock_directory
from reconciler.state.metrics import MetricsRun
from reconciler.state.plan_file import SavedPlan, check_applicable, now, save_plan
from reconciler.state.state_dir import default_state_dir, ensure_state_dir


@dataclasses.dataclass(frozen=True)
class PlanOptions:
    output: str
    quiet: bool
    detailed_exitcode: bool
    out_file: Path | None
    explain: bool
    max_removals: int | None
    allow_large_removal: bool


def plan_host(manifest: Manifest, address: str | None, state: Path, options: PlanOptions) -> HostOutcome:
    daemon = connect(address)
    current, run = make_plan(manifest, daemon, state_dir=state, clock=time.time(), explain=options.explain)
    refusal = None
    if not options.allow_large_removal:
        refusal = too_many_removals(current, manifest, run, options.max_removals)
    if options.out_file is not None and refusal is None:
        save_plan(options.out_file, current, now(), engine=daemon_identity(daemon))
        name = escape(str(options.out_file))
        err().print(f"Saved the plan to {name}; `reconcile apply {name}` applies exactly it.")
    verdicts = run if options.explain else None
    document = None
    if options.output == "json":
        images = (
            verdicts_json(verdicts.result, verdicts.inventory, verdicts.now, verdicts.usage.last_used)
            if verdicts
            else None
        )
        document = render.plan_document(current, images=images)
        if refusal is not None:
            document["summary"]["refused"] = refusal
    elif options.quiet and current.has_changes:
        out().print(render.plan_summary_text(current), highlight=False)
    else:
        out().print(render.plan_text(current), highlight=False)
    if verdicts is not None and options.output != "json":
        text = verdicts_text(verdicts.result, verdicts.inventory, verdicts.now, verdicts.usage.last_used)
        out().print("\n" + text, highlight=False)
    if refusal is not None:
        error(str(LargeRemovalRefused(refusal)))
        return HostOutcome(LargeRemovalRefused.exit_code, document)
    pending = options.detailed_exitcode and current.has_runnable
    return HostOutcome(ExitCode.CHANGES_PENDING if pending else ExitCode.OK, document)


@dataclasses.dataclass(frozen=True)
class ApplyOptions:
    manifest_file: Path
    output: str
    pull_timeout: float
    parallelism: int
    quiet: bool
    state_dir: Path | None
    lock_timeout: float
    max_removals: int | None
    allow_large_removal: bool


def apply_host(
    manifest: Manifest | None, saved: SavedPlan | None, address: str | None, options: ApplyOptions
) -> tuple[HostOutcome, Report | None]:
    """Plan (or take the saved plan) and apply it on one daemon, under that daemon's lock.

    The lock is released, and the run's history written, when this daemon's turn ends.
    """
    daemon = connect(address)
    identity = daemon_identity(daemon)  # GET /info: the lock is the daemon's, not its address's
    if saved is not None:
        check_applicable(saved, daemon.address, identity)
    with contextlib.ExitStack() as turn:
        recorder = lock_and_record(
            turn, options.state_dir, daemon.address, identity, options.lock_timeout, options.manifest_file
        )
        return apply_locked(manifest, saved.plan if saved else None, daemon, recorder, options)


def apply_locked(
    manifest: Manifest | None, saved: Plan | None, daemon: DockerHost, recorder: RunRecorder, options: ApplyOptions
) -> tuple[HostOutcome, Report | None]:
    auth = load_registry_auth(os.environ)
    state = options.state_dir or default_state_dir()
    run: RetentionRun | None = None
    if manifest is None:
        assert saved is not None
        current = saved  # exactly as saved: nothing is recomputed
    else:
        current, run = make_plan(manifest, daemon, auth, state_dir=state, clock=time.time())
    console = out()
    text = options.output == "text"
    refusal = None if options.allow_large_removal else too_many_removals(current, manifest, run, options.max_removals)
    if refusal is not None:
        document = None
        if text:
            console.print(render.plan_text(current), highlight=False)
        else:  # programs get the refused plan, with why, and the exit code
            document = render.plan_document(current)
            document["summary"]["refused"] = refusal
        error(str(LargeRemovalRefused(refusal)))
        return HostOutcome(LargeRemovalRefused.exit_code, document), None
    if not current.has_changes:
        empty = Report(host=current.host, manifest_path=current.manifest_path)
        if text:
            console.print(render.plan_text(current), highlight=False)
        if run is not None:
            record_run(state, run, empty, warn)
        return HostOutcome(ExitCode.OK, None if text else render.report_document(empty)), empty
    if text and not options.quiet:
        console.print(render.plan_text(current), highlight=False)
        console.print("\nApplying:", highlight=False)

    # Pull progress goes to stderr, and only with text output: -o json prints nothing but the JSON.
    display = pull_display(err()) if text and not options.quiet else None

    def show(result: StepResult) -> None:
        if display:
            display.stop()  # results come once every pull has ended; the live display must not garble them
        recorder.record(result)
        if text and (not options.quiet or result.outcome is not Outcome.DONE):
            console.print(render.result_line(result), highlight=False)

    executor = Executor(
        daemon,
        pull_timeout=options.pull_timeout,
        puller=Puller(deadline=options.pull_timeout, auth=auth, on_event=display),
        parallelism=options.parallelism,
        refuse_stale=saved is not None,
    )
    report = executor.apply(current, on_result=show, measure=lambda: read_layers_size(daemon))
    if run is not None:
        record_run(state, run, report, warn)
    if display:
        display.stop()
    if text:
        console.print(("" if options.quiet else "\n") + render.report_summary_text(report), highlight=False)
    return HostOutcome(apply_exit_code(report), None if text else render.report_document(report)), report


def track_metrics(path: Path | None) -> MetricsRun:
    """Time this apply; its metrics file is written when the command ends, however it ends."""
    run = MetricsRun(path)
    if path is None:
        return run

    def write() -> None:
        try:
            run.write()
        except OSError as exc:
            warn(f"The metrics file {path} could not be written: {exc.strerror or exc}.")

    click.get_current_context().call_on_close(write)
    return run


def lock_and_record(
    turn: contextlib.ExitStack,
    state_dir: Path | None,
    address: str,
    identity: str,
    lock_timeout: float,
    manifest_file: Path,
) -> RunRecorder:
    """Take the daemon's lock for ``turn``; the history is written just before it is released."""
    state = ensure_state_dir(state_dir or default_state_dir())
    turn.enter_context(daemon_lock(lock_directory(state), identity, lock_timeout))
    recorder = RunRecorder(state, address, os.path.abspath(manifest_file), warn=warn)
    turn.callback(recorder.close)
    return recorder


@dataclasses.dataclass(frozen=True)
class HostOutcome:
    code: ExitCode
    document: dict[str, Any] | None  # the JSON document of this daemon, with -o json


def for_each_host(
    hosts: tuple[str, ...], output: str, run: Callable[[str | None], HostOutcome]
) -> list[ExitCode]:
    """Run one daemon's work for each host given (or the default daemon); return their exit codes.

    With one daemon its errors end the command as usual. With several, a daemon that fails
    is reported and the others still get their turn; -o json prints one document for all.
    """
    if len(hosts) <= 1:
        outcome = run(hosts[0] if hosts else None)
        if outcome.document is not None:
            echo_json(outcome.document)
        return [outcome.code]
    codes: list[ExitCode] = []
    documents: list[dict[str, Any]] = []
    for address in hosts:
        if output == "text":
            out().print(f"\n[bold]== {escape(address)} ==[/]", highlight=False)
        try:
            outcome = run(address)
        except ReconcilerError as exc:
            error(f"{address}: {exc}")
            codes.append(exc.exit_code)
            documents.append({"host": address, "error": str(exc), "exit_code": int(exc.exit_code)})
            continue
        codes.append(outcome.code)
        if outcome.document is not None:
            documents.append({"host": address, **outcome.document})
    if output == "json":
        click.echo(render.hosts_json(documents))
    return codes


def exit_with(codes: list[ExitCode]) -> None:
    code = worst_exit_code(codes)
    if code is not ExitCode.OK:
        sys.exit(code)
