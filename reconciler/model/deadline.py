"""A host's deadline: the moment (on the monotonic clock) by which its whole turn must end.

Every call to that host's daemon takes the smaller of its own timeout and the time left,
so one hung daemon costs a run at most its ``--host-timeout``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

MIN_TIMEOUT = 0.001  # seconds: a timeout of 0 means "no timeout" to some socket layers


@dataclass(frozen=True)
class Deadline:
    """``at`` is a ``time.monotonic()`` value, None for no deadline; ``seconds`` is the limit it was set from."""

    at: float | None = None
    seconds: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)

    @classmethod
    def after(cls, seconds: float | None, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """The deadline ``seconds`` from now (None: none at all)."""
        return cls(None if seconds is None else clock() + seconds, seconds, clock)

    def left(self) -> float | None:
        """Seconds until the deadline (negative once passed); None without one."""
        return None if self.at is None else self.at - self.clock()

    @property
    def passed(self) -> bool:
        left = self.left()
        return left is not None and left <= 0

    def bound(self, timeout: float) -> float:
        """``timeout``, cut to the time left (and never below MIN_TIMEOUT)."""
        left = self.left()
        return max(MIN_TIMEOUT, timeout if left is None else min(timeout, left))


NO_DEADLINE = Deadline()
