"""``apply`` on one host, under its lock: decide (or take a saved plan), execute, record; returns an ApplyOutcome.

What happens while it runs (the plan about to run, pull progress, each step's result)
goes to an :class:`ApplyListener` the CLI gives, which renders it; nothing is printed here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from reconciler.daemon.address import connect
from reconciler.daemon.host import DockerHost
from reconciler.daemon.pulling import Puller, PullEvent
from reconciler.daemon.registry_auth import load_registry_auth
from reconciler.errors import (
    ExitCode,
    HostTimedOut,
    Interrupted,
    LargeRemovalRefused,
    ReconcilerError,
)
from reconciler.execution.defaults import (
    DEFAULT_BUILD_TIMEOUT,
    DEFAULT_PARALLELISM,
    DEFAULT_PULL_TIMEOUT,
)
from reconciler.execution.executor import Executor
from reconciler.execution.interrupt import Interrupt
from reconciler.flows.holds import LiveHolds
from reconciler.flows.host_facts import cached_disk_usage, creation_names, read_host_facts
from reconciler.flows.outcomes import ApplyOutcome, apply_exit_code
from reconciler.flows.sizing import size_plan
from reconciler.model.clock import epoch_now
from reconciler.model.deadline import NO_DEADLINE, Deadline
from reconciler.model.host_facts import HostFacts
from reconciler.model.inventory import Inventory
from reconciler.model.manifest import Manifest
from reconciler.model.plan import Action, Plan
from reconciler.model.reference import reference_key, tag_key
from reconciler.model.report import Outcome, Report, StepResult
from reconciler.model.usage import UsageFacts
from reconciler.planning.host_plan import decide
from reconciler.planning.removal_guard import removal_refusal
from reconciler.planning.stale_containers import StaleContainer, stale_containers
from reconciler.state.history import RunRecorder
from reconciler.state.local_images import record_local_images
from reconciler.state.lock import daemon_lock
from reconciler.state.lock_dir import daemon_identity, lock_directory
from reconciler.state.plan_file import SavedPlan, check_applicable
from reconciler.state.state_dir import ensure_state_dir
from reconciler.state.usage_store import record_usage

if TYPE_CHECKING:
    from reconciler.model.fleet import TlsSettings


class ApplyListener(Protocol):
    """What the CLI is told while an apply runs."""

    def applying(self, plan: Plan) -> None: ...

    def pull_event(self, event: PullEvent) -> None: ...

    def build_output(self, ref: str, line: str) -> None: ...

    def step_result(self, result: StepResult) -> None: ...

    def finished(self) -> None: ...


@dataclass(frozen=True)
class ApplyOptions:
    manifest_file: Path
    state_dir: Path
    warn: Callable[[str], None]
    pull_timeout: float = DEFAULT_PULL_TIMEOUT
    build_timeout: float = DEFAULT_BUILD_TIMEOUT  # one build or load (source: build, source: load)
    parallelism: int = DEFAULT_PARALLELISM
    lock_timeout: float = 0.0
    max_removals: int | None = None
    allow_large_removal: bool = False
    interrupt: Interrupt | None = None  # fired by SIGINT/SIGTERM: running pulls stop, no step starts
    deadline: Deadline = NO_DEADLINE  # no call to the daemon waits past it (--host-timeout)
    tls: TlsSettings | None = None  # an inventory's TLS settings for this host
    # Runs a write of reconcile's state (history, usage) unless this host's turn was given up.
    while_live: Callable[[Callable[[], None]], None] = lambda write: write()
    context: str | None = None  # --context: the Docker context to use when no --host is given
    confirm: Callable[[Plan], bool] | None = None  # asked before a plan that untags or removes; False: none runs


# One apply per daemon within this process too: two addresses of one daemon in one run take turns
# (flock would refuse the second at once, as if another process held the lock).
_DAEMONS_IN_USE: dict[str, threading.Lock] = {}
_DAEMONS_LOCK = threading.Lock()


@contextlib.contextmanager
def _daemon_turn(identity: str, deadline: Deadline) -> Iterator[None]:
    with _DAEMONS_LOCK:
        lock = _DAEMONS_IN_USE.setdefault(identity, threading.Lock())
    left = deadline.left()
    if not lock.acquire(timeout=-1 if left is None else max(left, 0)):
        raise HostTimedOut(f"The daemon ({identity}) was busy with another address of it in this run until the host deadline.")
    try:
        yield
    finally:
        lock.release()


def apply_host(
    manifest: Manifest | None,
    saved: SavedPlan | None,
    address: str | None,
    options: ApplyOptions,
    listener: ApplyListener,
) -> ApplyOutcome:
    """Plan (or take the saved plan) and apply it on one daemon, under that daemon's lock.

    The lock is released, and the run's history written, when this daemon's turn ends.
    """
    interrupt = options.interrupt
    if interrupt is not None and interrupt.fired and interrupt.signal is not None:
        raise Interrupted("not started: the run was interrupted", interrupt.signal)
    state = ensure_state_dir(options.state_dir)  # a state directory that cannot be used stops the run first
    host = connect(address, deadline=options.deadline, tls=options.tls, context=options.context)
    identity = daemon_identity(host)  # GET /info: the lock is the daemon's, not its address's
    if saved is not None:
        check_applicable(saved, host.address, identity)
    with contextlib.ExitStack() as turn:
        turn.enter_context(_daemon_turn(identity, options.deadline))
        lock_dir = lock_directory(state)
        turn.enter_context(daemon_lock(lock_dir, identity, options.lock_timeout))
        recorder = RunRecorder(state, host.address, os.path.abspath(options.manifest_file), warn=options.warn)
        turn.callback(options.while_live, recorder.close)
        holds = LiveHolds(host, lock_dir, identity)
        outcome = _apply_locked(host, manifest, saved.plan if saved else None, recorder, options, listener, holds)
        return dataclasses.replace(outcome, daemon=identity)


def _apply_locked(
    host: DockerHost,
    manifest: Manifest | None,
    saved: Plan | None,
    recorder: RunRecorder,
    options: ApplyOptions,
    listener: ApplyListener,
    holds: LiveHolds,
) -> ApplyOutcome:
    auth = load_registry_auth(os.environ)
    now = epoch_now()
    facts: HostFacts | None = None
    planned: Inventory | None = None  # what the plan was made from: the first removals take its reads
    if manifest is None:
        assert saved is not None
        plan = saved  # exactly as saved: nothing is recomputed
        refusal = removal_refusal(plan, None, 0, options.max_removals)
    else:
        facts = read_host_facts(host, manifest, auth, options.state_dir, now, learn=True, warn=options.warn)
        if facts.event_gap is not None:
            options.warn(facts.event_gap)
        decided = decide(manifest, facts, now, max_removals=options.max_removals)
        plan, planned = size_plan(host, facts, decided.plan, options.state_dir)
        refusal = decided.refusal
    if refusal is not None and not options.allow_large_removal:
        return ApplyOutcome(host.address, plan, LargeRemovalRefused.exit_code, refusal=refusal)
    if not plan.has_changes:
        empty = Report(host=plan.host, manifest_path=plan.manifest_path)
        if facts is not None:
            _record_usage(options, facts, empty, now)
        stale = stale_containers(manifest.declared.tags, facts.inventory) if manifest and facts else ()
        return ApplyOutcome(host.address, plan, ExitCode.OK, report=empty, stale=stale)
    if options.confirm is not None and _takes_away(plan) and not options.confirm(plan):
        if facts is not None:  # what the run learnt about usage is still worth keeping
            _record_usage(options, facts, Report(host=plan.host, manifest_path=plan.manifest_path), now)
        return ApplyOutcome(host.address, plan, ExitCode.OK, cancelled=True)
    listener.applying(plan)

    def result(step: StepResult) -> None:
        recorder.record(step)
        listener.step_result(step)

    interrupt = options.interrupt or Interrupt()  # one that never fires, without signal handlers
    puller = Puller(
        deadline=options.pull_timeout,
        auth=auth,
        on_event=listener.pull_event,
        sleep=interrupt.sleep,
        cancelled=lambda: interrupt.fired,
    )
    executor = Executor(
        host,
        pull_timeout=options.pull_timeout,
        puller=puller,
        parallelism=options.parallelism,
        refuse_stale=saved is not None,
        interrupt=interrupt,
        held=holds,  # a hold placed since the plan was made still keeps its image
        build_timeout=options.build_timeout,
        on_output=listener.build_output,
    )
    try:
        report = executor.apply(
            plan,
            on_result=result,
            measure=lambda: cached_disk_usage(host, options.state_dir).layers_size,
            planned=planned,
        )
    finally:
        listener.finished()
    if facts is not None:
        _record_usage(options, facts, report, now)
        _record_local_images(options, facts, report)
    stale = stale_after(host, manifest, facts, plan, report)
    return ApplyOutcome(host.address, plan, apply_exit_code(report), report=report, stale=stale)


def stale_after(
    host: DockerHost, manifest: Manifest | None, facts: HostFacts | None, plan: Plan, report: Report
) -> tuple[StaleContainer, ...]:
    """Containers running an image a declared tag (for a saved plan: a tag it pulled) left, after the run:
    read again when a pull moved something, else as the run found them. Never fails the apply.

    The containers are read first: when none was created from a declared tag, none can be stale,
    and the image list (the daemon's slowest answer on a large host) is not read again."""
    pulled = [r for r in report.results if r.step.makes_image and r.outcome is Outcome.DONE]
    if manifest is not None:
        declared: frozenset[str] = manifest.declared.tags
    else:
        declared = frozenset(key for s in plan.steps if s.action is Action.PULL and (key := tag_key(s.ref)))
    if not pulled and facts is not None:
        return stale_containers(declared, facts.inventory)
    try:
        containers = creation_names(host, host.list_containers())
        if not any(c.image_name and tag_key(c.image_name) in declared for c in containers):
            return ()
        fresh = Inventory(images=host.list_images(), containers=containers)
    except ReconcilerError:
        return ()
    return stale_containers(declared, fresh)


def _takes_away(plan: Plan) -> bool:
    """Whether a step that can run untags or removes: what is asked about before it runs."""
    return any(step.action in (Action.UNTAG, Action.REMOVE) for step in plan.runnable)


def _record_usage(options: ApplyOptions, facts: HostFacts, report: Report, now: float) -> None:
    """Store what an apply learnt (events, what it saw, where declared tags pointed before),
    and what it did: its pulls and tags (where the tags point after), the images it removed.
    Every apply does, retention or not: another manifest's keep_previous and min_age need it.
    Never raises."""
    # After the steps: later than this run's look at the host, so "after" wins over "before".
    done_at = max(epoch_now(), now + 0.001)
    done = [r for r in report.results if r.outcome is Outcome.DONE]
    pulled = {r.image_id: done_at for r in done if r.step.makes_image and r.image_id}
    tags = tuple(
        (tag, r.image_id, done_at)
        for r in done
        if (r.step.makes_image or r.step.action is Action.TAG) and r.image_id and (tag := tag_key(r.step.ref))
    )
    removed = {image_id: done_at for r in done for image_id in r.deleted}
    own = UsageFacts(uses=pulled, tags=tags, arrivals=pulled, departures=removed)
    try:
        options.while_live(
            lambda: record_usage(options.state_dir, facts.inventory.host, (*facts.learnt, own), now, anchor=facts.anchor)
        )
    except (sqlite3.Error, OSError, ReconcilerError) as exc:
        options.warn(
            f"The usage state could not be written to {options.state_dir} ({exc}); the apply itself is not affected."
        )


def _record_local_images(options: ApplyOptions, facts: HostFacts, report: Report) -> None:
    """Which image each loaded archive gave, and the parts of each build's inputs (to name what
    changed next time). Never raises: a record lost costs one more load, or a vaguer reason."""
    done = [r for r in report.results if r.outcome is Outcome.DONE and r.step.inputs]
    loaded = {r.step.inputs: r.image_id for r in done if r.step.action is Action.LOAD and r.step.inputs and r.image_id}
    built = {
        r.step.inputs: parts
        for r in done
        if r.step.action is Action.BUILD and r.step.inputs
        if facts.local is not None and (parts := facts.local.inputs.get(reference_key(r.step.ref))) is not None
    }
    try:
        options.while_live(lambda: record_local_images(options.state_dir, loaded, built))
    except OSError as exc:
        options.warn(
            f"What was built and loaded could not be recorded in {options.state_dir} ({exc}); the apply itself is not affected."
        )
