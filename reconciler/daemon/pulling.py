"""Pull one image through the daemon: streamed, under a deadline, retried when the failure is transient.

Why streamed: docker-py's high-level pull ignores error chunks and can hand back the
old image. Why a watchdog: ``POST /images/create`` has no timeout of its own.
Why retried: registries answer 5xx, 429, dropped connections and timeouts in passing;
a pipeline should not fail on them. Not-found and access-denied are never retried
("not found" may mean "no access", and retrying does not change that).

The retry policy (:func:`classify`, :func:`retry_after`, :func:`backoff_delay`) is
pure; progress is reported as :class:`PullEvent`\\ s to a callback, never printed here.
"""

from __future__ import annotations

import dataclasses
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.daemon.host import DockerHost, ProgressChunk, PullStreamFailed
from reconciler.daemon.registry_auth import RegistryAuth
from reconciler.errors import DaemonError
from reconciler.model.reference import Reference

BACKOFF_BASE = 1.0  # seconds before the first retry
BACKOFF_FACTOR = 2.0
BACKOFF_CAP = 30.0  # no single wait is longer


class FailureKind(StrEnum):
    TRANSIENT = "transient"  # retry
    RATE_LIMITED = "rate-limited"  # retry; when it never clears, the run may be tried again later
    PERMANENT = "permanent"  # do not retry
    CANCELLED = "cancelled"  # the run was interrupted (SIGINT, SIGTERM): no retry
    DAEMON_LOST = "daemon-lost"  # the daemon itself does not answer: no retry, and the run cannot go on


_RATE_LIMITED = re.compile(r"toomanyrequests|too many requests|rate limit|\b429\b", re.IGNORECASE)
# Checked before the transient markers: "not found" or "denied" stay final whatever else the text says.
_PERMANENT = re.compile(
    r"not found|manifest unknown|unknown manifest|access.*denied|denied|unauthorized|authentication required"
    r"|repository does not exist|no such host|connection refused|invalid reference|no matching manifest",
    re.IGNORECASE,
)
_TRANSIENT = re.compile(
    r"connection reset|connection aborted|broken pipe|unexpected eof|\beof\b|i/o timeout|tls handshake timeout"
    r"|temporarily unavailable|service unavailable|bad gateway|gateway timeout"
    r"|unexpected http status: 5\d\d|\b50[0234]\b"
    # A registry too slow to answer, as the daemon relays it: Go's context and http.Client deadlines
    # (dockerd gives a registry's /v2/ ping 15 s) and the requests they cancel.
    r"|context deadline exceeded|client\.timeout exceeded|net/http: request canceled|timeout awaiting",
    re.IGNORECASE,
)
_RETRY_AFTER = re.compile(r"retry[- ]after\W{0,3}(\d+(?:\.\d+)?)", re.IGNORECASE)


def classify(message: str, status: int | None = None) -> FailureKind:
    """Whether a pull that failed with ``message`` (and registry HTTP ``status``) is worth retrying."""
    if status == 429 or _RATE_LIMITED.search(message):
        return FailureKind.RATE_LIMITED
    if _PERMANENT.search(message):
        return FailureKind.PERMANENT
    if (status is not None and 500 <= status < 600) or _TRANSIENT.search(message):
        return FailureKind.TRANSIENT
    return FailureKind.PERMANENT


def retry_after(message: str) -> float | None:
    """Seconds the registry asked us to wait, when the daemon relayed its Retry-After."""
    found = _RETRY_AFTER.search(message)
    return float(found.group(1)) if found else None


def backoff_delay(attempt: int, rand: float, asked: float | None = None) -> float:
    """Wait before retry number ``attempt`` (1-based), with ``rand`` in [0, 1) for jitter.

    Exponential (base 1 s, factor 2, cap 30 s) with "equal jitter": half fixed, half
    random, so parallel pulls that failed together do not return together. A
    Retry-After the registry sent is a floor.
    """
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * BACKOFF_FACTOR ** (attempt - 1))
    delay = ceiling / 2 + rand * ceiling / 2
    return max(delay, asked) if asked is not None else delay


# --- progress ---------------------------------------------------------------------


class EventKind(StrEnum):
    START = "start"
    PROGRESS = "progress"
    RETRY = "retry"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class PullEvent:
    kind: EventKind
    ref: str
    layers_done: int = 0
    layers_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    elapsed: float = 0.0  # seconds since the first attempt started
    delay: float = 0.0  # RETRY: seconds until the next attempt
    reason: str = ""  # RETRY, FAILED: the error
    all_present: bool = False  # DONE: nothing was fetched, the daemon had every layer


