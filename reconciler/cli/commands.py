"""The ``reconcile`` command: thin click commands over load -> read -> plan -> apply.

The CLI owns stdout, stderr and exit codes; every ReconcilerError is caught
here, once, and printed as its sentence.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler import __version__
from reconciler.cli.collector import tune_collector
from reconciler.cli.console import echo_json, err, out, warn
from reconciler.cli.markup import escape
from reconciler.cli.options import (
    COMMAND_HELP,
    EXIT_CODES_HELP,
    check_daemon_choice,
    fleet_options,
    host_option,
    manifest_argument,
    one_host_option,
    optional_manifest_argument,
    output_option,
    quiet_option,
    removal_guard_options,
    state_dir_option,
)
from reconciler.errors import (
    ExitCode,
    ManifestError,
    ReconcilerError,
)
from reconciler.execution.defaults import (
    DEFAULT_BUILD_TIMEOUT,
    DEFAULT_PARALLELISM,
    DEFAULT_PULL_TIMEOUT,
)
from reconciler.state.state_dir import default_state_dir

if TYPE_CHECKING:
    from reconciler.cli.fleet import Target
    from reconciler.execution.interrupt import Interrupt
    from reconciler.flows.outcomes import ApplyOutcome
    from reconciler.flows.turn import Turn
    from reconciler.state.metrics import MetricsRun

# The commands import what talks to a daemon, the manifest loader, run history, saved plans
# and metrics when they run: `--version`, `--help`, `schema` and `validate` then start without
# any of them (and no command loads docker-py or jsonschema before it needs them).

# The commands of other modules, by name: each module is imported only when one of its
# commands runs, or when the command list is shown (`reconcile --help`, completion).
LAZY_COMMANDS = {
    "schema": "reconciler.cli.report_commands:schema",
    "history": "reconciler.cli.report_commands:history",
    "export": "reconciler.cli.report_commands:export",
    "df": "reconciler.cli.report_commands:disk_usage",
    "hold": "reconciler.cli.holds_commands:hold",
    "release": "reconciler.cli.holds_commands:release",
    "holds": "reconciler.cli.holds_commands:holds",
}


class LazyGroup(click.Group):
    """A click group whose commands named in ``lazy`` (name -> ``module:attribute``) are imported
    when they are looked up, not when the group is made (click's "Lazily Loading Subcommands")."""

    def __init__(self, *args: Any, lazy: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = self.lazy[cmd_name].split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command) or command.name != cmd_name:
            raise TypeError(f"{self.lazy[cmd_name]} is not the click command {cmd_name!r}")
        self.add_command(command)
        return command


@click.group(
    cls=LazyGroup,
    lazy=LAZY_COMMANDS,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="reconcile")
def cli() -> None:
    """Make a Docker host's images match a desired-state file (images.yaml)."""


@cli.command(**COMMAND_HELP["validate"])
@manifest_argument
@output_option
def validate(manifest_file: Path, output: str) -> None:
    """Check FILE against the schema and Docker's rules; report every problem."""
    from reconciler.loading.loader import load_manifest

    if output == "json":
        try:
            manifest = load_manifest(manifest_file)
        except ManifestError as exc:
            diagnostics = [dataclasses.asdict(d) for d in exc.diagnostics]
            echo_json({"valid": False, "file": str(manifest_file), "diagnostics": diagnostics})
            sys.exit(exc.exit_code)
        echo_json({"valid": True, "file": str(manifest_file), "images": len(manifest.images)})
        return
    manifest = load_manifest(manifest_file)
    count = len(manifest.images)
    out().print(f"{manifest_file} is valid: {count} image entr{'y' if count == 1 else 'ies'}.")


@cli.command(**COMMAND_HELP["plan"])
@optional_manifest_argument
@host_option
@fleet_options
@output_option
@quiet_option
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes, 0 when none."
)
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
    manifest_file: Path | None,
    host: tuple[str, ...],
    inventory: Path | None,
    limit: str | None,
    forks: int,
    host_timeout: float,
    output: str,
    quiet: bool,
    detailed_exitcode: bool,
    out_file: Path | None = None,
    explain: bool = False,
    max_removals: int | None = None,
    allow_large_removal: bool = False,
    state_dir: Path | None = None,
    docker_context: str | None = None,
) -> None:
    """Show what apply would change on the host, without changing anything.

    Not even reconcile's own state changes: the usage state retention keeps is only read
    (only the layer cache learns the layers it read, and the manifest's load is kept: facts that never change).
    Several --host options, or --inventory, plan --forks daemons at once.
    """
    from reconciler.cli.fleet import FleetRun, choose_targets, load_manifests
    from reconciler.flows.prefetch import start_prefetch

    check_daemon_choice(host, docker_context)
    targets = choose_targets(manifest_file, host, inventory, limit)
    if out_file is not None and len(targets) > 1:
        raise click.UsageError("--out saves the plan of one daemon; give a single --host.")
    # One daemon: its lists are read while the manifest loads (and the planner is imported).
    prefetch = (
        start_prefetch(targets[0].address, host_timeout, targets[0].tls, docker_context) if len(targets) == 1 else None
    )
    from reconciler.cli.show import show_plan
    from reconciler.flows.plan_host import PlanOptions, plan_host

    state_dir = state_dir or default_state_dir()
    manifests = load_manifests(targets, state_dir)
    options = PlanOptions(
        state_dir=state_dir,
        detailed_exitcode=detailed_exitcode,
        out_file=out_file,
        explain=explain,
        max_removals=max_removals,
        allow_large_removal=allow_large_removal,
        identify=len(targets) > 1,
        warn=warn,
        context=docker_context,
        prefetch=prefetch,
    )
    run = FleetRun(targets, output, forks, host_timeout)
    outcomes = run.each(
        lambda target, turn: plan_host(
            manifests[target.manifest], target.address, run.options_for(options, turn)
        ),
        lambda outcome, label: show_plan(outcome, output, quiet, label),
    )
    run.finish(planned=True)
    exit_with(o.code for o in outcomes)


