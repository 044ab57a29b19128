"""Saved plans: before a step of ``apply PLAN`` runs, the host must still be as the plan expected.

A step whose tag moved, whose image gained a tag or a container, or whose pulled tag appeared
or moved, is refused as stale (:class:`StepStale`) and nothing is touched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reconciler.daemon.host import DaemonRefused, ImageDetails
from reconciler.errors import DaemonUnavailable
from reconciler.execution.image_rules import familiar_names, image_tags, survives_untag
from reconciler.execution.step_errors import AGAIN, StepStale
from reconciler.model.inventory import short_id
from reconciler.model.plan import Action, Plan, Step
from reconciler.model.reference import reference_key
from reconciler.model.report import Outcome, StepResult


class StaleChecks:
    """The executor's checks of a saved plan's expectations (mixed into :class:`Executor`)."""

    _failed_refs: Mapping[str, bool]

    def _inspect(self, name: str) -> ImageDetails | None:
        raise NotImplementedError

    def _containers_using(self, image_id: str) -> list[str]:
        raise NotImplementedError

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
                found[step] = StepResult(
                    step, Outcome.FAILED, f"could not read the host before pulling: {exc}"
                )
        return found

    def _fresh(self, step: Step, handler: Callable[[Step], StepResult]) -> StepResult:
        self._check_fresh(step)
        return handler(step)

    def _check_fresh(self, step: Step) -> None:
        """Raise StepStale unless the host is still as the step expects (Step.image_id)."""
        if step.action is Action.PULL:
            self._expect_points_at(step.ref, step.image_id)
        elif step.action is Action.TAG:
            if (
                step.source and step.image_id
            ):  # None: an earlier pull of this plan fetches the source
                self._expect_points_at(step.source, step.image_id)
        elif step.action is Action.UNTAG:
            image = self._inspect(step.ref)
            if image is not None:  # gone already: the untag itself reports that
                self._expect_points_at(step.ref, step.image_id, image)
                if not survives_untag(image, step.ref):
                    raise StepStale(
                        f"{step.ref} is now the image's last tag: untagging would remove the image{AGAIN}"
                    )
        elif step.action is Action.REMOVE:
            self._check_fresh_removal(step)
        # PRUNE_CACHE: nothing to expect; BuildKit leaves a record a build uses alone

    def _check_fresh_removal(self, step: Step) -> None:
        assert step.image_id is not None
        image = self._inspect(step.image_id)
        if image is None:
            return  # gone already: the removal itself reports that
        if not step.ref.startswith("sha256:"):
            current = self._inspect(step.ref)
            if current is not None:
                self._expect_points_at(step.ref, step.image_id, current)
        extra = image_tags(image) - {reference_key(step.ref)}
        if extra:
            names = familiar_names(extra)
            if extra <= set(self._failed_refs):  # tags the plan was to move away, and could not
                raise StepStale(
                    f"the image still carries {names}: the step that was to move it did not run{AGAIN}"
                )
            raise StepStale(f"the image gained the tag {names} since the plan{AGAIN}")
        names = ", ".join(self._containers_using(step.image_id))
        if names:
            raise StepStale(f"the image is now used by container {names}, so it is kept{AGAIN}")

    def _expect_points_at(
        self, ref: str, expected: str | None, found: ImageDetails | None = None
    ) -> None:
        current = found if found is not None else self._inspect(ref)
        current_id = current.id if current is not None else None
        if current_id == expected:
            return
        if current_id is None:
            assert expected is not None
            raise StepStale(
                f"{ref} is no longer on the host; the plan expected image {short_id(expected)}{AGAIN}"
            )
        if expected is None:
            raise StepStale(
                f"{ref} is now on the host (image {short_id(current_id)}); the plan expected none{AGAIN}"
            )
        raise StepStale(
            f"{ref} now points at {short_id(current_id)}, not at the planned {short_id(expected)}{AGAIN}"
        )
