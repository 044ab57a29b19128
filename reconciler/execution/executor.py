"""Carry out a plan against the daemon: the only place that changes images.

The run itself lives here (the steps in plan order, the report); the step kinds live beside
it: :mod:`pull_steps`, :mod:`removal_gates` (holds, make before break, containers) and
:mod:`removal_steps` (untag and remove), mixed into :class:`Executor`.

Safety rules, each from a way Docker tooling has hurt people:
- ``force`` is never sent to image delete: it removes images that stopped
  containers still need. A conflict is reported, not overridden.
- Before every destructive step the image is read again: a tag that moved, an
  image that gained a tag or a container since the plan is skipped and said so.
- A pull is streamed and any error in the stream fails it, under a deadline.
- One step failing does not stop the others; steps that depend on it are skipped.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping

from reconciler.daemon.host import DaemonRefused, DockerHost
from reconciler.daemon.pulling import FailureKind, Puller, PullFailed
from reconciler.errors import DaemonUnavailable
from reconciler.execution.batch_lists import BatchLists
from reconciler.execution.defaults import (
    DEFAULT_BUILD_TIMEOUT,
    DEFAULT_PULL_TIMEOUT,
    DEFAULT_REMOVAL_WORKERS,
)
from reconciler.execution.image_rules import (
    dropped_references,
    image_tags,
)
from reconciler.execution.interrupt import Interrupt
from reconciler.execution.local_images import ImageMaker, OutputCallback
from reconciler.execution.pull_steps import PullSteps
from reconciler.execution.removal_gates import RemovalGates
from reconciler.execution.removal_pool import RemovalPool, image_chains
from reconciler.execution.removal_steps import RemovalSteps
from reconciler.execution.saved_plans import StaleChecks
from reconciler.execution.step_errors import (
    DAEMON_LOST,
    StepFailed,
    StepSkipped,
    StepStale,
    daemon_lost,
)
from reconciler.model.inventory import ContainerRecord, Inventory, short_id
from reconciler.model.plan import Action, Plan, Step
from reconciler.model.reference import parse_reference, reference_key
from reconciler.model.report import Outcome, Report, StepResult
from reconciler.model.units import format_size

StepCallback = Callable[[StepResult], None]


class Executor(PullSteps, RemovalGates, RemovalSteps, StaleChecks):
    def __init__(
        self,
        host: DockerHost,
        pull_timeout: float = DEFAULT_PULL_TIMEOUT,
        *,
        puller: Puller | None = None,
        parallelism: int = 1,
        refuse_stale: bool = False,
        interrupt: Interrupt | None = None,
        held: Callable[[str], str | None] | None = None,
        removal_workers: int = DEFAULT_REMOVAL_WORKERS,
        build_timeout: float = DEFAULT_BUILD_TIMEOUT,
        on_output: OutputCallback | None = None,
    ) -> None:
        """Pulls run ``parallelism`` at a time, each on its own session of ``host``; untags and
        removals of different images ``removal_workers`` at a time (a saved plan's one by one).
        When ``interrupt`` fires, running pulls are cut and no further step starts. ``held`` says
        why an image is held now (None: it is not); asked once per image, before its first untag
        or removal. Builds and loads run one at a time, each within ``build_timeout``; ``on_output``
        gets their output."""
        self._host = host
        self._local = threading.local()  # a removal worker's own session of the daemon
        self.removal_workers = max(1, removal_workers)
        self.maker = ImageMaker(host, build_timeout, on_output)
        self.held = held
        self._hold_gates: dict[str, str | None] = {}  # image id -> why it is held (None: it is not)
        self._holds_lock = threading.Lock()
        self.interrupt = interrupt
        self.pull_timeout = pull_timeout
        self.puller = puller or Puller(deadline=pull_timeout)
        self.parallelism = max(1, parallelism)
        # Saved plans: check what each step expects of the host first; refuse it as stale if changed.
        self.refuse_stale = refuse_stale
        self._containers: tuple[float, tuple[ContainerRecord, ...]] | None = (
            None  # (read at, containers)
        )
        self._lists = BatchLists()  # the image list each batch of destructive steps checks against
        self._first_list = None
        self._failed_refs: Mapping[
            str, bool
        ] = {}  # refs whose pull or tag failed -> only rate-limited
        self._not_made: dict[str, str] = {}  # refs whose build or load failed -> "built" or "loaded"
        self._failed_repos: dict[str, bool] = {}  # repositories of those refs -> only rate-limited
        self._dropping: dict[
            str, set[str]
        ] = {}  # image id -> references the plan untags or removes
        self._removed: set[str] = set()  # images a runnable removal of the plan deletes
        self._gates: dict[
            str, str | None
        ] = {}  # image id -> why its removal does not start (None: it may)
        self._untagged: dict[
            str, list[str]
        ] = {}  # image id -> references its removal untagged so far

    @property
    def host(self) -> DockerHost:
        """The daemon, on the calling removal worker's own session when it has one."""
        own: DockerHost | None = getattr(self._local, "host", None)
        return own if own is not None else self._host

    def apply(
        self,
        plan: Plan,
        on_result: StepCallback | None = None,
        measure: Callable[[], int] | None = None,
        planned: Inventory | None = None,
    ) -> Report:
        """Run every step of ``plan`` and report each outcome, in plan order.

        Runnable pulls go first, ``parallelism`` at a time; tags then run one by one in order,
        untags and removes ``removal_workers`` at a time (the steps of one image in order, an
        image after those built on it), reported in plan order. ``measure`` (the bytes of all image layers) is read
        just before the first removal and after the last, so the report can say what the
        removals really freed, pulls left out. ``planned``: the inventory the plan was made from;
        when no step ran before the first untag or removal, its lists (read at most BATCH_SECONDS
        before) serve the first batch's checks and its ``layers_size`` is the figure before.
        """
        stale = self._stale_pulls(plan) if self.refuse_stale else {}
        pulled = self._run_pulls(
            [s for s in plan.steps if s.action is Action.PULL and not s.blocked and s not in stale]
        )
        # Reference of each pull or tag that did not happen -> True when only a rate limit stopped it.
        failed_refs: dict[str, bool] = {}
        self._failed_refs = (
            failed_refs  # read by removal checks: a tag that stayed because its move failed
        )
        self._dropping = dropped_references(plan)
        self._removed = {
            s.image_id for s in plan.runnable if s.action is Action.REMOVE and s.image_id
        }
        results: list[StepResult] = []
        before: int | None = None
        removing = False  # an untag or removal has started
        taken = False  # and the first took the plan's reads
        lost: StepResult | None = None  # the first step that found the daemon gone

        def record(result: StepResult) -> None:
            nonlocal lost
            step = result.step
            if result.outcome is not Outcome.DONE and (step.makes_image or step.action is Action.TAG):
                failed_refs[reference_key(step.ref)] = result.rate_limited
                if step.action in (Action.BUILD, Action.LOAD):
                    self._not_made[reference_key(step.ref)] = "built" if step.action is Action.BUILD else "loaded"
                name = parse_reference(step.ref).name
                self._failed_repos[name] = (
                    self._failed_repos.get(name, True) and result.rate_limited
                )
            if result.daemon_lost and lost is None:
                lost = result
            results.append(result)
            if on_result:
                on_result(result)

        def start_removals(removes: bool) -> None:
            """Before an untag or removal: at the first, the plan's reads are taken for the first
            batch when no step ran before; before the first removal, the layer bytes are measured,
            or taken from the plan's reads when those were (untags in between free no layer)."""
            nonlocal removing, taken, before, measure
            if not removing:
                removing = True
                taken = not results and planned is not None and self._take_plan_reads(planned)
            if removes and measure and before is None:
                before = _measured(measure, planned if taken else None)
                if before is None:
                    measure = None  # no figure before, none after: the removals still run

        steps = plan.steps
        position = 0
        while position < len(steps):
            step = steps[position]
            segment = self._removal_segment(steps, position)
            if lost is None and not self._interrupted and segment:
                start_removals(_removes(segment))
                self._run_segment(segment, failed_refs, record)
                position += len(segment)
                continue
            position += 1
            done_before = pulled.get(step) or stale.get(step)
            if lost is not None:
                result = StepResult(step, Outcome.SKIPPED, DAEMON_LOST, daemon_lost=True)
            elif self._interrupted and not done_before:
                result = StepResult(step, Outcome.SKIPPED, f"not done: {self._interrupted}")
            else:
                if step.action in (Action.UNTAG, Action.REMOVE) and not step.blocked:
                    start_removals(step.action is Action.REMOVE)
                result = stale.get(step) or pulled.get(step) or self._run(step, failed_refs)
            record(result)
        freed = None if lost else _measured_freed(results, before, measure)
        return Report(
            results=tuple(results),
            host=plan.host,
            manifest_path=plan.manifest_path,
            measured_freed=freed,
            interrupted=self.interrupt.signal if self.interrupt and self.interrupt.fired else None,
        )

    def _removal_segment(self, steps: tuple[Step, ...], start: int) -> tuple[Step, ...]:
        """The untags and removes from ``start`` on, when they are to run several at a time."""
        if self.removal_workers < 2 or self.refuse_stale:
            return ()
        end = start
        while end < len(steps) and steps[end].action in (Action.UNTAG, Action.REMOVE):
            end += 1
        return steps[start:end] if end - start > 1 else ()

    def _run_segment(
        self,
        segment: tuple[Step, ...],
        failed_refs: Mapping[str, bool],
        record: Callable[[StepResult], None],
    ) -> None:
        """Untags and removes a few at a time, each worker on its own session (see removal_pool).

        The image list read first serves the first batch's checks and says which images are
        built on which; when it cannot be read, the steps run one by one and say why themselves.
        """
        try:
            parents = {
                image.id: image.parent_id for image in self._read_first_list() if image.parent_id
            }
        except (DaemonRefused, DaemonUnavailable):
            parents = None
        chains = image_chains(segment, parents or {})
        if parents is None or len(chains) < 2:
            gone = False
            for step in segment:
                result = (
                    StepResult(step, Outcome.SKIPPED, DAEMON_LOST, daemon_lost=True)
                    if gone
                    else self._sequential(step, failed_refs)
                )
                gone = gone or result.daemon_lost
                record(result)
            return
        # Every worker on a session of its own: the run's first connection stays with the holds check.
        hosts: list[DockerHost] = []
        for _ in range(min(self.removal_workers, len(chains))):
            try:
                hosts.append(self._host.session())
            except DaemonUnavailable:
                break  # fewer workers; a daemon that went away shows in the steps' results
        if not hosts:
            hosts = [self._host]

        # With several workers, one reads the next batch's image list while the others go on.
        self._lists.ahead = len(hosts) > 1

        def run(step: Step, host: DockerHost) -> StepResult:
            self._local.host = host
            return self._run(step, failed_refs)

        try:
            RemovalPool(segment, chains, run, lambda: self._interrupted).run(hosts, record)
        finally:
            for session in hosts:
                if session is not self._host:
                    session.close()

    def _sequential(self, step: Step, failed_refs: Mapping[str, bool]) -> StepResult:
        """One step of a segment run one by one: not started once the daemon is lost or interrupted."""
        if self._interrupted:
            return StepResult(step, Outcome.SKIPPED, f"not done: {self._interrupted}")
        return self._run(step, failed_refs)

    @property
    def _interrupted(self) -> str | None:
        """Why no further step starts, once an interrupt fired."""
        if self.interrupt is None or not self.interrupt.fired:
            return None
        return f"the run was interrupted ({_signal_name(self.interrupt.signal)})"

    def _run(self, step: Step, failed_refs: Mapping[str, bool]) -> StepResult:
        held = self._hold_gate(step)
        if held is not None:
            return held
        if step.blocked:
            return self._blocked(step)
        if step.source and reference_key(step.source) in failed_refs:
            return StepResult(
                step,
                Outcome.SKIPPED,
                f"{step.source} was not {self._not_made.get(reference_key(step.source), 'fetched')}, so nothing was tagged",
                rate_limited=failed_refs[reference_key(step.source)],
            )
        handler = {
            Action.PULL: lambda s: self._pull(s, self.host),
            Action.BUILD: lambda s: self._made_watched(s, self.maker.build),
            Action.LOAD: lambda s: self._made_watched(s, self.maker.load),
            Action.TAG: self._tag,
            Action.UNTAG: self._untag,
            Action.REMOVE: self._remove,
            Action.PRUNE_CACHE: self._prune_cache,
        }[step.action]
        if step.is_destructive:
            held = self._held_for_replacement(step) or self._removal_gate(step)
            if held is not None:
                return held
        if self.refuse_stale and not step.makes_image:  # pulls were checked before they started
            return self._guarded(step, lambda: self._fresh(step, handler))
        return self._guarded(step, lambda: handler(step))

    def _made_watched(self, step: Step, make: Callable[[Step], StepResult]) -> StepResult:
        """A build or load, which an interrupt cuts (a BuildKit build; the legacy builder's and a
        load's requests run to their end): then it is not done, rather than failed."""
        if self.interrupt is not None:
            self.interrupt.watch(self.host)
        try:
            result = make(step)
        finally:
            if self.interrupt is not None:
                self.interrupt.forget(self.host)
        if result.outcome is Outcome.FAILED and self._interrupted:
            return StepResult(step, Outcome.SKIPPED, f"not done: {self._interrupted}; the {step.action.value} was cancelled")
        return result

    def _guarded(self, step: Step, run: Callable[[], StepResult]) -> StepResult:
        """Run one step; every way it can fail becomes its StepResult."""
        try:
            return run()
        except PullFailed as exc:
            if exc.kind is FailureKind.CANCELLED:
                return StepResult(step, Outcome.SKIPPED, f"not done: {exc}")
            return StepResult(
                step,
                Outcome.FAILED,
                str(exc),
                rate_limited=exc.kind is FailureKind.RATE_LIMITED,
                daemon_lost=exc.kind is FailureKind.DAEMON_LOST,
            )
        except StepStale as exc:
            return StepResult(step, Outcome.STALE, str(exc))
        except StepSkipped as exc:
            return StepResult(step, Outcome.SKIPPED, str(exc), rate_limited=exc.rate_limited)
        except StepFailed as exc:
            return StepResult(step, Outcome.FAILED, str(exc))
        except DaemonRefused as exc:
            return StepResult(step, Outcome.FAILED, exc.explanation)
        except DaemonUnavailable as exc:
            return daemon_lost(step, exc)

    def _blocked(self, step: Step) -> StepResult:
        """A blocked step is not run, but for one case: an image a container uses, blocked because
        losing these tags would remove it, that this run gave a tag the plan keeps (a pull landed
        on it). It stays whatever happens, so its dropped references may go as plain untags."""
        if step.is_destructive and step.image_id:
            try:
                image = self._look(step.image_id)
                kept = (
                    image_tags(image) - self._dropping.get(step.image_id, set()) if image else set()
                )
                untagged = (
                    self._untag_if_kept(step, image, digests=True) if image and kept else None
                )
            except (StepSkipped, DaemonRefused, DaemonUnavailable):
                untagged = None
            if untagged:
                return untagged
        assert step.blocked is not None
        return StepResult(step, Outcome.SKIPPED, step.blocked)

    def _tag(self, step: Step) -> StepResult:
        assert step.source is not None
        source = self._inspect(step.source)
        if source is None:
            raise StepFailed(f"{step.source} is not on the host, so {step.ref} cannot point at it")
        if step.image_id and source.id != step.image_id:
            raise StepSkipped(
                f"{step.source} now points at {short_id(source.id)}, not at the planned image; plan again"
            )
        target = parse_reference(step.ref)
        assert target.tag is not None
        self.host.tag(source.id, target.name, target.tag)
        self._lists.invalidate()
        return StepResult(
            step, Outcome.DONE, f"now points at {short_id(source.id)}", image_id=source.id
        )

    def _prune_cache(self, step: Step) -> StepResult:
        """One build cache record, by id; the bytes are those the daemon says it reclaimed."""
        pruned = self.host.prune_build_cache(step.ref)
        if step.ref not in pruned.deleted:
            why = "kept: BuildKit did not prune it (a build uses it now, or it is gone already)"
            return StepResult(step, Outcome.SKIPPED, why)
        return StepResult(
            step,
            Outcome.DONE,
            f"pruned; the daemon reclaimed {format_size(pruned.reclaimed)}",
            bytes=pruned.reclaimed,
        )


def _removes(segment: tuple[Step, ...]) -> bool:
    return any(step.action is Action.REMOVE and not step.blocked for step in segment)


def _signal_name(number: int | None) -> str:
    try:
        return signal.Signals(number).name if number is not None else "interrupted"
    except ValueError:
        return f"signal {number}"


def _measured(measure: Callable[[], int], planned: Inventory | None = None) -> int | None:
    """The bytes of all image layers before the removals; None when the daemon would not say (gone,
    or a ``/system/df`` busy for the whole deadline), or says 0 with images to remove (a daemon that
    cannot size its layers: "freed 0 B" would be wrong). ``planned``: the plan's inventory, whose
    reads the first batch took: the figure read with them, when there is one."""
    if planned is not None and planned.layers_size is not None:
        found = planned.layers_size
    else:
        try:
            found = measure()
        except (DaemonRefused, DaemonUnavailable):
            return None
    return found if found > 0 else None


def _measured_freed(
    results: list[StepResult], before: int | None, measure: Callable[[], int] | None
) -> int | None:
    """Layer bytes gone over the removals; None when nothing was deleted or the figure is not one.

    Another client pulling at the same time can make the difference meaningless (even
    negative): then there is no measured figure, rather than a wrong one.
    """
    if before is None or measure is None or not any(r.deleted for r in results):
        return None
    try:
        freed = before - measure()
    except (DaemonRefused, DaemonUnavailable):
        return None
    return freed if freed >= 0 else None
