"""Untags and removals a few at a time, each image's steps in order, the results in plan order.

One ``DELETE /images/{name}`` is a round trip the daemon partly serialises on its image store;
a few in flight at once overlap our side of each call with the daemon's. The steps of one image
(its other tags untagged, then its last reference removed) form a chain that one worker runs in
order; chains of images built on one another run one after the other, in plan order, since a
parent goes only once its children have. Each worker has its own connection. The results are
handed on in plan order as soon as every earlier step has ended; a step that fails is just its
result. Once the daemon stops answering, or ``stopped`` gives a reason, no step starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.daemon.host import DockerHost
from reconciler.execution.step_errors import DAEMON_LOST
from reconciler.model.plan import Step
from reconciler.model.report import Outcome, StepResult


@dataclass
class Chain:
    """The steps of one image (indexes into the segment), and the chains that must end first."""

    image_id: str | None
    indexes: list[int] = field(default_factory=list)
    after: set[int] = field(default_factory=set)


def image_chains(steps: Sequence[Step], parents: Mapping[str, str]) -> list[Chain]:
    """Steps grouped by image id, in plan order; a chain waits for every earlier chain of an
    image it descends from or that descends from it (``parents``: image id -> parent id)."""
    chains: list[Chain] = []
    by_image: dict[str, int] = {}
    for index, step in enumerate(steps):
        if step.image_id is None:
            chains.append(Chain(None, [index]))
            continue
        number = by_image.get(step.image_id)
        if number is None:
            number = by_image[step.image_id] = len(chains)
            chains.append(Chain(step.image_id))
        chains[number].indexes.append(index)
    if parents:
        for number, chain in enumerate(chains):
            for ancestor in _ancestors(chain.image_id, parents):
                other = by_image.get(ancestor)
                if other is not None:
                    # The later of the two in plan order waits for the earlier.
                    chains[max(number, other)].after.add(min(number, other))
    return chains


def _ancestors(image_id: str | None, parents: Mapping[str, str]) -> list[str]:
    found: list[str] = []
    current = parents.get(image_id, "") if image_id else ""
    while current and current not in found:
        found.append(current)
        current = parents.get(current, "")
    return found


class RemovalPool:
    """Runs a segment of untag and remove steps on ``hosts`` (one worker each)."""

    def __init__(
        self,
        steps: Sequence[Step],
        chains: Sequence[Chain],
        run: Callable[[Step, DockerHost], StepResult],
        stopped: Callable[[], str | None],
    ) -> None:
        self._steps = steps
        self._chains = chains
        self._run = run
        self._stopped = stopped
        self._cond = threading.Condition()
        self._results: list[StepResult | None] = [None] * len(steps)
        self._waiting = list(range(len(chains)))  # chains not started, in plan order
        self._ended: set[int] = set()
        self._lost = False
        self._error: BaseException | None = None

    def run(self, hosts: Sequence[DockerHost], emit: Callable[[StepResult], None]) -> None:
        """Every step's result to ``emit``, in plan order, from the calling thread."""
        workers = [
            threading.Thread(target=self._work, args=(host,), name="removal", daemon=True)
            for host in hosts[: max(1, min(len(hosts), len(self._chains)))]
        ]
        for worker in workers:
            worker.start()
        for index in range(len(self._steps)):
            with self._cond:
                while self._results[index] is None and self._error is None:
                    self._cond.wait(timeout=0.5)
                result = self._results[index]
            if result is None:
                break
            emit(result)
        for worker in workers:
            worker.join()
        if self._error is not None:
            raise self._error

    def _work(self, host: DockerHost) -> None:
        try:
            while (number := self._take()) is not None:
                for index in self._chains[number].indexes:
                    result = self._step(self._steps[index], host)
                    with self._cond:
                        self._results[index] = result
                        self._lost = self._lost or result.daemon_lost
                        self._cond.notify_all()
                with self._cond:
                    self._ended.add(number)
                    self._cond.notify_all()
        except BaseException as exc:  # a bug of ours: the calling thread raises it
            with self._cond:
                self._error = exc
                self._waiting.clear()
                self._cond.notify_all()

    def _take(self) -> int | None:
        """The first chain in plan order whose predecessors have ended; None when none is left."""
        with self._cond:
            while self._waiting:
                for position, number in enumerate(self._waiting):
                    if self._chains[number].after <= self._ended:
                        del self._waiting[position]
                        return number
                self._cond.wait(timeout=0.5)
            return None

    def _step(self, step: Step, host: DockerHost) -> StepResult:
        if self._lost:
            return StepResult(step, Outcome.SKIPPED, DAEMON_LOST, daemon_lost=True)
        why = self._stopped()
        if why is not None:
            return StepResult(step, Outcome.SKIPPED, f"not done: {why}")
        return self._run(step, host)
