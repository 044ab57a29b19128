"""Holds: a job's pin on an image it is about to use, for a while. Plain data.

A hold names a reference (``name:tag``, canonical) and, when the image was on the
host as it was placed, that image's id. While it lasts it keeps the image it was
placed on and the image its reference points at now: retention, ``prune:`` and an
``absent`` entry leave them alone, as they leave an image a container uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def time_left(seconds: float) -> str:
    """What is left of a hold, to the minute: ``1h59m``, ``3d2h``, ``45s``."""
    whole = max(int(seconds), 0)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m" if minutes else f"{secs}s"


@dataclass(frozen=True)
class Hold:
    id: str  # short random hex, to release this one hold
    reference: str  # canonical reference, or an image id when the hold was placed by id
    image_id: str | None  # the image the reference pointed at when held; None when it was not on the host
    owner: str  # the user who placed it
    reason: str
    created: float  # seconds since the epoch
    expires: float

    def active(self, now: float) -> bool:
        return self.expires > now

    def describe(self, now: float) -> str:
        """``held by ci (job 42) for 1h59m more, hold 1a2b3c4d``: who, why, until when."""
        why = f" ({self.reason})" if self.reason else ""
        return f"held by {self.owner}{why} for {time_left(self.expires - now)} more, hold {self.id}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reference": self.reference,
            "image_id": self.image_id,
            "owner": self.owner,
            "reason": self.reason,
            "created": self.created,
            "expires": self.expires,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Hold | None:
        """A hold from its stored form; None for an entry that is not one (skipped, never fatal)."""
        if not isinstance(data, dict):
            return None
        try:
            image_id = data.get("image_id")
            return cls(
                id=str(data["id"]),
                reference=str(data["reference"]),
                image_id=str(image_id) if image_id else None,
                owner=str(data.get("owner") or "?"),
                reason=str(data.get("reason") or ""),
                created=float(data["created"]),
                expires=float(data["expires"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
