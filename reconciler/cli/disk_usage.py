"""``reconcile df``: disk use per repository on a terminal (a bar per repository) or as JSON,
and with a manifest what its policy would free and where its disk budget's marks are."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table

from reconciler.cli.console import echo_json, out
from reconciler.model.units import format_age, format_size
from reconciler.planning.disk_report import RepositoryUsage

BAR_WIDTH = 24


def show_disk_usage(
    host: str | None, context: str | None, manifest_file: Path | None, output: str, state_dir: Path
) -> None:
    from reconciler.daemon.address import connect
    from reconciler.flows.host_facts import cached_disk_usage, read_inventory
    from reconciler.model.clock import epoch_now
    from reconciler.planning.disk_report import repository_usage

    daemon = connect(host, context=context)
    usage = cached_disk_usage(daemon, state_dir)
    inventory = read_inventory(daemon).with_shared_sizes(usage.shared_sizes)
    repositories = repository_usage(inventory)
    policy = _policy(manifest_file, host, context, state_dir) if manifest_file else None
    if output == "json":
        echo_json(
            {
                "host": daemon.address,
                "layers_bytes": usage.layers_size,
                "repositories": [asdict(r) for r in repositories],
                **({"manifest": policy} if policy else {}),
            }
        )
        return
    now = epoch_now()
    console = out()
    console.print(
        f"Disk use of the images on {escape(daemon.address)}: {format_size(usage.layers_size)} of layers.\n"
    )
    console.print(_table(repositories, now))
    if policy:
        console.print("\n" + _policy_text(policy, usage.layers_size), highlight=False)


def _table(repositories: tuple[RepositoryUsage, ...], now: float) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column, justify in (
        ("repository", "left"),
        ("images", "right"),
        ("tags", "right"),
        ("unique", "right"),
        ("shared", "right"),
        ("age", "right"),
        ("in use", "right"),
        ("unique bytes", "left"),
    ):
        table.add_column(column, justify=justify, overflow="fold", no_wrap=column != "repository")  # type: ignore[arg-type]
    largest = max((r.unique_bytes for r in repositories), default=0) or 1
    for r in repositories:
        ages = sorted(
            {format_age(now - r.newest), format_age(now - r.oldest)},
            key=lambda a: a == format_age(now - r.oldest),
        )
        bar = "█" * max(round(BAR_WIDTH * r.unique_bytes / largest), 1 if r.unique_bytes else 0)
        table.add_row(
            escape(r.repository),
            str(r.images),
            str(r.tags),
            format_size(r.unique_bytes),
            format_size(r.shared_bytes),
            " to ".join(ages),
            str(r.in_use) if r.in_use else "",
            f"[cyan]{bar}[/]",
        )
    return table


def _policy(
    manifest_file: Path, host: str | None, context: str | None, state_dir: Path
) -> dict[str, Any]:
    """What the manifest's plan would remove and free, and its disk budget."""
    from reconciler.flows.plan_host import PlanOptions, plan_host
    from reconciler.loading.loader import load_manifest
    from reconciler.model.plan import Action

    manifest = load_manifest(manifest_file)
    outcome = plan_host(manifest, host, PlanOptions(state_dir=state_dir, context=context))
    disk = manifest.retention.disk if manifest.retention else None
    return {
        "file": str(manifest_file),
        "removals": outcome.plan.count(Action.REMOVE),
        "bytes_to_free": outcome.plan.bytes_to_free if outcome.plan.bytes_to_free_known else None,
        "max_total_bytes": disk.max_total if disk else None,
        "high_percent": disk.high if disk else None,
        "low_percent": disk.low if disk else None,
    }


def _policy_text(policy: dict[str, Any], layers: int) -> str:
    freed = (
        format_size(policy["bytes_to_free"])
        if policy["bytes_to_free"] is not None
        else "an unknown amount"
    )
    lines = [f"{policy['file']} would remove {policy['removals']} image(s) and free {freed}."]
    if policy["max_total_bytes"] is not None:
        limit = policy["max_total_bytes"]
        state = "over" if layers > limit else "within"
        lines.append(
            f"Disk budget: max_total {format_size(limit)}; images take {format_size(layers)}, {state} it."
        )
    if policy["high_percent"] is not None:
        lines.append(
            f"Disk budget: evict above {policy['high_percent']:g}% full, down to {policy['low_percent']:g}%."
        )
    return "\n".join(lines)
