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

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from reconciler.daemon.host import DaemonRefused, DockerHost, ImageConflict, ImageDetails
from reconciler.daemon.pulling import FailureKind, Puller, PullFailed
from reconciler.errors import DaemonUnavailable
from reconciler.model.inventory import ContainerRecord, short_id
from reconciler.model.plan import Action, Plan, Step
from reconciler.model.reference import parse_reference, reference_key
from reconciler.model.report import Outcome, Report, StepResult

DEFAULT_PULL_TIMEOUT = 900.0  # seconds for one whole pull, retries included
DEFAULT_PARALLELISM = 4  # pulls at once

CONTAINERS_FRESH_FOR = 1.0  # seconds a container list serves removal checks before it is read again

StepCallback = Callable[[StepResult], None]


class StepFailed(Exception):
    """A step could not be done; the message is the sentence for the report."""


class StepSkipped(Exception):
    """A step was not run for safety; the message says why."""

    def __init__(self, message: str, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.rate_limited = rate_limited  # it waited on a pull that only a registry rate limit stopped


class StepStale(Exception):
    """A saved plan's step expected another host state; the message says what changed."""


class Executor:
    def __init__(
        self,
        host: DockerHost,
        pull_timeout: float = DEFAULT_PULL_TIMEOUT,
        *,
        puller: Puller | None = None,
        parallelism: int = 1,
        refuse_stale: bool = False,
    ) -> None:
        """Pulls run ``parallelism`` at a time, each on its own session of ``host``."""
        self.host = host
        self.pull_timeout = pull_timeout
        self.puller = puller or Puller(deadline=pull_timeout)
        self.parallelism = max(1, parallelism)
        # Saved plans: check what each step expects of the host first; refuse it as stale if changed.
        self.refuse_stale = refuse_stale
        self._containers: tuple[float, tuple[ContainerRecord, ...]] | None = None  # (read at, containers)
        self._failed_refs: Mapping[str, bool] = {}  # refs whose pull or tag failed -> only rate-limited
        self._dropping: dict[str, set[str]] = {}  # image id -> references the plan untags or removes

    def apply(
        self, plan: Plan, on_result: StepCallback | None = None, measure: Callable[[], int] | None = None
    ) -> Report:
        """Run every step of ``plan`` and report each outcome, in plan order.

        Runnable pulls go first, ``parallelism`` at a time; tags, untags and removes
        then run one by one in order. ``measure`` (the bytes of all image layers) is read
        just before the first removal and after the last, so the report can say what the
        removals really freed, pulls left out.
        """
        stale = self._stale_pulls(plan) if self.refuse_stale else {}
        pulled = self._run_pulls([s for s in plan.steps if s.action is Action.PULL and not s.blocked and s not in stale])
        # Reference of each pull or tag that did not happen -> True when only a rate limit stopped it.
        failed_refs: dict[str, bool] = {}
        self._failed_refs = failed_refs  # read by removal checks: a tag that stayed because its move failed
        self._dropping = _dropped_references(plan)
        results = []
        before: int | None = None
        for step in plan.steps:
            if measure and before is None and step.action is Action.REMOVE and not step.blocked:
                before = _measured(measure)
                if before is None:
                    measure = None  # no figure before, none after: the removals still run
            result = stale.get(step) or pulled.get(step) or self._run(step, failed_refs)
            if result.outcome is not Outcome.DONE and step.action in (Action.PULL, Action.TAG):
                failed_refs[reference_key(step.ref)] = result.rate_limited
            results.append(result)
            if on_result:
                on_result(result)
        freed = _measured_freed(results, before, measure)
        return Report(results=tuple(results), host=plan.host, manifest_path=plan.manifest_path, measured_freed=freed)

    def _run_pulls(self, steps: list[Step]) -> dict[Step, StepResult]:
        if self.parallelism == 1 or len(steps) <= 1:
            return {step: self._run(step, {}) for step in steps}

        def pull_on_own_client(step: Step) -> StepResult:
            try:
                session = self.host.session()
            except DaemonUnavailable as exc:
                return StepResult(step, Outcome.FAILED, str(exc), daemon_lost=True)
            try:
                return self._guarded(step, lambda: self._pull(step, session))
            finally:
                session.close()

        with ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="pull") as pool:
            return dict(zip(steps, pool.map(pull_on_own_client, steps), strict=True))

    def _run(self, step: Step, failed_refs: Mapping[str, bool]) -> StepResult:
        if step.blocked:
            return self._blocked(step)
        if step.source and reference_key(step.source) in failed_refs:
            return StepResult(
                step,
                Outcome.SKIPPED,
                f"{step.source} was not fetched, so nothing was tagged",
                rate_limited=failed_refs[reference_key(step.source)],
            )
        handler = {
            Action.PULL: lambda s: self._pull(s, self.host),
            Action.TAG: self._tag,
            Action.UNTAG: self._untag,
            Action.REMOVE: self._remove,
        }[step.action]
        if self.refuse_stale and step.action is not Action.PULL:  # pulls were checked before they started
            return self._guarded(step, lambda: self._fresh(step, handler))
        return self._guarded(step, lambda: handler(step))

    def _guarded(self, step: Step, run: Callable[[], StepResult]) -> StepResult:
        """Run one step; every way it can fail becomes its StepResult."""
        try:
            return run()
        except PullFailed as exc:
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
            return StepResult(step, Outcome.FAILED, f"lost the connection to the daemon: {exc}", daemon_lost=True)

    def _blocked(self, step: Step) -> StepResult:
        """A blocked step is not run, but for one case: an image a container uses, blocked because
        losing these tags would remove it, that this run gave a tag the plan keeps (a pull landed
        on it). It stays whatever happens, so its dropped references may go as plain untags."""
        if step.is_destructive and step.image_id:
            try:
                image = self._inspect(step.image_id)
                kept = _tags(image) - self._dropping.get(step.image_id, set()) if image else set()
                untagged = self._untag_if_kept(step, image) if image and kept else None
            except (StepSkipped, DaemonRefused, DaemonUnavailable):
                untagged = None
            if untagged:
                return untagged
        assert step.blocked is not None
        return StepResult(step, Outcome.SKIPPED, step.blocked)

    # --- pull and tag ---------------------------------------------------------

    def _pull(self, step: Step, host: DockerHost) -> StepResult:
        ref = parse_reference(step.ref)
        self.puller.pull(host, ref, step.platform)
        image = host.inspect_image(ref.familiar())
        if image is None:
            raise StepFailed(f"the daemon reported the pull of {step.ref} as done, but has no such image")
        if step.expected_digest and not _has_digest(image, ref.name, step.expected_digest):
            raise StepFailed(f"{step.ref} was pulled but its content is not {step.expected_digest}")
        detail = "pulled" if image.id != step.image_id else "pulled; the image did not change"
        return StepResult(step, Outcome.DONE, detail, image_id=image.id, bytes=image.size)

    def _tag(self, step: Step) -> StepResult:
        assert step.source is not None
        source = self._inspect(step.source)
        if source is None:
            raise StepFailed(f"{step.source} is not on the host, so {step.ref} cannot point at it")
        if step.image_id and source.id != step.image_id:
            raise StepSkipped(f"{step.source} now points at {short_id(source.id)}, not at the planned image; plan again")
        target = parse_reference(step.ref)
        assert target.tag is not None
        self.host.tag(source.id, target.name, target.tag)
        return StepResult(step, Outcome.DONE, f"now points at {short_id(source.id)}", image_id=source.id)

    # --- untag and remove -----------------------------------------------------

    def _untag(self, step: Step) -> StepResult:
        image = self._inspect(step.ref)
        if image is None:
            return StepResult(step, Outcome.DONE, "already gone")
        if image.id != step.image_id:
            raise StepSkipped(f"{step.ref} now points at {short_id(image.id)}, not at the planned image; plan again")
        if not _survives_untag(image, step.ref):
            raise StepSkipped(f"{step.ref} is now the image's last tag: untagging it would remove the image; plan again")
        self.host.delete(step.ref)
        return StepResult(step, Outcome.DONE, "untagged; the image keeps its other tags")

    def _remove(self, step: Step) -> StepResult:
        assert step.image_id is not None
        image = self._inspect(step.image_id)
        if image is None:
            return StepResult(step, Outcome.DONE, "already gone")
        untagged = self._untag_if_kept(step, image)
        if untagged:
            return untagged
        # Tags the plan meant to move away and could not are no new tags: the removal waited on them.
        gained = _tags(image) - self._dropping.get(step.image_id, set()) - set(self._failed_refs)
        if gained and reference_key(step.ref) not in _tags(image):
            # A dangling image's removal (by digest reference or id), and the image now carries a
            # tag the plan keeps (a pull of this very run may have landed on it): it is no
            # dangling image any more, so it is left alone, as `docker image prune` would.
            names = ", ".join(sorted(parse_reference(k).familiar() for k in gained))
            return StepResult(step, Outcome.DONE, f"left alone: it now carries {names}, so it is not dangling", bytes=0)
        self._check_removable(step, image)
        deleted = self._delete(step.ref)
        if step.image_id not in deleted:
            deleted += self._delete_leftover_digests(step)
        if step.image_id not in deleted:
            left = self._inspect(step.image_id)
            if left is None:
                return StepResult(step, Outcome.DONE, "removed", deleted=deleted, bytes=step.bytes)
            if not _tags(left) and not left.repo_digests:
                # Docker keeps an untagged image that other images are built on; it goes with the last of them.
                detail = "untagged; the image stays as the base of other images and goes with the last of them"
                return StepResult(step, Outcome.DONE, detail, deleted=deleted, bytes=0)
            if not _tags(left):
                # Pulled by digest from a repository this plan does not touch: that reference keeps it.
                held = ", ".join(sorted(left.repo_digests))
                return StepResult(step, Outcome.DONE, f"untagged; the image stays, held by {held}", bytes=0)
            raise StepFailed(f"untagged {step.ref}, but the daemon kept image {short_id(step.image_id)}")
        return StepResult(step, Outcome.DONE, "removed", deleted=deleted, bytes=step.bytes)

    def _untag_if_kept(self, step: Step, image: ImageDetails) -> StepResult | None:
        """Drop just the reference when the image gained another tag since the plan.

        A pull in this very run can land on the image a removal targets; the reference
        still goes, but deleting it now only untags and the image stays, as Docker does.
        """
        kept_by = _tags(image) - {reference_key(step.ref)}
        if not kept_by or reference_key(step.ref) not in _tags(image):
            return None
        self._delete(step.ref)
        names = ", ".join(sorted(parse_reference(k).familiar() for k in kept_by))
        return StepResult(step, Outcome.DONE, f"untagged; the image stays, as it now also carries {names}", bytes=0)

    def _check_removable(self, step: Step, image: ImageDetails) -> None:
        """Refuse a removal when the image changed since the plan: new tags or new containers."""
        extra = _tags(image) - {reference_key(step.ref)}
        if extra:
            names = ", ".join(sorted(parse_reference(k).familiar() for k in extra))
            # A tag this plan meant to move away stays when its pull or tag failed: the removal
            # waited on that step, and was stopped by the same rate limit if that was all.
            waited_on = [self._failed_refs.get(k) for k in extra]
            rate_limited = all(flag is True for flag in waited_on)
            raise StepSkipped(f"the image now also carries {names}; plan again", rate_limited=rate_limited)
        users = self._containers_using(str(step.image_id))
        if users:
            raise StepSkipped(f"in use by container {', '.join(users)}; an image a container uses is never removed")

    def _containers_using(self, image_id: str) -> list[str]:
        """Names (and short ids) of the containers, running or stopped, that use ``image_id``.

        The container list is read again when it is older than CONTAINERS_FRESH_FOR, not
        before every removal: a container made in that window is still caught, because a
        delete without force is refused by the daemon for an image a container uses.
        """
        now = time.monotonic()
        if self._containers is None or now - self._containers[0] > CONTAINERS_FRESH_FOR:
            self._containers = (now, self.host.list_containers())
        return sorted(f"{c.name} ({c.short_id})" for c in self._containers[1] if c.image_id == image_id)

    def _delete(self, ref: str) -> tuple[str, ...]:
        """``DELETE /images/{ref}`` without force; returns the ids the daemon deleted."""
        try:
            return self.host.delete(ref)
        except ImageConflict as exc:
            raise StepSkipped(f"the daemon refused: {exc.explanation}") from exc

    def _delete_leftover_digests(self, step: Step) -> tuple[str, ...]:
        """Digest references of other repositories keep an untagged image; drop them too."""
        assert step.image_id is not None
        image = self._inspect(step.image_id)
        if image is None:
            return (step.image_id,)
        if _tags(image):
            return ()
        # Only references of repositories this plan drops from the image: another repository's
        # digest reference is not ours to delete, and keeps the image.
        ours = {parse_reference(k).name for k in self._dropping.get(step.image_id, set()) if "@" in k or ":" in k}
        leftovers = sorted(image.repo_digests)
        if any(parse_reference(r).name not in ours for r in leftovers):
            return ()
        deleted: tuple[str, ...] = ()
        for ref in leftovers:
            deleted += self._delete(ref)
        return deleted

    def _inspect(self, name: str) -> ImageDetails | None:
        return self.host.inspect_image(name)

    # --- saved plans: refuse what went stale ----------------------------------

    def _stale_pulls(self, plan: Plan) -> dict[Step, StepResult]:
        """Check every runnable pull before any starts (pulls run first, several at once)."""
        found = {}
        for step in plan.steps:
            if step.action is not Action.PULL or step.blocked:
                continue
            try:
                self._check_fresh(step)
            except StepStale as exc:
                found[step] = StepResult(step, Outcome.STALE, str(exc))
            except (DaemonRefused, DaemonUnavailable) as exc:
                found[step] = StepResult(step, Outcome.FAILED, f"could not read the host before pulling: {exc}")
        return found

    def _fresh(self, step: Step, handler: Callable[[Step], StepResult]) -> StepResult:
        self._check_fresh(step)
        return handler(step)

    def _check_fresh(self, step: Step) -> None:
        """Raise StepStale unless the host is still as the step expects (Step.image_id)."""
        if step.action is Action.PULL:
            self._expect_points_at(step.ref, step.image_id)
        elif step.action is Action.TAG:
            if step.source and step.image_id:  # None: an earlier pull of this plan fetches the source
                self._expect_points_at(step.source, step.image_id)
        elif step.action is Action.UNTAG:
            image = self._inspect(step.ref)
            if image is not None:  # gone already: the untag itself reports that
                self._expect_points_at(step.ref, step.image_id, image)
                if not _survives_untag(image, step.ref):
                    raise StepStale(f"{step.ref} is now the image's last tag: untagging would remove the image{_AGAIN}")
        else:
            self._check_fresh_removal(step)

    def _check_fresh_removal(self, step: Step) -> None:
        assert step.image_id is not None
        image = self._inspect(step.image_id)
        if image is None:
            return  # gone already: the removal itself reports that
        if not step.ref.startswith("sha256:"):
            current = self._inspect(step.ref)
            if current is not None:
                self._expect_points_at(step.ref, step.image_id, current)
        extra = _tags(image) - {reference_key(step.ref)}
        if extra:
            names = ", ".join(sorted(parse_reference(k).familiar() for k in extra))
            if extra <= set(self._failed_refs):  # tags the plan was to move away, and could not
                raise StepStale(f"the image still carries {names}: the step that was to move it did not run{_AGAIN}")
            raise StepStale(f"the image gained the tag {names} since the plan{_AGAIN}")
        names = ", ".join(self._containers_using(step.image_id))
        if names:
            raise StepStale(f"the image is now used by container {names}, so it is kept{_AGAIN}")

    def _expect_points_at(self, ref: str, expected: str | None, found: ImageDetails | None = None) -> None:
        current = found if found is not None else self._inspect(ref)
        current_id = current.id if current is not None else None
        if current_id == expected:
            return
        if current_id is None:
            assert expected is not None
            raise StepStale(f"{ref} is no longer on the host; the plan expected image {short_id(expected)}{_AGAIN}")
        if expected is None:
            raise StepStale(f"{ref} is now on the host (image {short_id(current_id)}); the plan expected none{_AGAIN}")
        raise StepStale(f"{ref} now points at {short_id(current_id)}, not at the planned {short_id(expected)}{_AGAIN}")


