"""The ``reconcile`` command: thin click commands over load -> read -> plan -> apply.

The CLI owns stdout, stderr and exit codes; every ReconcilerError is caught
here, once, and printed as its sentence.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import click
import docker
from rich.console import Console
from rich.markup import escape

from reconciler import __version__, render
from reconciler.cli_options import (
    EXIT_CODES_HELP,
    host_option,
    manifest_argument,
    one_host_option,
    output_option,
    quiet_option,
    removal_guard_options,
    state_dir_option,
)
from reconciler.daemon import Daemon, connect
from reconciler.daemon_read import (
    read_inventory,
    read_layers_size,
)
from reconciler.errors import (
    DaemonError,
    ExitCode,
    LargeRemovalRefused,
    ManifestError,
    ReconcilerError,
)
from reconciler.executor import DEFAULT_PARALLELISM, DEFAULT_PULL_TIMEOUT, Executor
from reconciler.explain import verdicts_json, verdicts_text
from reconciler.exporter import export_manifest
from reconciler.history import (
    HistoryQuery,
    RunRecorder,
    parse_since,
    query_history,
    records_json,
    records_plain,
    records_table,
    utc_now,
)
from reconciler.loader import load_manifest
from reconciler.lock import daemon_identity, daemon_lock, lock_directory
from reconciler.manifest import Manifest
from reconciler.metrics import MetricsRun
from reconciler.plan import Plan
from reconciler.plan_file import (
    SavedPlan,
    check_applicable,
    now,
    save_plan,
    saved_plan_at,
    write_or_explain,
)
from reconciler.progress import pull_display
from reconciler.puller import Puller
from reconciler.registry_auth import load_registry_auth
from reconciler.report import Outcome, Report, StepResult
from reconciler.retention_run import RetentionRun, record_run
from reconciler.schema import schema_text
from reconciler.state_dir import default_state_dir, ensure_state_dir
from reconciler.workflow import (
    apply_exit_code,
    make_plan,
    merge_reports,
    too_many_removals,
    worst_exit_code,
)
from reconciler.yaml_source import read_yaml


@click.group(epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconcile")
def cli() -> None:
    """Make a Docker host's images match a desired-state file (images.yaml)."""


@cli.command(epilog=EXIT_CODES_HELP)
@manifest_argument
@output_option
def validate(manifest_file: Path, output: str) -> None:
    """Check FILE against the schema and Docker's rules; report every problem."""
    if output == "json":
        try:
            manifest = load_manifest(manifest_file)
        except ManifestError as exc:
            diagnostics = [dataclasses.asdict(d) for d in exc.diagnostics]
            _echo_json({"valid": False, "file": str(manifest_file), "diagnostics": diagnostics})
            sys.exit(exc.exit_code)
        _echo_json({"valid": True, "file": str(manifest_file), "images": len(manifest.images)})
        return
    manifest = load_manifest(manifest_file)
    count = len(manifest.images)
    _out().print(f"{manifest_file} is valid: {count} image entr{'y' if count == 1 else 'ies'}.")


@cli.command(epilog=EXIT_CODES_HELP)
@manifest_argument
@host_option
@output_option
@quiet_option
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes, 0 when none.")
@click.option(
    "--out",
    "out_file",
    metavar="PLAN",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also save the plan to PLAN (JSON), for `reconcile apply PLAN`.",
)
@click.option(
    "--explain",
    is_flag=True,
    help="List every image on the host with its retention verdict and what decided it.",
)
@removal_guard_options
@state_dir_option
def plan(
    manifest_file: Path,
    host: tuple[str, ...],
    output: str,
    quiet: bool,
    detailed_exitcode: bool,
    out_file: Path | None = None,
    explain: bool = False,
    max_removals: int | None = None,
    allow_large_removal: bool = False,
    state_dir: Path | None = None,
) -> None:
    """Show what apply would change on the host, without changing anything.

    Not even reconcile's own state changes: the usage state retention keeps is only read.
    Several --host options plan each daemon in turn.
    """
    manifest = load_manifest(manifest_file)
    if out_file is not None and len(host) > 1:
        raise click.UsageError("--out saves the plan of one daemon; give a single --host.")
    options = PlanOptions(output, quiet, detailed_exitcode, out_file, explain, max_removals, allow_large_removal)
    state = state_dir or default_state_dir()
    _exit_with(for_each_host(host, output, lambda address: _plan_host(manifest, address, state, options)))


