"""The steps of a run that touch the daemon around the pure core: read, plan, size, decide the exit code.

``make_plan`` is the whole of what ``plan`` and ``apply`` do before executing:
read the inventory, plan the manifest, add retention, size the removals.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from reconciler.daemon.host import DockerHost
from reconciler.daemon.reading import read_freed_bytes, read_inventory, with_shared_sizes
from reconciler.daemon.registry_auth import RegistryAuth, load_registry_auth
from reconciler.errors import ExitCode
from reconciler.flows.retention_inputs import RetentionRun, evaluate_host
from reconciler.model.manifest import Manifest
from reconciler.model.plan import Action, Plan
from reconciler.model.report import Outcome, Report
from reconciler.planning.freed_space import removed_images, with_freed_bytes
from reconciler.planning.images import plan_changes
from reconciler.planning.retention_steps import plan_retention, removal_guard
from reconciler.state.state_dir import default_state_dir


def make_plan(
    manifest: Manifest,
    host: DockerHost,
    auth: RegistryAuth | None = None,
    *,
    state_dir: Path | None = None,
    clock: float | None = None,
    explain: bool = False,
) -> tuple[Plan, RetentionRun | None]:
    """Read the host and plan; read disk usage only when something will be removed.

    Registry credentials (for ``pull: always`` digest lookups) come from the environment
    and the Docker config unless ``auth`` is given. With a ``retention:`` section (or
    ``explain``) retention is evaluated at ``clock`` from the usage state in ``state_dir``
    (read only) and its steps join the plan's.
    """
    inventory = read_inventory(host, manifest, auth or load_registry_auth(os.environ))
    current = plan_changes(manifest, inventory)
    if any(s.action is Action.REMOVE and s.bytes is None for s in current.steps):
        inventory = with_shared_sizes(host, inventory)
        current = plan_changes(manifest, inventory)
    run = None
    if manifest.retention is not None or explain:
        run = evaluate_host(
            manifest, host, inventory, state_dir or default_state_dir(), clock or time.time()
        )
        inventory = run.inventory
        if manifest.retention is not None:
            current = plan_retention(current, inventory, manifest.retention, run.result, run.now)
    removed = removed_images(current)
    if removed:
        freed = read_freed_bytes(host, inventory, removed)
        if freed is not None:
            current = with_freed_bytes(current, freed)
    return current, run


def too_many_removals(
    current: Plan, manifest: Manifest | None, run: RetentionRun | None, max_removals: int | None
) -> str | None:
    """The blast-radius guard: --max-removals, and the manifest's max_removal_percent of the host's images."""
    spec = manifest.retention if manifest is not None else None
    total = len(run.inventory.images) if run is not None else None
    percent = spec.max_removal_percent if spec is not None else None
    return removal_guard(current, total, percent, max_removals)


def apply_exit_code(report: Report) -> ExitCode:
    """0 when every step was done; 4 when a saved plan's step was stale (it wins: plan again
    first); 69 when the daemon stopped answering; 75 when only registry rate limits stood
    in the way; else 3."""
    if report.stale:
        return ExitCode.STALE_PLAN
    not_done = [r for r in report.results if r.outcome is not Outcome.DONE]
    if not not_done:
        return ExitCode.OK
    if any(r.daemon_lost for r in not_done):
        return ExitCode.DAEMON_UNAVAILABLE
    if all(r.rate_limited for r in not_done):
        return ExitCode.TEMPORARY_FAILURE
    return ExitCode.INCOMPLETE




# Which exit code a run over several daemons ends with: the most serious of theirs.
_SEVERITY = [
    ExitCode.OK,
    ExitCode.CHANGES_PENDING,
    ExitCode.TEMPORARY_FAILURE,
    ExitCode.INCOMPLETE,
    ExitCode.STALE_PLAN,
    ExitCode.INVALID_MANIFEST,
    ExitCode.USAGE,
    ExitCode.DAEMON_UNAVAILABLE,
    ExitCode.UNEXPECTED,
]


def worst_exit_code(codes: list[ExitCode]) -> ExitCode:
    """The most serious of several daemons' exit codes (an unknown one counts as unexpected)."""
    rank = {code: index for index, code in enumerate(_SEVERITY)}
    return max(codes, key=lambda code: rank.get(code, len(_SEVERITY)), default=ExitCode.OK)


def merge_reports(reports: list[Report]) -> Report | None:
    """One report over several daemons' runs, for the metrics file; None when none finished."""
    if not reports:
        return None
    if len(reports) == 1:
        return reports[0]
    return Report(
        results=tuple(r for report in reports for r in report.results),
        host=", ".join(report.host for report in reports),
        manifest_path=reports[0].manifest_path,
    )
