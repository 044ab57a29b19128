"""Holds on one daemon: place, release and list them (``reconcile hold|release|holds``), and the
live check ``apply`` asks before an image's first untag or removal. Returns values; prints nothing."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler.daemon.host import DockerHost
from reconciler.errors import UsageError
from reconciler.model.holds import Hold
from reconciler.model.reference import InvalidReference, parse_reference
from reconciler.planning.holds import hold_reason
from reconciler.state.holds_store import (
    add_hold,
    current_user,
    new_hold_id,
    read_holds,
    release_holds,
)
from reconciler.state.lock_dir import daemon_identity, lock_directory

_IMAGE_ID = re.compile(r"(sha256:)?[0-9a-f]{12,64}", re.ASCII)
HOLDS_FRESH_FOR = 1.0  # seconds the holds read serve the checks of further images


@dataclass(frozen=True)
class HoldTarget:
    """What ``REF`` names: a canonical reference or an image id, and the image it points at now."""

    reference: str
    image_id: str | None


def resolve_target(host: DockerHost, text: str) -> HoldTarget:
    """``nginx`` -> ``docker.io/library/nginx:latest`` (as ``docker pull`` reads it) and its image,
    if on the host; an image id (12 or more hex digits, ``sha256:`` optional) must be on the host."""
    if _IMAGE_ID.fullmatch(text):
        found = host.inspect_image(text)
        if found is None:
            raise UsageError(f"No image {text} is on {host.address}; hold a reference (name:tag) to pin one not pulled yet.")
        return HoldTarget(found.id, found.id)
    try:
        ref = parse_reference(text)
    except InvalidReference as exc:
        raise UsageError(f"{exc} Give a reference (name:tag or name@digest) or an image id.") from exc
    canonical = ref.canonical()
    found = host.inspect_image(canonical)
    return HoldTarget(canonical, found.id if found else None)


def place_hold(host: DockerHost, state_dir: Path, text: str, seconds: float, reason: str, now: float) -> Hold:
    """Record a hold on ``text`` for ``seconds``; the hold."""
    target = resolve_target(host, text)
    hold = Hold(new_hold_id(), target.reference, target.image_id, current_user(), reason, now, now + seconds)
    add_hold(lock_directory(state_dir), daemon_identity(host), hold, now)
    return hold


def release(
    host: DockerHost, state_dir: Path, text: str | None, hold_id: str | None, everyone: bool, now: float
) -> tuple[Hold, ...]:
    """Drop the holds on ``text`` this user placed (every user's with ``everyone``), or the hold ``hold_id``."""
    user = current_user()
    if hold_id is not None:

        def matches(hold: Hold) -> bool:
            return hold.id == hold_id
    else:
        assert text is not None
        target = resolve_target(host, text) if not _IMAGE_ID.fullmatch(text) else None
        wanted = target.reference if target else text.removeprefix("sha256:")

        def matches(hold: Hold) -> bool:
            named = hold.reference == wanted or (target is None and (hold.image_id or "").removeprefix("sha256:").startswith(wanted))
            return named and (everyone or hold.owner == user)

    return release_holds(lock_directory(state_dir), daemon_identity(host), matches, now)


def active_holds(host: DockerHost, state_dir: Path, now: float, warn: Callable[[str], None] | None = None) -> tuple[Hold, ...]:
    """The daemon's holds that have not expired, soonest to expire first."""
    found = read_holds(lock_directory(state_dir, create=False), daemon_identity(host), warn)
    return tuple(sorted((h for h in found if h.active(now)), key=lambda h: (h.expires, h.id)))


class LiveHolds:
    """``apply``'s check before an image's first untag or removal: why the holds keep it now, or None.

    The holds are read again (at most every second) and each hold's reference is looked up,
    so a hold placed after the plan was made is honoured before the image loses anything.
    """

    def __init__(self, host: DockerHost, lock_dir: Path, identity: str, clock: Callable[[], float] = time.time) -> None:
        self._host, self._lock_dir, self._identity, self._clock = host, lock_dir, identity, clock
        self._read_at: float | None = None
        self._held: dict[str, list[Hold]] = {}

    def __call__(self, image_id: str) -> str | None:
        now = self._clock()
        if self._read_at is None or now - self._read_at > HOLDS_FRESH_FOR:
            self._refresh(now)
        holds = self._held.get(image_id)
        return None if not holds else hold_reason(holds, now)

    def _refresh(self, now: float) -> None:
        self._read_at = now
        self._held = {}
        for hold in read_holds(self._lock_dir, self._identity):
            if not hold.active(now):
                continue
            ids = {hold.image_id} if hold.image_id else set()
            current = self._host.inspect_image(hold.reference)
            if current is not None:
                ids.add(current.id)
            for image_id in ids:
                self._held.setdefault(image_id, []).append(hold)