PullCallback = Callable[[PullEvent], None]


@dataclass(frozen=True)
class PullStats:
    """What one finished pull cost: its time and the bytes it fetched, for the report."""

    seconds: float  # since the first attempt started, retries included
    downloaded_bytes: int | None  # over every attempt; None when the stream gave no sizes (Podman)
    layers_fetched: int  # layers the daemon downloaded in the last attempt
    layers_present: int  # layers it already had ("Already exists")

    @property
    def all_layers_present(self) -> bool:
        """Nothing was downloaded: every layer was there (or the image was up to date)."""
        return self.layers_fetched == 0 and not self.downloaded_bytes


_LAYER_DONE = ("pull complete", "already exists")


@dataclass
class LayerTally:
    """Layers and bytes of one pull, from the stream's ``status``/``progressDetail`` chunks."""

    current: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)
    present: set[str] = field(default_factory=set)  # "Already exists": nothing fetched

    def add(self, chunk: Mapping[str, Any]) -> bool:
        """Take one chunk; True when it was about a layer."""
        layer, status = chunk.get("id"), str(chunk.get("status") or "").lower()
        # The first chunk names the tag ("Pulling from ..."), not a layer.
        if not layer or status.startswith("pulling from") or status.startswith("digest:"):
            return False
        layer = str(layer)
        self.seen.add(layer)
        detail = chunk.get("progressDetail") or {}
        if status == "downloading" and detail.get("total"):
            self.current[layer] = int(detail.get("current") or 0)
            self.total[layer] = int(detail["total"])
        elif status in ("download complete", "verifying checksum") and layer in self.total:
            self.current[layer] = self.total[layer]
        elif status in _LAYER_DONE:
            self.done.add(layer)
            if status == "already exists":
                self.present.add(layer)
            if layer in self.total:
                self.current[layer] = self.total[layer]
        return True

    @property
    def fetched(self) -> set[str]:
        return self.seen - self.present

    @property
    def downloaded(self) -> int | None:
        """Bytes fetched from the registry (``Downloading`` chunks); None when a fetched layer
        came without any size (Podman's stream has no ``progressDetail``)."""
        if self.fetched - self.total.keys():
            return None
        return sum(self.current.values())

    def event(self, kind: EventKind, ref: str, elapsed: float) -> PullEvent:
        return PullEvent(
            kind,
            ref,
            layers_done=len(self.done),
            layers_total=len(self.seen),
            bytes_done=sum(self.current.values()),
            bytes_total=sum(self.total.values()),
            elapsed=elapsed,
        )


# --- pulling ------------------------------------------------------------------------


class PullFailed(Exception):
    """A pull failed for good; the message is the sentence for the report."""

    def __init__(self, message: str, kind: FailureKind) -> None:
        super().__init__(message)
        self.kind = kind


class _AttemptFailed(Exception):
    def __init__(self, message: str, kind: FailureKind) -> None:
        super().__init__(message)
        self.kind = kind


