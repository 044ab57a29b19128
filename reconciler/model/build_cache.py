"""BuildKit's build cache as ``GET /system/df`` lists it: plain data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuildCacheRecord:
    id: str  # BuildKit's record id (25 lower-case letters and digits)
    type: str  # regular, source.local, exec.cachemount, frontend, internal, ...
    description: str
    size: int  # bytes
    created: float  # seconds since the epoch
    last_used: float | None  # None: never used since it was made
    in_use: bool  # a running build holds it
    shared: bool  # its data is shared (with an image's layers, another record): pruning it frees nothing
    usage_count: int = 0

    @property
    def used_at(self) -> float:
        """When it was last used, or made when never used since."""
        return self.last_used if self.last_used is not None else self.created
