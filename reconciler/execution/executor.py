"""Carry out a plan against the daemon: the only module that changes images.

Safety rules, each from a way Docker tooling has hurt people:
- ``force`` is never sent to image delete: it removes images that stopped
  containers still need. A conflict is reported, not overridden.
- Before every destructive step the image is read again: a tag that moved, an
  image that gained a tag or a container since the plan is skipped and said so.
- A pull is streamed and any error in the stream fails it (docker-py's
  high-level pull can hand back the old image instead), under a deadline;
  :mod:`reconciler.daemon.pulling` does it, retrying transient registry failures.
- One step failing does not stop the others; steps that depend on it are skipped.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Mapping

from reconciler.daemon.host import DaemonRefused, DockerHost, ImageConflict, ImageDetails
from reconciler.daemon.pulling import FailureKind, Puller, PullFailed
from reconciler.errors import DaemonUnavailable
from reconciler.execution.defaults import DEFAULT_BUILD_TIMEOUT, DEFAULT_PULL_TIMEOUT
from reconciler.execution.image_rules import (
    dropped_references,
    has_digest,
    image_tags,
    is_platform,
    layer_chain_ids,
    survives_untag,
)
from reconciler.execution.image_snapshot import ImageSnapshot
from reconciler.execution.interrupt import Interrupt
from reconciler.execution.local_images import ImageMaker, OutputCallback
from reconciler.execution.saved_plans import StaleChecks
from reconciler.execution.step_errors import AGAIN, StepFailed, StepSkipped, StepStale
from reconciler.model.inventory import ContainerRecord, short_id
from reconciler.model.plan import Action, Plan, Step
from reconciler.model.reference import Reference, parse_reference, reference_key
from reconciler.model.report import Outcome, Report, StepResult
from reconciler.model.units import format_size

DAEMON_LOST = "not done: the daemon stopped answering"
CONTAINERS_FRESH_FOR = 1.0  # seconds a container list serves removal checks before it is read again

StepCallback = Callable[[StepResult], None]


class Executor(StaleChecks):
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
        build_timeout: float = DEFAULT_BUILD_TIMEOUT,
        on_output: OutputCallback | None = None,
    ) -> None:
        """Pulls run ``parallelism`` at a time, each on its own session of ``host``. When
        ``interrupt`` fires, running pulls are cut and no further step starts. ``held`` says why
        an image is held now (None: it is not); asked once per image, before its first untag or removal.
        Builds and loads run one at a time, each within ``build_timeout``; ``on_output`` gets their output."""
        self.host = host
        self.maker = ImageMaker(host, build_timeout, on_output)
        self.held = held
        self._hold_gates: dict[str, str | None] = {}  # image id -> why it is held (None: it is not)
        self.interrupt = interrupt
        self.pull_timeout = pull_timeout
        self.puller = puller or Puller(deadline=pull_timeout)
        self.parallelism = max(1, parallelism)
        # Saved plans: check what each step expects of the host first; refuse it as stale if changed.
        self.refuse_stale = refuse_stale
        self._containers: tuple[float, tuple[ContainerRecord, ...]] | None = (
            None  # (read at, containers)
        )
        self._snapshot: ImageSnapshot | None = (
            None  # the image list this batch of destructive steps checks against
        )
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

    def apply(
        self,
        plan: Plan,
        on_result: StepCallback | None = None,
        measure: Callable[[], int] | None = None,
    ) -> Report:
        """Run every step of ``plan`` and report each outcome, in plan order.

        Runnable pulls go first, ``parallelism`` at a time; tags, untags and removes
        then run one by one in order. ``measure`` (the bytes of all image layers) is read
        just before the first removal and after the last, so the report can say what the
        removals really freed, pulls left out.
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
        lost: StepResult | None = None  # the first step that found the daemon gone
        for step in plan.steps:
            done_before = pulled.get(step) or stale.get(step)
            if lost is not None:
                result = StepResult(step, Outcome.SKIPPED, DAEMON_LOST, daemon_lost=True)
            elif self._interrupted and not done_before:
                result = StepResult(step, Outcome.SKIPPED, f"not done: {self._interrupted}")
            else:
                if measure and before is None and step.action is Action.REMOVE and not step.blocked:
                    before = _measured(measure)
                    if before is None:
                        measure = None  # no figure before, none after: the removals still run
                result = stale.get(step) or pulled.get(step) or self._run(step, failed_refs)
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
        freed = None if lost else _measured_freed(results, before, measure)
        return Report(
            results=tuple(results),
            host=plan.host,
            manifest_path=plan.manifest_path,
            measured_freed=freed,
            interrupted=self.interrupt.signal if self.interrupt and self.interrupt.fired else None,
        )

    @property
    def _interrupted(self) -> str | None:
        """Why no further step starts, once an interrupt fired."""
        if self.interrupt is None or not self.interrupt.fired:
            return None
        return f"the run was interrupted ({_signal_name(self.interrupt.signal)})"

    def _run_pulls(self, steps: list[Step]) -> dict[Step, StepResult]:
        """Every pull, ``parallelism`` at a time, each worker on its own session when there are several.

        The workers are daemon threads and this thread only waits for them: when an interrupt
        fires it stops waiting at once (a pull still waiting for the daemon's first answer cannot
        be cut any sooner) and the unfinished pulls are reported as not done.
        """
        pending = list(reversed(steps))
        results: dict[Step, StepResult] = {}
        lock = threading.Lock()
        own_sessions = self.parallelism > 1 and len(steps) > 1

        def next_step() -> Step | None:
            with lock:
                return pending.pop() if pending else None

        def work() -> None:
            while (step := next_step()) is not None:
                result = (
                    self._pull_on_session(step)
                    if own_sessions
                    else self._pull_watched(step, self.host)
                )
                with lock:
                    results[step] = result
                    if result.daemon_lost:
                        pending.clear()  # a daemon that stopped answering gets no further pull

        workers = [
            threading.Thread(target=work, name="pull", daemon=True)
            for _ in range(min(self.parallelism, len(steps)))
        ]
        for worker in workers:
            worker.start()
        while any(worker.is_alive() for worker in workers) and not self._interrupted:
            for worker in workers:
                worker.join(timeout=0.1)
        with lock:
            pending.clear()  # an interrupt: no worker starts another pull
            done = dict(results)
        if self._interrupted:
            why, lost = f"not done: {self._interrupted}; the pull was cancelled", False
        else:
            why, lost = DAEMON_LOST, True
        return {
            step: done.get(step) or StepResult(step, Outcome.SKIPPED, why, daemon_lost=lost)
            for step in steps
        }

    def _pull_on_session(self, step: Step) -> StepResult:
        try:
            session = self.host.session()
        except DaemonUnavailable as exc:
            return StepResult(step, Outcome.FAILED, str(exc), daemon_lost=True)
        try:
            return self._pull_watched(step, session)
        finally:
            session.close()

    def _pull_watched(self, step: Step, host: DockerHost) -> StepResult:
        """One pull step on ``host``, whose running stream an interrupt cuts."""
        if self._interrupted:
            return StepResult(step, Outcome.SKIPPED, f"not done: {self._interrupted}")
        if self.interrupt is not None:
            self.interrupt.watch(host)
        try:
            return self._guarded(step, lambda: self._pull(step, host))
        finally:
            if self.interrupt is not None:
                self.interrupt.forget(host)

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

    def _hold_gate(self, step: Step) -> StepResult | None:
        """A hold placed since the plan was made keeps the image whole: asked before its first
        untag or removal, and that answer serves its other steps (a removal is one unit)."""
        if self.held is None or not step.is_destructive or not step.image_id:
            return None
        if step.image_id not in self._hold_gates:
            try:
                self._hold_gates[step.image_id] = self.held(step.image_id)
            except DaemonUnavailable as exc:
                return _daemon_lost(step, exc)
            except DaemonRefused as exc:
                return StepResult(
                    step,
                    Outcome.SKIPPED,
                    f"kept: the holds could not be checked ({exc.explanation})",
                )
        why = self._hold_gates[step.image_id]
        return None if why is None else StepResult(step, Outcome.SKIPPED, why)

    def _held_for_replacement(self, step: Step) -> StepResult | None:
        """Make before break: a reference of a repository whose pull or tag failed in this run stays,
        with the image behind it, until what was to replace it has arrived."""
        if step.ref.startswith("sha256:"):
            return None
        name = parse_reference(step.ref).name
        if name not in self._failed_repos:
            return None
        familiar = parse_reference(step.ref).familiar_name
        return StepResult(
            step,
            Outcome.SKIPPED,
            f"kept: a {self._what_failed(name)} of {familiar} failed in this run, so nothing it was to replace is touched",
            rate_limited=self._failed_repos[name],
        )

    def _what_failed(self, name: str) -> str:
        verbs = {"built": "build", "loaded": "load"}
        made = {verbs[v] for k, v in self._not_made.items() if parse_reference(k).name == name}
        return " or ".join(sorted(made)) if made else "pull or tag"

    def _removal_gate(self, step: Step) -> StepResult | None:
        """A removal is one unit: before the first untag of an image the plan removes, the image is
        checked once for containers; one in use keeps every tag, none of its steps run."""
        image_id = step.image_id
        if image_id is None or image_id not in self._removed:
            return None
        if image_id not in self._gates:
            # The container list of the last second serves, as for every removal check: a container
            # made after it gets the final delete refused (409), and the untagged tags are put back.
            try:
                users = self._containers_using(image_id)
            except DaemonUnavailable as exc:
                return _daemon_lost(step, exc)
            except DaemonRefused as exc:
                return StepResult(
                    step, Outcome.FAILED, f"the containers could not be listed: {exc.explanation}"
                )
            self._gates[image_id] = ", ".join(users) if users else None
        users_text = self._gates[image_id]
        if users_text is None:
            return None
        if self.refuse_stale:
            why = f"the image is now used by container {users_text}, so it is kept with all its tags{AGAIN}"
            return StepResult(step, Outcome.STALE, why)
        why = f"in use by container {users_text}; an image a container uses is never removed, and none of its tags go"
        return StepResult(step, Outcome.SKIPPED, why)

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
            return _daemon_lost(step, exc)

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

    # --- pull and tag ---------------------------------------------------------

    def _pull(self, step: Step, host: DockerHost) -> StepResult:
        ref = parse_reference(step.ref)
        stats = self.puller.pull(host, ref, step.platform)
        image = host.inspect_image(ref.familiar())
        if image is None:
            raise StepFailed(
                f"the daemon reported the pull of {step.ref} as done, but has no such image"
            )
        if step.expected_digest and not has_digest(image, ref.name, step.expected_digest):
            raise StepFailed(f"{step.ref} was pulled but its content is not {step.expected_digest}")
        if step.platform and not is_platform(image, step.platform):
            found = "/".join(part for part in (image.os, image.architecture, image.variant) if part)
            undone = self._take_back(ref, image.id, step.image_id, host)
            raise StepFailed(
                f"{step.ref} was pulled for {found or 'an unknown platform'}, not the declared {step.platform}; {undone}"
            )
        detail = "pulled" if image.id != step.image_id else "pulled; the image did not change"
        return StepResult(
            step,
            Outcome.DONE,
            detail,
            image_id=image.id,
            bytes=image.size,
            seconds=stats.seconds,
            downloaded_bytes=stats.downloaded_bytes,
            all_layers_present=stats.all_layers_present,
        )

    @staticmethod
    def _take_back(ref: Reference, pulled: str, before: str | None, host: DockerHost) -> str:
        """Undo what a pull of the wrong platform did to the tag: back where it was, or gone."""
        assert ref.tag is not None or ref.digest is not None
        if pulled == before:
            return "the tag still points at the image it had"
        if before is not None and host.inspect_image(before) is not None and ref.tag is not None:
            host.tag(before, ref.name, ref.tag)
            return f"the tag points at {short_id(before)} again"
        host.delete(ref.familiar())
        return "the tag was taken off again"

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
        self._snapshot = None
        return StepResult(
            step, Outcome.DONE, f"now points at {short_id(source.id)}", image_id=source.id
        )

    # --- untag and remove -----------------------------------------------------

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

    def _untag(self, step: Step) -> StepResult:
        image = self._look(step.ref)
        if image is None:
            return StepResult(step, Outcome.DONE, "already gone")
        if image.id != step.image_id:
            raise StepSkipped(
                f"{step.ref} now points at {short_id(image.id)}, not at the planned image; plan again"
            )
        if not survives_untag(image, step.ref):
            raise StepSkipped(
                f"{step.ref} is now the image's last tag: untagging it would remove the image; plan again"
            )
        deleted = self.host.delete(step.ref)
        if self._snapshot is not None:
            self._snapshot.deleted(step.ref, deleted)
        if image.id in self._removed:
            self._untagged.setdefault(image.id, []).append(step.ref)
        return StepResult(step, Outcome.DONE, "untagged; the image keeps its other tags")

    def _remove(self, step: Step) -> StepResult:
        assert step.image_id is not None
        image = self._look(step.image_id)
        if image is None:
            return StepResult(step, Outcome.DONE, "already gone")
        untagged = self._untag_if_kept(step, image)
        if untagged:
            return untagged
        # Tags the plan meant to move away and could not are no new tags: the removal waited on them.
        gained = (
            image_tags(image) - self._dropping.get(step.image_id, set()) - set(self._failed_refs)
        )
        if gained and reference_key(step.ref) not in image_tags(image):
            # A dangling image's removal (by digest reference or id), and the image now carries a
            # tag the plan keeps (a pull of this very run may have landed on it): it is no
            # dangling image any more, so it is left alone, as `docker image prune` would.
            names = ", ".join(sorted(parse_reference(k).familiar() for k in gained))
            return StepResult(
                step,
                Outcome.DONE,
                f"left alone: it now carries {names}, so it is not dangling",
                bytes=0,
            )
        self._check_removable(step, image)
        try:
            deleted = self._delete(step.ref)
        except StepSkipped as exc:
            # A container came in the last instant: the daemon kept the image; its tags come back too.
            raise StepSkipped(f"{exc}{self._restoreimage_tags(step.image_id)}") from None
        if step.image_id not in deleted:
            deleted += self._delete_leftover_digests(step)
        # The daemon lists the layers it deleted beside the images: the report counts images.
        layers = layer_chain_ids(image.layers)
        known = self._snapshot.image_ids if self._snapshot is not None and not layers else None
        deleted = tuple(
            d
            for d in deleted
            if d not in layers and (known is None or d in known or d == step.image_id)
        )
        if step.image_id not in deleted:
            left = self._inspect(step.image_id)
            if left is None:
                return StepResult(step, Outcome.DONE, "removed", deleted=deleted, bytes=step.bytes)
            if not image_tags(left) and not left.repo_digests:
                # Docker keeps an untagged image that other images are built on; it goes with the last of them.
                detail = "untagged; the image stays as the base of other images and goes with the last of them"
                return StepResult(step, Outcome.DONE, detail, deleted=deleted, bytes=0)
            if not image_tags(left):
                # Pulled by digest from a repository this plan does not touch: that reference keeps it.
                held = ", ".join(sorted(left.repo_digests))
                return StepResult(
                    step, Outcome.DONE, f"untagged; the image stays, held by {held}", bytes=0
                )
            raise StepFailed(
                f"untagged {step.ref}, but the daemon kept image {short_id(step.image_id)}"
            )
        return StepResult(step, Outcome.DONE, "removed", deleted=deleted, bytes=step.bytes)

    def _untag_if_kept(
        self, step: Step, image: ImageDetails, *, digests: bool = False
    ) -> StepResult | None:
        """Drop just the reference when the image gained another tag since the plan.

        A pull in this very run can land on the image a removal targets; the reference
        still goes, but deleting it now only untags and the image stays, as Docker does.
        ``digests``: a digest reference is dropped so too (a blocked untag's; a dangling
        image's removal by digest is left alone instead, see :meth:`_remove`).
        """
        key = reference_key(step.ref)
        held = image_tags(image) | (
            {reference_key(d) for d in image.repo_digests} if digests else set()
        )
        kept_by = image_tags(image) - {key}
        if not kept_by or key not in held:
            return None
        self._delete(step.ref)
        names = ", ".join(sorted(parse_reference(k).familiar() for k in kept_by))
        return StepResult(
            step,
            Outcome.DONE,
            f"untagged; the image stays, as it now also carries {names}",
            bytes=0,
        )

    def _check_removable(self, step: Step, image: ImageDetails) -> None:
        """Refuse a removal when the image changed since the plan: new tags or new containers."""
        extra = image_tags(image) - {reference_key(step.ref)}
        if extra:
            names = ", ".join(sorted(parse_reference(k).familiar() for k in extra))
            # A tag this plan meant to move away stays when its pull or tag failed: the removal
            # waited on that step, and was stopped by the same rate limit if that was all.
            waited_on = [self._failed_refs.get(k) for k in extra]
            rate_limited = all(flag is True for flag in waited_on)
            raise StepSkipped(
                f"the image now also carries {names}; plan again", rate_limited=rate_limited
            )
        users = self._containers_using(str(step.image_id))
        if users:
            raise StepSkipped(
                f"in use by container {', '.join(users)}; an image a container uses is never removed"
            )

    def _restoreimage_tags(self, image_id: str) -> str:
        """Put back the tags this image's removal took before the daemon refused the last one."""
        restored = []
        for ref in self._untagged.pop(image_id, []):
            target = parse_reference(ref)
            if target.tag is None or self.host.inspect_image(ref) is not None:
                continue  # a digest reference cannot be put back; a tag taken by another image stays there
            self.host.tag(image_id, target.name, target.tag)
            self._snapshot = None
            restored.append(ref)
        return f"; its tags were put back: {', '.join(restored)}" if restored else ""

    def _containers_using(self, image_id: str) -> list[str]:
        """Names (and short ids) of the containers, running or stopped, that use ``image_id``.

        The container list is read again when it is older than CONTAINERS_FRESH_FOR, not
        before every removal: a container made in that window is still caught, because a
        delete without force is refused by the daemon for an image a container uses.
        """
        now = time.monotonic()
        if self._containers is None or now - self._containers[0] > CONTAINERS_FRESH_FOR:
            self._containers = (now, self.host.list_containers())
        return sorted(
            f"{c.name} ({c.short_id})" for c in self._containers[1] if c.image_id == image_id
        )

    def _delete(self, ref: str) -> tuple[str, ...]:
        """``DELETE /images/{ref}`` without force; returns the ids the daemon deleted."""
        try:
            deleted = self.host.delete(ref)
        except ImageConflict as exc:
            self._snapshot = None  # the daemon knows something the list did not: read it again
            raise StepSkipped(f"the daemon refused: {exc.explanation}") from exc
        if self._snapshot is not None:
            self._snapshot.deleted(ref, deleted)
        return deleted

    def _delete_leftover_digests(self, step: Step) -> tuple[str, ...]:
        """Digest references of other repositories keep an untagged image; drop them too."""
        assert step.image_id is not None
        image = self._inspect(step.image_id)
        if image is None:
            return (step.image_id,)
        if image_tags(image):
            return ()
        # Only references of repositories this plan drops from the image: another repository's
        # digest reference is not ours to delete, and keeps the image.
        ours = {
            parse_reference(k).name
            for k in self._dropping.get(step.image_id, set())
            if "@" in k or ":" in k
        }
        leftovers = sorted(image.repo_digests)
        if any(parse_reference(r).name not in ours for r in leftovers):
            return ()
        deleted: tuple[str, ...] = ()
        for ref in leftovers:
            deleted += self._delete(ref)
        return deleted

    def _inspect(self, name: str) -> ImageDetails | None:
        return self.host.inspect_image(name)

    def _look(self, name: str) -> ImageDetails | None:
        """For an untag's or a removal's checks: the image ``name`` points at, from the image list of
        this batch of steps (read again, with the containers, when it has served its batch)."""
        if self.refuse_stale:
            return self._inspect(
                name
            )  # a saved plan's steps are each checked against the daemon itself
        now = time.monotonic()
        if self._snapshot is None or not self._snapshot.serves(now):
            self._snapshot = ImageSnapshot(self.host.list_images(), now)
            if self._containers is None or now - self._containers[0] > CONTAINERS_FRESH_FOR:
                self._containers = (now, self.host.list_containers())
        return self._snapshot.find(name)


def _daemon_lost(step: Step, exc: DaemonUnavailable) -> StepResult:
    """The step's result when the daemon stopped answering: it failed, and no further step can run."""
    return StepResult(
        step, Outcome.FAILED, f"lost the connection to the daemon: {exc}", daemon_lost=True
    )


def _signal_name(number: int | None) -> str:
    try:
        return signal.Signals(number).name if number is not None else "interrupted"
    except ValueError:
        return f"signal {number}"


def _measured(measure: Callable[[], int]) -> int | None:
    """The bytes of all image layers before the removals; None when the daemon would not say (gone,
    or a ``/system/df`` busy for the whole deadline), or says 0 with images to remove (Podman reports
    no layer sizes: "freed 0 B" would be wrong)."""
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
