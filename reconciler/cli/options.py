"""Options and help text shared by the ``reconcile`` commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler.state.state_dir import STATE_DIR_ENV

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES_HELP = """\b
Exit codes:
  0   success; the host matches (or the manifest is valid)
  2   plan --detailed-exitcode: changes are pending (a plan of only blocked steps is 0)
  3   apply finished, but some steps failed or were skipped for safety
      (or plan/apply: more removals than --max-removals/max_removal_percent)
  4   apply PLAN: the saved plan is stale (steps refused; run plan again); wins over 3
  64  usage error
  65  invalid manifest, or a saved plan that is corrupt, edited, of an unknown version or not --require-digest's
  69  Docker daemon unreachable
  75  apply: another apply holds this daemon's lock (see --lock-timeout),
      or only registry rate limits (HTTP 429) kept pulls from finishing
  130 apply: stopped by SIGINT (Ctrl-C); 143: by SIGTERM
  1   anything unexpected
"""


def host_option(func: F) -> F:
    func = context_option(func)
    return click.option(
        "--host",
        "-H",
        metavar="URL",
        multiple=True,
        help="Docker daemon to use (default: the Docker context, see --context); "
        "repeat it to work on several daemons (--forks at once).",
    )(func)


def context_option(func: F) -> F:
    return click.option(
        "--context",
        "-c",
        "docker_context",
        metavar="NAME",
        help="Docker context to use, as `docker --context` (default: $DOCKER_HOST, else $DOCKER_CONTEXT, "
        "else `docker context use`'s, else the local socket).",
    )(func)


def check_daemon_choice(host: tuple[str, ...], docker_context: str | None) -> None:
    """Refuse --host with --context, and a context that does not exist, before anything else runs."""
    from reconciler.daemon.contexts import DEFAULT_CONTEXT, read_context, selected_context
    if host and docker_context:
        raise click.UsageError("Give either --host or --context, not both (as for docker).")
    name, source = selected_context(docker_context, hosts_given=bool(host))
    if name != DEFAULT_CONTEXT:
        read_context(name, source)


def output_option(func: F) -> F:
    return click.option(
        "--output",
        "-o",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="text for people, json for programs.",
    )(func)


def one_host_option(func: F) -> F:
    func = context_option(func)
    return click.option(
        "--host",
        "-H",
        metavar="URL",
        multiple=True,  # taken as a list so that a second one is refused, not silently dropped
        help="Docker daemon to use (default: the Docker context, see --context).",
    )(func)


def quiet_option(func: F) -> F:
    return click.option(
        "--quiet", "-q", is_flag=True, help="Print only errors and the final one-line summary."
    )(func)


def state_dir_option(func: F) -> F:
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=STATE_DIR_ENV,
        help="Where the run history and the usage state live; plan only reads them "
        "(default: $XDG_STATE_HOME/reconciler, else ~/.local/state/reconciler).",
    )(func)


def removal_guard_options(func: F) -> F:
    func = click.option(
        "--allow-large-removal",
        is_flag=True,
        help="Go ahead even when the plan removes more than --max-removals or max_removal_percent.",
    )(func)
    return click.option(
        "--max-removals",
        type=click.IntRange(min=0),
        metavar="N",
        help="Refuse (exit 3, nothing done) a plan that removes more than N images.",
    )(func)


DEFAULT_FORKS = 10
DEFAULT_HOST_TIMEOUT = 1800.0  # seconds: half an hour for one host's whole turn


def fleet_options(func: F) -> F:
    """--inventory, --limit, --forks, --host-timeout: which hosts, how many at once, how long each."""
    func = click.option(
        "--host-timeout",
        type=click.FloatRange(min=1),
        default=DEFAULT_HOST_TIMEOUT,
        show_default=True,
        metavar="SECONDS",
        help="Each host's whole turn (connect, read, plan, every step) ends within this; "
        "a host that hangs is reported and costs the run no more.",
    )(func)
    func = click.option(
        "--forks",
        type=click.IntRange(min=1, max=256),
        default=DEFAULT_FORKS,
        show_default=True,
        metavar="N",
        help="Hosts worked on at once.",
    )(func)
    func = click.option(
        "--limit",
        "-l",
        metavar="PATTERN",
        help="Only these hosts of the inventory: names, groups, globs, comma lists, !exclusions, &intersections.",
    )(func)
    return click.option(
        "--inventory",
        "-i",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        metavar="FILE",
        help="The hosts (YAML: names, addresses, groups and each group's manifest); instead of --host.",
    )(func)


optional_manifest_argument = click.argument(
    "manifest_file", metavar="[FILE]", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)

manifest_argument = click.argument(
    "manifest_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)


