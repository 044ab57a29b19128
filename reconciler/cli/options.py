"""Options and help text shared by the ``reconcile`` commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler.execution.defaults import DEFAULT_HOST_TIMEOUT
from reconciler.state.state_dir import STATE_DIR_ENV

F = TypeVar("F", bound=Callable[..., Any])

# Each command's own exit codes, and two or three examples, for its --help (as kubectl's).
EXIT_CODE_MEANINGS = {
    0: "success; the host matches (or the manifest is valid)",
    1: "anything unexpected",
    2: "--detailed-exitcode: changes are pending (a plan of only blocked steps is 0)",
    3: "steps failed or were skipped for safety; or more removals than\n"
    "      --max-removals/max_removal_percent allow (nothing done)",
    4: "the saved plan is stale (steps refused; run plan again); wins over 3",
    64: "usage error (option, file, daemon address or context, state directory)",
    65: "invalid manifest, or a saved plan that is corrupt, edited, of an unknown version or not --require-digest's",
    69: "Docker daemon unreachable",
    75: "another apply holds this daemon's lock (see --lock-timeout), only registry rate limits\n"
    "      kept pulls from finishing, or the daemon's disk usage stayed busy",
    130: "stopped by SIGINT (Ctrl-C); 143: by SIGTERM",
}


def command_help(codes: tuple[int, ...], examples: tuple[str, ...]) -> str:
    """The epilog of one command: its examples, then the exit codes it can return."""
    lines = ["\b", "Examples:", *(f"  {example}" for example in examples), "", "\b", "Exit codes:"]
    lines += [f"  {code:<3} {EXIT_CODE_MEANINGS[code]}" for code in codes]
    return "\n".join(lines) + "\n"


EXIT_CODES_HELP = command_help(
    (0, 2, 3, 4, 64, 65, 69, 75, 130, 1),
    ("reconcile plan images.yaml", "reconcile apply images.yaml", "reconcile COMMAND --help"),
)
EXIT_CODES_HELP += (
    "\n\b\nShell completion (bash; zsh and fish likewise, with zsh_source or fish_source):\n"
    '  eval "$(_RECONCILE_COMPLETE=bash_source reconcile)"   # in ~/.bashrc\n'
)


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
        help="Where the run history and the usage state live "
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
    "manifest_file",
    metavar="[FILE]",
    required=False,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
)

manifest_argument = click.argument(
    "manifest_file",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
)


def _command(short_help: str, codes: tuple[int, ...], *examples: str) -> dict[str, str]:
    return {"short_help": short_help, "epilog": command_help(codes, examples)}


# `@cli.command(**COMMAND_HELP[name])`: the one-line summary `reconcile --help` lists, and the epilog.
COMMAND_HELP = {
    "validate": _command(
        "Check a manifest; report every problem.",
        (0, 64, 65, 1),
        "reconcile validate images.yaml",
        "envsubst < images.tmpl | reconcile validate -",
        "reconcile validate images.yaml -o json",
    ),
    "plan": _command(
        "Show what apply would change; changes nothing.",
        (0, 2, 3, 64, 65, 69, 75, 1),
        "reconcile plan images.yaml",
        "reconcile plan images.yaml --explain",
        "reconcile plan images.yaml --detailed-exitcode --out plan.json -c prod",
    ),
    "apply": _command(
        "Pull, tag, untag and remove until the host matches.",
        (0, 3, 4, 64, 65, 69, 75, 130, 1),
        "reconcile apply images.yaml",
        "reconcile apply plan.json --require-digest sha256:...",
        "reconcile apply images.yaml -q --yes --lock-timeout 300 --metrics-file reconcile.prom",
    ),
    "watch": _command(
        "Record image usage as it happens (a service).",
        (0, 64, 1),
        "reconcile watch",
        "reconcile watch -H unix:///run/docker.sock --interval 2",
    ),
    "schema": _command(
        "Print the JSON Schema of images.yaml.",
        (0,),
        "reconcile schema > images.schema.json",
    ),
    "history": _command(
        "Show the steps past applies ran, and why.",
        (0, 64, 1),
        "reconcile history --image nginx --since 7d",
        "reconcile history -o json",
    ),
    "df": _command(
        "Disk use per repository, and what a manifest would free.",
        (0, 64, 65, 69, 1),
        "reconcile df",
        "reconcile df images.yaml",
        "reconcile df -o json",
    ),
    "export": _command(
        "Write the host's images as a manifest.",
        (0, 64, 69, 1),
        "reconcile export --out images.yaml",
        "reconcile export -c staging -o json",
    ),
    "hold": _command(
        "Keep an image a job is about to use, for a while.",
        (0, 64, 69, 1),
        'reconcile hold registry.example.com/ci/runner:stable --for 2h --reason "$CI_JOB_URL"',
    ),
    "release": _command(
        "End your holds on REF, or one hold by --id.",
        (0, 64, 69, 1),
        "reconcile release registry.example.com/ci/runner:stable",
        "reconcile release --id 1a2b3c4d",
    ),
    "holds": _command(
        "List the daemon's active holds.",
        (0, 64, 69, 1),
        "reconcile holds",
        "reconcile holds -o json",
    ),
}
