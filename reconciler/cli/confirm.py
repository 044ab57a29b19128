"""The question `apply` asks on a terminal before it untags or removes, as `docker image prune` asks.

Asked only when stdin is a terminal: cron, pipelines and scripts never see it. Anything but
``y`` or ``yes`` (an empty line, ``n``, end of input) is no; Ctrl-C (or SIGTERM) at the question
stops the run, exit 130 (143).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import TextIO

from reconciler.errors import Interrupted
from reconciler.model.plan import Action, Plan

YES = frozenset({"y", "yes"})


class _Stopped(Exception):
    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.number = number


def _stop_waiting(number: int, frame: object) -> None:
    raise _Stopped(number)


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except ValueError:  # a closed stdin
        return False


def question(plan: Plan) -> str:
    """What will be taken away, in one line, ending in docker's ``[y/N]``."""
    removes = sum(1 for s in plan.runnable if s.action is Action.REMOVE)
    untags = sum(1 for s in plan.runnable if s.action is Action.UNTAG)
    parts = []
    if removes:
        parts.append(f"remove {removes} image{'s' if removes != 1 else ''}")
    if untags:
        parts.append(f"untag {untags} tag{'s' if untags != 1 else ''}")
    return f"Apply this plan and {' and '.join(parts)} on {plan.host}? [y/N] "


def ask(plan: Plan, prompt_to: TextIO, answers: TextIO, say: Callable[[str], None]) -> bool:
    """Ask on ``prompt_to`` and read one line of ``answers``; True only for yes."""
    # apply's own handlers only stop pulls and steps; at the question a signal must end the wait.
    previous = {
        number: signal.signal(number, _stop_waiting) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        prompt_to.write(question(plan))
        prompt_to.flush()
        line = answers.readline()
    except _Stopped as stopped:
        prompt_to.write("\n")
        raise Interrupted(
            "cancelled at the confirmation question; nothing was changed", stopped.number
        ) from None
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if not line:
        prompt_to.write("\n")  # end of input: the cursor is still after the question
    if line.strip().lower() in YES:
        return True
    say("Apply cancelled: nothing was changed. (--yes applies without asking.)")
    return False
