"""Untag and remove steps, each re-checked against the image list of its batch; never forced.

Mixed into :class:`reconciler.execution.executor.Executor`. Before every destructive step the
image is looked at again: a tag that moved, an image that gained a tag or a container since the
plan is skipped and said so; a last delete the daemon refuses puts the tags taken back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from reconciler.daemon.host import DockerHost, ImageConflict, ImageDetails
from reconciler.execution.batch_lists import BatchLists
from reconciler.execution.image_rules import (
    familiar_names,
    image_tags,
    layer_chain_ids,
    survives_untag,
)
from reconciler.execution.removal_gates import CONTAINERS_FRESH_FOR
from reconciler.execution.step_errors import StepFailed, StepSkipped
from reconciler.model.inventory import ContainerRecord, ImageRecord, Inventory, short_id
from reconciler.model.plan import Step
from reconciler.model.reference import parse_reference, reference_key
from reconciler.model.report import Outcome, StepResult


class RemovalSteps:
    """State: the executor's ``host`` and what the run knows of the images it drops."""

    @property
    def host(self) -> DockerHost:
        raise NotImplementedError

    refuse_stale: bool
    _lists: BatchLists  # the image list each batch of destructive steps checks against
    _containers: tuple[float, tuple[ContainerRecord, ...]] | None
    _failed_refs: Mapping[str, bool]  # refs whose pull or tag failed -> only rate-limited
    _dropping: dict[str, set[str]]  # image id -> references the plan untags or removes
    _removed: set[str]  # images a runnable removal of the plan deletes
    _untagged: dict[str, list[str]]  # image id -> references its removal untagged so far
    _first_list: tuple[ImageRecord, ...] | None  # the plan's own image list, taken for the first batch

    def _containers_using(self, image_id: str) -> list[str]:
        raise NotImplementedError

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
        self._deleted(step.ref, deleted)
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
            names = familiar_names(gained)
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
            raise StepSkipped(f"{exc}{self._restore_tags(step.image_id)}") from None
        if step.image_id not in deleted:
            deleted += self._delete_leftover_digests(step)
        # The daemon lists the layers it deleted beside the images: the report counts images.
        layers = layer_chain_ids(image.layers)
        known = self._lists.image_ids() if not layers else None
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
        names = familiar_names(kept_by)
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
            names = familiar_names(extra)
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

    def _restore_tags(self, image_id: str) -> str:
        """Put back the tags this image's removal took before the daemon refused the last one."""
        restored = []
        for ref in self._untagged.pop(image_id, []):
            target = parse_reference(ref)
            if target.tag is None or self.host.inspect_image(ref) is not None:
                continue  # a digest reference cannot be put back; a tag taken by another image stays there
            self.host.tag(image_id, target.name, target.tag)
            self._lists.invalidate()
            restored.append(ref)
        return f"; its tags were put back: {', '.join(restored)}" if restored else ""

    def _delete(self, ref: str) -> tuple[str, ...]:
        """``DELETE /images/{ref}`` without force; returns the ids the daemon deleted."""
        try:
            deleted = self.host.delete(ref)
        except ImageConflict as exc:
            self._lists.invalidate()  # the daemon knows something the list did not: read it again
            raise StepSkipped(f"the daemon refused: {exc.explanation}") from exc
        self._deleted(ref, deleted)
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
        this batch of steps (batch_lists: read again, with the containers, for the next batch)."""
        if self.refuse_stale:
            # A saved plan's steps are each checked against the daemon itself.
            return self._inspect(name)
        return self._lists.look(name, self._read_lists)

    def _read_first_list(self) -> tuple[ImageRecord, ...]:
        """The image list the first batch of steps checks against: the plan's own, when taken."""
        if self._first_list is not None:
            images, self._first_list = self._first_list, None
            return images
        return self._lists.read_now(self._read_lists)

    def _take_plan_reads(self, planned: Inventory) -> bool:
        """Take the lists the plan was made from as the first batch's, when this process read them
        at most BATCH_SECONDS ago (the caller knows no step ran since): the same two reads again
        would tell the checks nothing new. Whether they were taken."""
        listed_at = planned.listed_at
        if listed_at is None or not self._lists.take(planned.images, listed_at):
            return False
        self._first_list = planned.images
        if self._containers is None:
            self._containers = (listed_at, planned.containers)
        return True

    def _read_lists(self) -> tuple[ImageRecord, ...]:
        """The images, on the calling worker's connection (and the containers, when not fresh)."""
        now = time.monotonic()
        images = self.host.list_images()
        if self._containers is None or now - self._containers[0] > CONTAINERS_FRESH_FOR:
            self._containers = (now, self.host.list_containers())
        return images

    def _deleted(self, ref: str, deleted: tuple[str, ...]) -> None:
        """Keep the batch's image list up to date with a delete of this run."""
        self._lists.deleted(ref, deleted)
