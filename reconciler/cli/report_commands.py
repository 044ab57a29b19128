"""``reconcile schema``, ``history``, ``export`` and ``df``: commands that read and report.

None of them changes a daemon or the state directory (``export --out`` writes only its file).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from reconciler.cli.console import out
from reconciler.cli.options import (
    COMMAND_HELP,
    check_daemon_choice,
    one_host_option,
    output_option,
    state_dir_option,
)
from reconciler.model.clock import utc_now
from reconciler.state.state_dir import default_state_dir


@click.command(short_help=COMMAND_HELP["schema"]["short_help"], epilog=COMMAND_HELP["schema"]["epilog"])
@click.option(
    "--output",
    "-o",
    type=click.Choice(["json"]),
    default="json",
    show_default=True,
    help="The schema is JSON.",
)
def schema(output: str) -> None:
    """Print the JSON Schema of images.yaml, for editors (yaml-language-server) and CI linting."""
    from reconciler.loading.schema import schema_text  # here: the other commands need no schema

    click.echo(schema_text(), nl=False)


@click.command(short_help=COMMAND_HELP["history"]["short_help"], epilog=COMMAND_HELP["history"]["epilog"])
@click.option(
    "--image",
    metavar="REF",
    help="Only this image: a reference (no tag: every tag) or an id prefix.",
)
@click.option("--since", metavar="DURATION", help="Only steps this recent: 90m, 12h, 7d, 2w.")
@click.option(
    "--host", "-H", metavar="URL", help="Only steps on this daemon (default: every daemon)."
)
@output_option
@state_dir_option
def history(
    image: str | None, since: str | None, host: str | None, output: str, state_dir: Path | None
) -> None:
    """Show the recorded steps of past applies: what removed an image, and why."""
    from reconciler.state.history import (
        HistoryQuery,
        parse_since,
        query_history,
        records_json,
        records_plain,
        records_table,
    )

    query = HistoryQuery(
        image=image, since=parse_since(since, utc_now()) if since else None, host=host
    )
    records = query_history(state_dir or default_state_dir(), query)
    console = out()
    if output == "json":
        click.echo(records_json(records))
    elif console.is_terminal and records:
        console.print(records_table(records))
    else:
        click.echo(records_plain(records))


@click.command(short_help=COMMAND_HELP["export"]["short_help"], epilog=COMMAND_HELP["export"]["epilog"])
@one_host_option
@output_option
@click.option(
    "--out",
    "out_file",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to FILE (atomically) instead of stdout.",
)
def export(
    host: tuple[str, ...], output: str, out_file: Path | None, docker_context: str | None = None
) -> None:
    """Write the host's images as an images.yaml that plans to no changes (-o json: the same as JSON)."""
    from reconciler.daemon.address import connect
    from reconciler.flows.host_facts import read_inventory
    from reconciler.loading.yaml_source import read_yaml  # -o json reads back the YAML it wrote
    from reconciler.planning.export import export_manifest

    if len(host) > 1:
        raise click.UsageError("export writes one daemon's images; give a single --host.")
    check_daemon_choice(host, docker_context)
    daemon = connect(host[0] if host else None, context=docker_context)
    text = export_manifest(read_inventory(daemon), utc_now())
    if output == "json":
        text = json.dumps(read_yaml(text, "export").data, indent=2) + "\n"
    if out_file is None:
        click.echo(text, nl=False)
    else:
        from reconciler.state.plan_file import write_or_explain

        write_or_explain(out_file, text, "the manifest")


@click.command(name="df", short_help=COMMAND_HELP["df"]["short_help"], epilog=COMMAND_HELP["df"]["epilog"])
@click.argument(
    "manifest_file",
    metavar="[FILE]",
    required=False,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@one_host_option
@output_option
@state_dir_option
def disk_usage(
    manifest_file: Path | None,
    host: tuple[str, ...],
    output: str,
    state_dir: Path | None,
    docker_context: str | None,
) -> None:
    """Disk use per repository: images, tags, unique and shared bytes, age range, in use.

    With FILE, also what its plan would free and where its disk budget's marks are.
    """
    from reconciler.cli.disk_usage import show_disk_usage

    if len(host) > 1:
        raise click.UsageError("df reads one daemon; give a single --host.")
    check_daemon_choice(host, docker_context)
    show_disk_usage(
        host[0] if host else None,
        docker_context,
        manifest_file,
        output,
        state_dir or default_state_dir(),
    )
