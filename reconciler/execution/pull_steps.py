"""Pull steps: run first, several at once, each on its own session; an interrupt cuts them.

Mixed into :class:`reconciler.execution.executor.Executor`. A pull is streamed and any error
in the stream fails it (docker-py's high-level pull can hand back the old image instead),
under a deadline; :mod:`reconciler.daemon.pulling` does it, retrying transient registry failures.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from reconciler.daemon.host import DockerHost
from reconciler.daemon.pulling import Puller
from reconciler.errors import DaemonUnavailable
from reconciler.execution.image_rules import has_digest, is_platform
from reconciler.execution.interrupt import Interrupt
from reconciler.execution.step_errors import DAEMON_LOST, StepFailed
from reconciler.model.inventory import short_id
from reconciler.model.plan import Step
from reconciler.model.reference import Reference, parse_reference
from reconciler.model.report import Outcome, StepResult


class PullSteps:
    """The executor's pulls; ``host``, ``parallelism``, ``interrupt`` and ``puller`` are the executor's."""

    @property
    def host(self) -> DockerHost:
        raise NotImplementedError

    parallelism: int
    interrupt: Interrupt | None
    puller: Puller

    @property
    def _interrupted(self) -> str | None:
        raise NotImplementedError

    def _guarded(self, step: Step, run: Callable[[], StepResult]) -> StepResult:
        raise NotImplementedError

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