@dataclasses.dataclass(frozen=True)
class PlanOptions:
    output: str
    quiet: bool
    detailed_exitcode: bool
    out_file: Path | None
    explain: bool
    max_removals: int | None
    allow_large_removal: bool


def _plan_host(manifest: Manifest, address: str | None, state: Path, options: PlanOptions) -> HostOutcome:
    daemon = connect(address)
    current, run = make_plan(manifest, daemon, state_dir=state, clock=time.time(), explain=options.explain)
    refusal = None
    if not options.allow_large_removal:
        refusal = too_many_removals(current, manifest, run, options.max_removals)
    if options.out_file is not None and refusal is None:
        save_plan(options.out_file, current, now(), engine=daemon_identity(daemon.api, daemon.address))
        name = escape(str(options.out_file))
        _err().print(f"Saved the plan to {name}; `reconcile apply {name}` applies exactly it.")
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
        _out().print(render.plan_summary_text(current), highlight=False)
    else:
        _out().print(render.plan_text(current), highlight=False)
    if verdicts is not None and options.output != "json":
        text = verdicts_text(verdicts.result, verdicts.inventory, verdicts.now, verdicts.usage.last_used)
        _out().print("\n" + text, highlight=False)
    if refusal is not None:
        _error(str(LargeRemovalRefused(refusal)))
        return HostOutcome(LargeRemovalRefused.exit_code, document)
    pending = options.detailed_exitcode and current.has_runnable
    return HostOutcome(ExitCode.CHANGES_PENDING if pending else ExitCode.OK, document)


@cli.command(epilog=EXIT_CODES_HELP)
@manifest_argument
@host_option
@output_option
@click.option(
    "--pull-timeout",
    type=click.FloatRange(min=1),
    default=DEFAULT_PULL_TIMEOUT,
    show_default=True,
    help="Seconds one pull may take, retries included, before it is given up.",
)
@click.option(
    "--parallelism",
    type=click.IntRange(min=1, max=32),
    default=DEFAULT_PARALLELISM,
    show_default=True,
    help="Pulls run at once.",
)
@quiet_option
@state_dir_option
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    metavar="SECONDS",
    help="Wait this long for another apply on the same daemon to finish (0: fail at once, exit 75).",
)
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write Prometheus text-format metrics of this run to this file, atomically.",
)
@removal_guard_options
def apply(
    manifest_file: Path,
    host: tuple[str, ...],
    output: str,
    pull_timeout: float,
    parallelism: int,
    quiet: bool,
    state_dir: Path | None,
    lock_timeout: float,
    metrics_file: Path | None,
    max_removals: int | None = None,
    allow_large_removal: bool = False,
) -> None:
    """Change the host until it matches FILE: pull, tag, untag, remove.

    FILE is a manifest, or a plan saved by `plan --out`: that plan runs as saved, and
    steps whose host state changed since are refused as stale. Several --host options
    apply to each daemon in turn, each under its own lock.
    """
    metrics = _track_metrics(metrics_file)
    saved = saved_plan_at(manifest_file)
    if saved and len(host) > 1:
        raise click.UsageError("A saved plan belongs to one daemon; give a single --host.")
    manifest = None if saved else load_manifest(manifest_file)
    options = ApplyOptions(
        manifest_file, output, pull_timeout, parallelism, quiet, state_dir, lock_timeout, max_removals,
        allow_large_removal,
    )
    reports: list[Report] = []

    def one(address: str | None) -> HostOutcome:
        outcome, report = _apply_host(manifest, saved, address, options)
        if report is not None:  # None: refused, nothing done; the run is then no success
            reports.append(report)
        return outcome

    codes = for_each_host(host, output, one)
    merged = merge_reports(reports)
    if merged is not None and len(reports) == max(len(host), 1):
        metrics.finished(merged)  # a daemon that gave no report leaves the run unfinished: not a success
    _exit_with(codes)


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


