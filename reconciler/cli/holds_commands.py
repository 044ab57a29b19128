"""``reconcile hold``, ``release`` and ``holds``: pin an image a job is about to use, for a while.

Holds are the daemon's, not the user's: kept beside its lock where every user of the machine
finds them, so every ``plan`` and ``apply`` on that daemon honours them, whoever runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.cli.console import echo_json, out, warn
from reconciler.cli.markup import escape
from reconciler.cli.options import (
    COMMAND_HELP,
    check_daemon_choice,
    one_host_option,
    output_option,
    state_dir_option,
)
from reconciler.model.clock import epoch_now
from reconciler.model.holds import Hold, time_left
from reconciler.model.units import UnitError, format_duration, parse_duration
from reconciler.state.state_dir import default_state_dir

if TYPE_CHECKING:
    from reconciler.daemon.docker_engine import DockerEngine


def _daemon(host: tuple[str, ...], docker_context: str | None) -> DockerEngine:
    from reconciler.daemon.address import connect

    if len(host) > 1:
        raise click.UsageError("Holds are one daemon's; give a single --host.")
    check_daemon_choice(host, docker_context)
    return connect(host[0] if host else None, context=docker_context)


def _seconds(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        seconds = parse_duration(value)
    except UnitError as exc:
        raise click.BadParameter(str(exc)) from exc
    if seconds <= 0:
        raise click.BadParameter("a hold must last a while: give a duration above 0, such as 2h.")
    return seconds


def _line(hold: Hold, now: float) -> str:
    image = (
        f" ({hold.image_id.removeprefix('sha256:')[:12]})"
        if hold.image_id and hold.image_id != hold.reference
        else ""
    )
    why = f", {hold.reason}" if hold.reason else ""
    return f"{hold.id}  {hold.reference}{image}  by {hold.owner}, {time_left(hold.expires - now)} left{why}"


@click.command(short_help=COMMAND_HELP["hold"]["short_help"], epilog=COMMAND_HELP["hold"]["epilog"])
@click.argument("ref", metavar="REF")
@click.option(
    "--for",
    "duration",
    required=True,
    metavar="DURATION",
    callback=_seconds,
    help="How long: 90m, 2h, 1d.",
)
@click.option(
    "--reason", default="", metavar="TEXT", help="Why, for whoever lists the holds (a job's URL)."
)
@one_host_option
@output_option
@state_dir_option
def hold(
    ref: str,
    duration: int,
    reason: str,
    host: tuple[str, ...],
    output: str,
    state_dir: Path | None,
    docker_context: str | None = None,
) -> None:
    """Keep REF's image on the host for DURATION: no plan or apply removes or untags it meanwhile.

    REF is a reference (no tag: latest) or an image id. The hold covers the image REF points at
    now and whichever image it points at later, until it expires or `reconcile release` drops it.
    """
    from reconciler.flows.holds import place_hold

    now = epoch_now()
    placed = place_hold(
        _daemon(host, docker_context), state_dir or default_state_dir(), ref, duration, reason, now
    )
    if output == "json":
        echo_json(placed.as_dict())
        return
    if placed.image_id is None:
        warn(
            f"{placed.reference} is not on the host yet; the hold covers the image it points at once pulled."
        )
    out().print(
        f"Held {escape(placed.reference)} for {format_duration(duration)} (hold {placed.id}); `reconcile release --id {placed.id}` ends it early."
    )


@click.command(
    short_help=COMMAND_HELP["release"]["short_help"], epilog=COMMAND_HELP["release"]["epilog"]
)
@click.argument("ref", metavar="REF", required=False)
@click.option(
    "--id",
    "hold_id",
    metavar="ID",
    help="Release this one hold (as `hold` printed it), whoever placed it.",
)
@click.option(
    "--all", "everyone", is_flag=True, help="Release every user's holds on REF, not only yours."
)
@one_host_option
@output_option
@state_dir_option
def release(
    ref: str | None,
    hold_id: str | None,
    everyone: bool,
    host: tuple[str, ...],
    output: str,
    state_dir: Path | None,
    docker_context: str | None = None,
) -> None:
    """Drop your holds on REF (or the hold --id ID) before they expire."""
    from reconciler.flows.holds import release as release_holds

    if (ref is None) == (hold_id is None):
        raise click.UsageError("Give either REF or --id ID.")
    now = epoch_now()
    released = release_holds(
        _daemon(host, docker_context), state_dir or default_state_dir(), ref, hold_id, everyone, now
    )
    if output == "json":
        echo_json({"released": [h.as_dict() for h in released]})
        return
    if not released:
        what = (
            f"hold {hold_id}"
            if hold_id
            else f"hold of yours on {ref}" + (" (or anyone's)" if everyone else "")
        )
        warn(f"No {what} was active; nothing was released.")
    for found in released:
        out().print(f"Released {escape(_line(found, now))}")


@click.command(
    short_help=COMMAND_HELP["holds"]["short_help"], epilog=COMMAND_HELP["holds"]["epilog"]
)
@one_host_option
@output_option
@state_dir_option
def holds(
    host: tuple[str, ...], output: str, state_dir: Path | None, docker_context: str | None = None
) -> None:
    """List the daemon's active holds: id, reference, image, owner, time left, reason."""
    from reconciler.flows.holds import active_holds

    now = epoch_now()
    found = active_holds(_daemon(host, docker_context), state_dir or default_state_dir(), now, warn)
    if output == "json":
        echo_json({"holds": [h.as_dict() for h in found]})
        return
    if not found:
        out().print("No active holds.")
    for each in found:
        out().print(escape(_line(each, now)))