@cli.command(**COMMAND_HELP["apply"])
@optional_manifest_argument
@host_option
@fleet_options
@output_option
@click.option(
    "--pull-timeout",
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    default=DEFAULT_PULL_TIMEOUT,
    show_default=True,
    help="Seconds one pull may take, retries included, before it is given up.",
)
@click.option(
    "--build-timeout",
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    default=DEFAULT_BUILD_TIMEOUT,
    show_default=True,
    help="Seconds one build (source: build) or load (source: load) may take before it is given up.",
)
@click.option(
    "--parallelism",
    type=click.IntRange(min=1, max=32),
    metavar="N",
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
@click.option(
    "--require-digest",
    metavar="sha256:HEX",
    callback=lambda _ctx, _param, value: _digest_value(value),
    help="Apply FILE only if it is the saved plan with this digest (the one `plan --out` printed); else exit 65.",
)
@click.option(
    "--yes",
    "-y",
    "--auto-approve",
    "yes",
    is_flag=True,
    help="Do not ask before untagging or removing (asked only when stdin is a terminal).",
)
@removal_guard_options
def apply(
    manifest_file: Path | None,
    host: tuple[str, ...],
    inventory: Path | None,
    limit: str | None,
    forks: int,
    host_timeout: float,
    output: str,
    pull_timeout: float,
    build_timeout: float,
    parallelism: int,
    quiet: bool,
    state_dir: Path | None,
    lock_timeout: float,
    metrics_file: Path | None,
    require_digest: str | None = None,
    max_removals: int | None = None,
    allow_large_removal: bool = False,
    docker_context: str | None = None,
    yes: bool = False,
) -> None:
    """Change the host until it matches FILE: pull, build, load, tag, untag, remove.

    FILE is a manifest, or a plan saved by `plan --out`: that plan runs as saved, and
    steps whose host state changed since are refused as stale. Several --host options, or
    --inventory, apply to --forks daemons at once, each under its own lock and deadline.
    """
    from reconciler.cli.confirm import stdin_is_terminal
    from reconciler.cli.fleet import FleetRun, choose_targets, load_manifests
    from reconciler.cli.show import ApplyConsole, show_apply
    from reconciler.execution.interrupt import Interrupt
    from reconciler.flows.apply_host import ApplyOptions, apply_host
    from reconciler.state.plan_file import check_required_digest, saved_plan_at

    metrics = track_metrics(metrics_file)
    check_daemon_choice(host, docker_context)
    saved = saved_plan_at(manifest_file) if manifest_file is not None else None
    targets = choose_targets(manifest_file, host, inventory, limit)
    if saved and (len(targets) > 1 or inventory is not None):
        raise click.UsageError("A saved plan belongs to one daemon; give a single --host.")
    if require_digest is not None:
        if saved is None:
            raise click.UsageError(
                f"--require-digest applies to a saved plan, and {manifest_file} is not one."
            )
        check_required_digest(saved, require_digest, str(manifest_file))
    state_dir = state_dir or default_state_dir()
    manifests = {} if saved else load_manifests(targets, state_dir)
    assert targets[0].manifest is not None
    options = ApplyOptions(
        manifest_file=targets[0].manifest,
        state_dir=state_dir,
        warn=warn,
        pull_timeout=pull_timeout,
        build_timeout=build_timeout,
        parallelism=parallelism,
        lock_timeout=lock_timeout,
        max_removals=max_removals,
        allow_large_removal=allow_large_removal,
        interrupt=Interrupt(),
        context=docker_context,
    )
    interrupt = options.interrupt
    assert interrupt is not None
    run = FleetRun(
        targets,
        output,
        forks,
        host_timeout,
        stopped=lambda: interrupt.signal if interrupt.fired else None,
    )
    # On a terminal, apply asks before it takes anything away; a saved plan was approved when it was reviewed.
    ask = not yes and saved is None and stdin_is_terminal()
    if ask and len(targets) > 1:
        raise click.UsageError(
            "apply asks before it removes on a terminal, one daemon at a time: give --yes for several."
        )

    def apply_one(target: Target, turn: Turn) -> ApplyOutcome:
        manifest = None if saved else manifests[target.manifest]
        console = ApplyConsole(output, quiet, **run.console_for(turn))
        host_options = run.options_for(options, turn)
        if ask:
            host_options = dataclasses.replace(host_options, confirm=console.confirm)
        return apply_host(manifest, saved, target.address, host_options, console)

    with interrupted_by_signals(interrupt):
        outcomes = run.each(
            apply_one, lambda outcome, label: show_apply(outcome, output, quiet, label)
        )
    run.finish(planned=False)
    metrics.finished_hosts(run.reports())
    exit_with(o.code for o in outcomes)


@cli.command(**COMMAND_HELP["watch"])
@one_host_option
@state_dir_option
@click.option(
    "--interval",
    type=click.FloatRange(min=0.5, max=60),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="Read the daemon's events this often (it keeps only its last 256).",
)
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    metavar="N",
    help="Stop after N rounds (default: run until stopped).",
)
def watch(
    host: tuple[str, ...],
    state_dir: Path | None,
    interval: float,
    rounds: int | None,
    docker_context: str | None = None,
) -> None:
    """Record the daemon's usage facts (last use, arrival, tag moves) as they happen, until stopped.

    Runs beside cron's or a timer's `apply` (see examples/reconcile-watch.service), so that
    retention's last use and min_age never depend on events the daemon has forgotten.
    SIGTERM or Ctrl-C ends it between rounds, exit 0.
    """
    from reconciler.flows.watch import WatchOptions, watch_host

    if len(host) > 1:
        raise click.UsageError("watch records one daemon; run one watch per daemon.")
    check_daemon_choice(host, docker_context)
    stop = threading.Event()
    options = WatchOptions(
        state_dir=state_dir or default_state_dir(),
        warn=warn,
        interval=interval,
        rounds=rounds,
        context=docker_context,
    )
    previous = {
        number: signal.signal(number, lambda number, frame: stop.set())
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        watch_host(host[0] if host else None, options, stop)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def interrupted_by_signals(interrupt: Interrupt) -> Iterator[None]:
    """SIGINT and SIGTERM fire ``interrupt`` instead of killing the run: pulls stop within a moment,
    no further step starts, and what was and was not done is still reported and recorded."""

    def fire(number: int, frame: object) -> None:
        err().print(
            f"\nInterrupted ({signal.Signals(number).name}): stopping the running pulls; no further step starts."
        )
        interrupt.fire(number)

    previous = {number: signal.signal(number, fire) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _digest_value(value: str | None) -> str | None:
    """A ``--require-digest`` value as plan files write it (lower case); anything else is a usage error."""
    from reconciler.state.plan_file import DIGEST_PATTERN

    if value is None:
        return None
    if not DIGEST_PATTERN.fullmatch(value.lower()):
        raise click.BadParameter(
            f"{value!r} is not a plan digest (sha256: and 64 hex digits, as `plan --out` prints)."
        )
    return value.lower()


def track_metrics(path: Path | None) -> MetricsRun:
    """Time this apply; its metrics file is written when the command ends, however it ends."""
    from reconciler.state.metrics import MetricsRun

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


def exit_with(codes: Iterable[ExitCode]) -> None:
    from reconciler.flows.outcomes import worst_exit_code

    code = worst_exit_code(codes)
    if code is not ExitCode.OK:
        sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map every outcome to a documented exit code."""
    tune_collector()
    try:
        cli.main(args=argv, prog_name="reconcile", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err().print("Aborted.")
        sys.exit(ExitCode.UNEXPECTED)
    except click.UsageError as exc:
        exc.show()
        sys.exit(ExitCode.USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.USAGE)
    except ReconcilerError as exc:
        err().print(f"[red]Error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    sys.exit(ExitCode.OK)
