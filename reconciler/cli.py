"""The ``reconcile`` command: thin click commands over load -> read -> plan -> apply.

The CLI owns stdout, stderr and exit codes; every ReconcilerError is caught
here, once, and printed as its sentence.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import docker
from rich.console import Console
from rich.markup import escape

from reconciler import __version__, render
from reconciler.daemon import Daemon, connect
from reconciler.daemon_read import read_inventory, with_shared_sizes
from reconciler.errors import DaemonError, ExitCode, ReconcilerError
from reconciler.executor import DEFAULT_PULL_TIMEOUT, Executor
from reconciler.loader import load_manifest
from reconciler.manifest import Manifest
from reconciler.plan import Action, Plan
from reconciler.planner import plan_changes
from reconciler.report import StepResult
from reconciler.schema import schema_text

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES_HELP = """\b
Exit codes:
  0   success; the host matches (or the manifest is valid)
  2   plan --detailed-exitcode: changes are pending
  3   apply finished, but some steps failed or were skipped for safety
  64  usage error
  65  invalid manifest
  69  Docker daemon unreachable
  1   anything unexpected
"""


def host_option(func: F) -> F:
    return click.option(
        "--host",
        "-H",
        metavar="URL",
        help="Docker daemon to use (default: $DOCKER_HOST, then the local socket).",
    )(func)


def output_option(func: F) -> F:
    return click.option(
        "--output",
        "-o",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="text for people, json for programs.",
    )(func)


manifest_argument = click.argument(
    "manifest_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)


@click.group(epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconcile")
def cli() -> None:
    """Make a Docker host's images match a desired-state file (images.yaml)."""


@cli.command(epilog=EXIT_CODES_HELP)
@manifest_argument
def validate(manifest_file: Path) -> None:
    """Check FILE against the schema and Docker's rules; report every problem."""
    manifest = load_manifest(manifest_file)
    count = len(manifest.images)
    _out().print(f"{manifest_file} is valid: {count} image entr{'y' if count == 1 else 'ies'}.")


@cli.command(epilog=EXIT_CODES_HELP)
@manifest_argument
@host_option
@output_option
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes, 0 when none.")
def plan(manifest_file: Path, host: str | None, output: str, detailed_exitcode: bool) -> None:
    """Show what apply would change on the host, without changing anything."""
    manifest = load_manifest(manifest_file)
    current = make_plan(manifest, connect(host))
    if output == "json":
        click.echo(render.plan_json(current))
    else:
        _out().print(render.plan_text(current), highlight=False)
    if detailed_exitcode and current.has_changes:
        sys.exit(ExitCode.CHANGES_PENDING)


@cli.command(epilog=EXIT_CODES_HELP)
@manifest_argument
@host_option
@output_option
@click.option(
    "--pull-timeout",
    type=click.FloatRange(min=1),
    default=DEFAULT_PULL_TIMEOUT,
    show_default=True,
    help="Seconds one pull may take before it is cancelled.",
)
def apply(manifest_file: Path, host: str | None, output: str, pull_timeout: float) -> None:
    """Change the host until it matches FILE: pull, tag, untag, remove."""
    manifest = load_manifest(manifest_file)
    daemon = connect(host)
    current = make_plan(manifest, daemon)
    console = _out()
    text = output == "text"
    if not current.has_changes:
        if text:
            console.print(render.plan_text(current), highlight=False)
        else:
            click.echo(render.report_json(Executor(daemon.api).apply(current)))
        return
    if text:
        console.print(render.plan_text(current), highlight=False)
        console.print("\nApplying:", highlight=False)

    def show(result: StepResult) -> None:
        if text:
            console.print(render.result_line(result), highlight=False)

    report = Executor(daemon.api, pull_timeout=pull_timeout).apply(current, on_result=show)
    if text:
        console.print("\n" + render.report_summary_text(report), highlight=False)
    else:
        click.echo(render.report_json(report))
    if not report.complete:
        sys.exit(ExitCode.INCOMPLETE)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of images.yaml (for editors and CI linting)."""
    click.echo(schema_text(), nl=False)


def make_plan(manifest: Manifest, daemon: Daemon) -> Plan:
    """Read the host and plan; read disk usage only when something will be removed."""
    inventory = read_inventory(daemon, manifest)
    current = plan_changes(manifest, inventory)
    if any(s.action is Action.REMOVE and s.bytes is None for s in current.steps):
        current = plan_changes(manifest, with_shared_sizes(daemon, inventory))
    return current


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


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