_AGAIN = "; run `reconcile plan` again"


def _measured(measure: Callable[[], int]) -> int | None:
    """The bytes of all image layers before the removals; None when the daemon would not say (a
    ``/system/df`` busy for the whole deadline), or says 0 with images to remove (Podman reports
    no layer sizes: "freed 0 B" would be wrong)."""
    try:
        found = measure()
    except DaemonRefused:
        return None
    return found if found > 0 else None


def _measured_freed(results: list[StepResult], before: int | None, measure: Callable[[], int] | None) -> int | None:
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


def _dropped_references(plan: Plan) -> dict[str, set[str]]:
    """Image id -> canonical references the plan's untags and removals take from it, blocked or not."""
    dropping: dict[str, set[str]] = {}
    for step in plan.steps:
        if step.is_destructive and step.image_id:
            dropping.setdefault(step.image_id, set()).add(reference_key(step.ref))
    return dropping


def _survives_untag(image: ImageDetails, ref: str) -> bool:
    """Whether the image stays once ``ref`` goes: another tag, or a digest reference of another
    repository (the daemon deletes the ref's own repository's digest references with its last tag)."""
    if _tags(image) - {reference_key(ref)}:
        return True
    name = parse_reference(ref).name
    return any(parse_reference(d).name != name for d in image.repo_digests)


def _tags(image: ImageDetails) -> set[str]:
    return {reference_key(t) for t in image.repo_tags}


def _has_digest(image: ImageDetails, name: str, digest: str) -> bool:
    for text in image.repo_digests:
        ref = parse_reference(text)
        if ref.name == name and ref.digest == digest:
            return True
    return False

