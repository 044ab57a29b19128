"""How a step ends when it does not end done: the executor raises these, and reports them as outcomes."""

from __future__ import annotations

from reconciler.errors import DaemonUnavailable
from reconciler.model.plan import Step
from reconciler.model.report import Outcome, StepResult

DAEMON_LOST = "not done: the daemon stopped answering"

AGAIN = "; run `reconcile plan` again"


class StepFailed(Exception):
    """A step could not be done; the message is the sentence for the report."""


class StepSkipped(Exception):
    """A step was not run for safety; the message says why."""

    def __init__(self, message: str, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.rate_limited = (
            rate_limited  # it waited on a pull that only a registry rate limit stopped
        )


class StepStale(Exception):
    """A saved plan's step expected another host state; the message says what changed."""


def daemon_lost(step: Step, exc: DaemonUnavailable) -> StepResult:
    """The step's result when the daemon stopped answering: it failed, and no further step can run."""
    return StepResult(
        step, Outcome.FAILED, f"lost the connection to the daemon: {exc}", daemon_lost=True
    )
