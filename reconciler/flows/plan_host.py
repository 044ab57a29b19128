"""``plan`` on one host: read the facts, decide, size, optionally save; returns a PlanOutcome, prints nothing."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.daemon.address import connect
from reconciler.daemon.docker_engine import DockerEngine
from reconciler.daemon.registry_auth import load_registry_auth
from reconciler.errors import ExitCode, LargeRemovalRefused
from reconciler.flows.host_facts import ask_disk_usage, read_host_facts
from reconciler.flows.outcomes import PlanOutcome, Verdicts
from reconciler.flows.prefetch import Prefetch
from reconciler.flows.sizing import size_plan
from reconciler.model.clock import epoch_now, utc_now
from reconciler.model.deadline import NO_DEADLINE, Deadline
from reconciler.model.manifest import Manifest
from reconciler.planning.host_plan import decide
from reconciler.planning.stale_containers import stale_containers
from reconciler.state.lock_dir import daemon_identity

if TYPE_CHECKING:
    from reconciler.model.fleet import TlsSettings


@dataclass(frozen=True)
class PlanOptions:
    state_dir: Path
    warn: Callable[[str], None] | None = None
    detailed_exitcode: bool = False
    out_file: Path | None = None
    explain: bool = False
    max_removals: int | None = None
    allow_large_removal: bool = False
    identify: bool = False  # say which daemon it is (one more GET /info), for runs over several --host
    deadline: Deadline = NO_DEADLINE  # no call to the daemon waits past it (--host-timeout)
    tls: TlsSettings | None = None  # an inventory's TLS settings for this host
    context: str | None = None  # --context: the Docker context to use when no --host is given
    prefetch: Prefetch | None = None  # this host's lists, read while the manifest loaded


def plan_host(manifest: Manifest, address: str | None, options: PlanOptions) -> PlanOutcome:
    """The plan for ``manifest`` on the daemon at ``address``; changes nothing, not even our state
    (the layer and disk usage caches aside: they only learn what never changes)."""
    def connected() -> DockerEngine:
        return connect(address, deadline=options.deadline, tls=options.tls, context=options.context)

    ahead = None
    if options.prefetch is not None:
        # While the daemon answers the early reads: the manifest's own index, and a retention plan's
        # /system/df on a session of its own.
        _ = manifest.declared
        ahead = ask_disk_usage(manifest, options.prefetch.connected_engine(), options.state_dir)
    host = options.prefetch.host(connected) if options.prefetch is not None else connected()
    now = epoch_now()
    facts = read_host_facts(
        host, manifest, load_registry_auth(os.environ), options.state_dir, now, explain=options.explain,
        warn=options.warn, prefetched=options.prefetch, disk_usage_ahead=ahead,
    )
    decided = decide(manifest, facts, now, max_removals=options.max_removals, explain=options.explain)
    plan, sized_inventory = size_plan(host, facts, decided.plan, options.state_dir)
    refusal = None if options.allow_large_removal else decided.refusal
    daemon = daemon_identity(host) if options.identify or options.out_file is not None else None
    saved_to = saved_digest = None
    if options.out_file is not None and refusal is None:
        from reconciler.state.plan_file import save_plan  # --out only

        saved_digest = save_plan(options.out_file, plan, utc_now(), engine=daemon)
        saved_to = options.out_file
    verdicts = None
    if options.explain and decided.retention is not None:
        usage = facts.usage  # --explain reads the usage state: None only for facts made elsewhere
        verdicts = Verdicts(
            decided.retention,
            sized_inventory,
            now,
            usage.last_used if usage is not None else {},
            usage.arrived if usage is not None else {},
            facts.event_gap,
            tuple(h for h in facts.holds if h.active(now)),
        )
    if refusal is not None:
        code = LargeRemovalRefused.exit_code
    elif options.detailed_exitcode and plan.has_runnable:
        code = ExitCode.CHANGES_PENDING
    else:
        code = ExitCode.OK
    return PlanOutcome(
        host.address,
        plan,
        code,
        refusal=refusal,
        verdicts=verdicts,
        saved_to=saved_to,
        saved_digest=saved_digest,
        daemon=daemon,
        event_gap=facts.event_gap,
        stale=stale_containers(manifest.declared.tags, facts.inventory, plan),
    )