def _apply_host(
    manifest: Manifest | None, saved: SavedPlan | None, address: str | None, options: ApplyOptions
) -> tuple[HostOutcome, Report | None]:
    """Plan (or take the saved plan) and apply it on one daemon, under that daemon's lock.

    The lock is released, and the run's history written, when this daemon's turn ends.
    """
    daemon = connect(address)
    identity = daemon_identity(daemon.api, daemon.address)  # GET /info: the lock is the daemon's, not its address's
    if saved is not None:
        check_applicable(saved, daemon.address, identity)
    with contextlib.ExitStack() as turn:
        recorder = _lock_and_record(
            turn, options.state_dir, daemon.address, identity, options.lock_timeout, options.manifest_file
        )
        return _apply_locked(manifest, saved.plan if saved else None, daemon, recorder, options)


def _apply_locked(
    manifest: Manifest | None, saved: Plan | None, daemon: Daemon, recorder: RunRecorder, options: ApplyOptions
) -> tuple[HostOutcome, Report | None]:
    auth = load_registry_auth(os.environ)
    state = options.state_dir or default_state_dir()
    run: RetentionRun | None = None
    if manifest is None:
        assert saved is not None
        current = saved  # exactly as saved: nothing is recomputed
    else:
        current, run = make_plan(manifest, daemon, auth, state_dir=state, clock=time.time())
    console = _out()
    text = options.output == "text"
    refusal = None if options.allow_large_removal else too_many_removals(current, manifest, run, options.max_removals)
    if refusal is not None:
        document = None
        if text:
            console.print(render.plan_text(current), highlight=False)
        else:  # programs get the refused plan, with why, and the exit code
            document = render.plan_document(current)
            document["summary"]["refused"] = refusal
        _error(str(LargeRemovalRefused(refusal)))
        return HostOutcome(LargeRemovalRefused.exit_code, document), None
    if not current.has_changes:
        empty = Report(host=current.host, manifest_path=current.manifest_path)
        if text:
            console.print(render.plan_text(current), highlight=False)
        if run is not None:
            record_run(state, run, empty, _warn)
        return HostOutcome(ExitCode.OK, None if text else render.report_document(empty)), empty
    if text and not options.quiet:
        console.print(render.plan_text(current), highlight=False)
        console.print("\nApplying:", highlight=False)

    # Pull progress goes to stderr, and only with text output: -o json prints nothing but the JSON.
    display = pull_display(_err()) if text and not options.quiet else None

    def show(result: StepResult) -> None:
        if display:
            display.stop()  # results come once every pull has ended; the live display must not garble them
        recorder.record(result)
        if text and (not options.quiet or result.outcome is not Outcome.DONE):
            console.print(render.result_line(result), highlight=False)

    executor = Executor(
        daemon.api,
        pull_timeout=options.pull_timeout,
        puller=Puller(deadline=options.pull_timeout, auth=auth, on_event=display),
        parallelism=options.parallelism,
        new_client=daemon.new_client,
        refuse_stale=saved is not None,
    )
    report = executor.apply(current, on_result=show, measure=lambda: read_layers_size(daemon))
    if run is not None:
        record_run(state, run, report, _warn)
    if display:
        display.stop()
    if text:
        console.print(("" if options.quiet else "\n") + render.report_summary_text(report), highlight=False)
    return HostOutcome(apply_exit_code(report), None if text else render.report_document(report)), report


@cli.command()
@output_option
def schema(output: str) -> None:
    """Print the JSON Schema of images.yaml (for editors and CI linting); JSON with either -o."""
    click.echo(schema_text(), nl=False)