class Puller:
    """Pulls with retries inside one overall deadline; safe to share between threads."""

    def __init__(
        self,
        deadline: float,
        auth: RegistryAuth | None = None,
        on_event: PullCallback | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        """``cancelled`` says the run was interrupted: no further attempt starts, and an attempt
        that ends then (its stream cut) is not retried; ``sleep`` should return early then."""
        self.deadline = deadline
        self.auth = auth
        self.on_event = on_event
        self._sleep = sleep
        self._rand = rand
        self._cancelled = cancelled

    def pull(self, host: DockerHost, ref: Reference, platform: str | None) -> PullStats:
        """Pull ``ref`` until it succeeds, fails for good, or the deadline passes; raises PullFailed."""
        name = ref.familiar()
        started = time.monotonic()
        self._emit(PullEvent(EventKind.START, name))
        attempt = 0
        earlier: int | None = 0  # bytes the failed attempts fetched
        while True:
            attempt += 1
            if self._cancelled():
                raise self._cancelled_pull(name, started)
            tally = LayerTally()
            remaining = self.deadline - (time.monotonic() - started)
            try:
                self._attempt(host, ref, platform, remaining, tally, started)
            except _AttemptFailed as exc:
                fetched = tally.downloaded
                earlier = None if earlier is None or fetched is None else earlier + fetched
                elapsed = time.monotonic() - started
                reason = str(exc)
                if self._cancelled():
                    raise self._cancelled_pull(name, started) from None
                if exc.kind in (FailureKind.PERMANENT, FailureKind.DAEMON_LOST):
                    self._fail(name, reason, elapsed)
                    hint = self.auth.auth_failure_hint(ref.domain) if self.auth else None
                    raise PullFailed(f"pull of {name} failed: {_explain(reason, hint)}", exc.kind) from None
                delay = backoff_delay(attempt, self._rand(), retry_after(reason))
                if elapsed + delay >= self.deadline:
                    self._fail(name, reason, elapsed)
                    tries = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                    raise PullFailed(
                        f"pull of {name} failed after {tries} within {self.deadline:g}s: {reason}", exc.kind
                    ) from None
                self._emit(PullEvent(EventKind.RETRY, name, elapsed=elapsed, delay=delay, reason=reason))
                self._sleep(delay)
                continue
            done = tally.event(EventKind.DONE, name, time.monotonic() - started)
            downloaded = tally.downloaded
            stats = PullStats(
                seconds=done.elapsed,
                downloaded_bytes=None if earlier is None or downloaded is None else earlier + downloaded,
                layers_fetched=len(tally.fetched),
                layers_present=len(tally.present),
            )
            done = dataclasses.replace(done, all_present=stats.all_layers_present)
            self._emit(done if done.bytes_total else _sized_by_image(done, host, ref))
            return stats

    def _attempt(
        self,
        host: DockerHost,
        ref: Reference,
        platform: str | None,
        remaining: float,
        tally: LayerTally,
        started: float,
    ) -> None:
        """One pull through the daemon, read to the end; raises _AttemptFailed."""
        name = ref.familiar()
        header = self.auth.header(ref.domain) if self.auth else None

        def progress(chunk: ProgressChunk) -> None:
            if tally.add(chunk):
                self._emit(tally.event(EventKind.PROGRESS, name, time.monotonic() - started))

        try:
            host.pull(ref.name, ref.digest or ref.tag or "latest", platform, header, remaining, progress)
        except PullStreamFailed as exc:
            if exc.lost:
                # The daemon, not a registry, failed to answer: retrying a dead socket only waits out the deadline.
                raise _AttemptFailed(str(exc), FailureKind.DAEMON_LOST) from None
            if exc.timed_out:
                after = (
                    "its stream was closed, which stops the pull on the engine"
                    if exc.engine_stops
                    else "its stream was closed, but the engine may still finish this pull"
                )
                raise _AttemptFailed(f"did not finish within {self.deadline:g}s; {after}", FailureKind.PERMANENT) from None
            if exc.broken:  # the stream broke off mid-pull (daemon restart, dropped socket): worth another try
                raise _AttemptFailed(str(exc), FailureKind.TRANSIENT) from None
            raise _AttemptFailed(str(exc), classify(str(exc))) from None

    def _cancelled_pull(self, name: str, started: float) -> PullFailed:
        self._fail(name, "interrupted", time.monotonic() - started)
        return PullFailed(f"pull of {name} was cancelled: the run was interrupted", FailureKind.CANCELLED)

    def _fail(self, name: str, reason: str, elapsed: float) -> None:
        self._emit(PullEvent(EventKind.FAILED, name, elapsed=elapsed, reason=reason))

    def _emit(self, event: PullEvent) -> None:
        if self.on_event:
            self.on_event(event)


def _sized_by_image(done: PullEvent, host: DockerHost, ref: Reference) -> PullEvent:
    """A finished pull whose stream gave no sizes (Podman sends no ``progressDetail``): the
    pulled image's own size, so the report does not say 0 B; as it was if the image cannot be read."""
    try:
        details = host.inspect_image(ref.canonical())
    except DaemonError:
        return done
    if details is None or details.size <= 0:
        return done
    return dataclasses.replace(done, bytes_done=details.size, bytes_total=details.size)


def _explain(message: str, auth_hint: str | None = None) -> str:
    lowered = message.lower()
    # Podman words it "reading manifest 9.9 in ...: manifest unknown"; a registry says that to a
    # client it does not let see the repository too.
    not_found = ("pull access denied", "repository does not exist", "not found", "manifest unknown")
    if any(words in lowered for words in not_found):
        return f"{message} (the registry may also say this when access is denied; nothing was removed)"
    if "no basic auth credentials" in lowered or "unauthorized" in lowered or "authentication required" in lowered:
        how = auth_hint.rstrip(".") if auth_hint else (
            "set RECONCILE_REGISTRY_USER and RECONCILE_REGISTRY_PASSWORD, or log in with `docker login`"
        )
        return f"{message} ({how}; nothing was removed)"
    return message
