"""The one clock: what time it is, for everything that records or plans at a moment."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, as an aware UTC datetime (plan files, history, export comments, lock holders)."""
    return datetime.now(UTC)


def epoch_now() -> float:
    """Now, in seconds since the epoch (planning and retention, which compare with image times)."""
    return utc_now().timestamp()