@cli.command(epilog=EXIT_CODES_HELP)
@click.option("--image", metavar="REF", help="Only this image: a reference (no tag: every tag) or an id prefix.")
@click.option("--since", metavar="DURATION", help="Only steps this recent: 90m, 12h, 7d, 2w.")
@click.option("--host", "-H", metavar="URL", help="Only steps on this daemon (default: every daemon).")
@output_option
@state_dir_option
def history(image: str | None, since: str | None, host: str | None, output: str, state_dir: Path | None) -> None:
    """Show the recorded steps of past applies: what removed an image, and why."""
    query = HistoryQuery(image=image, since=parse_since(since, utc_now()) if since else None, host=host)
    records = query_history(state_dir or default_state_dir(), query)
    console = _out()
    if output == "json":
        click.echo(records_json(records))
    elif console.is_terminal and records:
        console.print(records_table(records))
    else:
        click.echo(records_plain(records))


@cli.command(epilog=EXIT_CODES_HELP)
@one_host_option
@output_option
@click.option(
    "--out",
    "out_file",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to FILE (atomically) instead of stdout.",
)
def export(host: tuple[str, ...], output: str, out_file: Path | None) -> None:
    """Write the host's images as an images.yaml that plans to no changes (-o json: the same as JSON)."""
    if len(host) > 1:
        raise click.UsageError("export writes one daemon's images; give a single --host.")
    daemon = connect(host[0] if host else None)
    text = export_manifest(read_inventory(daemon), now())
    if output == "json":
        text = json.dumps(read_yaml(text, "export").data, indent=2) + "\n"
    if out_file is None:
        click.echo(text, nl=False)
    else:
        write_or_explain(out_file, text, "the manifest")


def _track_metrics(path: Path | None) -> MetricsRun:
    """Time this apply; its metrics file is written when the command ends, however it ends."""
    run = MetricsRun(path)
    if path is None:
        return run

    def write() -> None:
        try:
            run.write()
        except OSError as exc:
            _warn(f"The metrics file {path} could not be written: {exc.strerror or exc}.")

    click.get_current_context().call_on_close(write)
    return run


def _lock_and_record(
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
    recorder = RunRecorder(state, address, os.path.abspath(manifest_file), warn=_warn)
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
            _echo_json(outcome.document)
        return [outcome.code]
    codes: list[ExitCode] = []
    documents: list[dict[str, Any]] = []
    for address in hosts:
        if output == "text":
            _out().print(f"\n[bold]== {escape(address)} ==[/]", highlight=False)
        try:
            outcome = run(address)
        except ReconcilerError as exc:
            _error(f"{address}: {exc}")
            codes.append(exc.exit_code)
            documents.append({"host": address, "error": str(exc), "exit_code": int(exc.exit_code)})
            continue
        codes.append(outcome.code)
        if outcome.document is not None:
            documents.append({"host": address, **outcome.document})
    if output == "json":
        click.echo(render.hosts_json(documents))
    return codes


def _exit_with(codes: list[ExitCode]) -> None:
    code = worst_exit_code(codes)
    if code is not ExitCode.OK:
        sys.exit(code)


def _error(message: str) -> None:
    _err().print(f"[red]Error:[/] {escape(message)}", highlight=False)


def _echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2))


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True, color_system=_color_system())


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True, color_system=_color_system())


def _color_system() -> Literal["auto"] | None:
    # rich drops only colours for NO_COLOR and still sends bold; None sends no escape codes at all.
    return None if os.environ.get("NO_COLOR") else "auto"


def _warn(message: str) -> None:
    _err().print(f"[yellow]Warning:[/] {escape(message)}", highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map every outcome to a documented exit code."""
    try:
        cli.main(args=argv, prog_name="reconcile", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _err().print("Aborted.")
        sys.exit(ExitCode.UNEXPECTED)
    except click.UsageError as exc:
        exc.show()
        sys.exit(ExitCode.USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.USAGE)
    except ReconcilerError as exc:
        _err().print(f"[red]Error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except docker.errors.APIError as exc:
        error = DaemonError(f"The Docker daemon refused a request: {exc.explanation or exc}")
        _err().print(f"[red]Error:[/] {escape(str(error))}", highlight=False)
        sys.exit(error.exit_code)
    sys.exit(ExitCode.OK)
