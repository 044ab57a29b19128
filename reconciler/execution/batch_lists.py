"""The image list each batch of destructive steps checks against, read again for the next batch.

One worker reads a list while the others wait only when no list serves: with several workers,
the one that finds the current list nearly spent reads the next, and the others go on with the
current one meanwhile, so the daemon's deletes do not stop for its list (about 0.1 s at 1,000
images, once a batch). The run's deletes are applied to the current list as they end, and the
ones that end while the next is read are applied to that one too: the daemon may have answered
before or after them, and a delete applied to a list that no longer shows it changes nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from reconciler.daemon.host import ImageDetails
from reconciler.execution.image_snapshot import ImageSnapshot
from reconciler.model.inventory import ImageRecord

ReadImages = Callable[[], tuple[ImageRecord, ...]]


class BatchLists:
    """Successive image lists of one run's destructive steps, shared by its removal workers.

    ``ahead``: read the next list before the current one is spent (with several workers; a
    lone worker would only wait for its own read sooner).
    """

    def __init__(self, ahead: bool = False) -> None:
        self.ahead = ahead
        self._cond = threading.Condition(threading.Lock())
        self._snapshot: ImageSnapshot | None = None
        self._reading = False
        self._ended_meanwhile: list[tuple[str, tuple[str, ...]]] = []  # deletes during a read
        self._generation = 0  # counts invalidate(): a list read before one is not kept

    def look(self, name: str, read: ReadImages) -> ImageDetails | None:
        """The image ``name`` points at, by the batch's list; ``read`` lists the images when this
        worker is the one to read the next list (on its own connection)."""
        while True:
            with self._cond:
                while True:
                    snapshot, now = self._snapshot, time.monotonic()
                    if snapshot is not None and snapshot.serves(now):
                        if self._reading or not (self.ahead and snapshot.nearly_spent(now)):
                            return snapshot.find(name)
                        break  # this worker reads the next list; the others go on with this one
                    if not self._reading:
                        break
                    self._cond.wait()
                generation = self._start_reading()
            fresh, _ = self._read(read, generation)
            if fresh is not None:
                with self._cond:
                    return fresh.find(name)

    def read_now(self, read: ReadImages) -> tuple[ImageRecord, ...]:
        """Read a list that serves from now on (the first batch's), and return its images."""
        while True:
            with self._cond:
                while self._reading:
                    self._cond.wait()
                generation = self._start_reading()
            fresh, images = self._read(read, generation)
            if fresh is not None:
                return images

    def take(self, images: Iterable[ImageRecord], read_at: float) -> bool:
        """Keep ``images``, listed at ``read_at`` (monotonic seconds), as the current list when it
        still serves and none is kept or being read (the plan's own list, for the first batch);
        whether it was taken."""
        snapshot = ImageSnapshot(images, read_at)
        with self._cond:
            if self._snapshot is not None or self._reading or not snapshot.serves(time.monotonic()):
                return False
            self._snapshot = snapshot
            return True

    def deleted(self, name: str, removed_ids: Iterable[str]) -> None:
        """The run deleted ``name``, and the daemon said these images went with it."""
        removed = tuple(removed_ids)
        with self._cond:
            if self._snapshot is not None:
                self._snapshot.deleted(name, removed)
            if self._reading:
                self._ended_meanwhile.append((name, removed))

    def invalidate(self) -> None:
        """The daemon knows something the list does not (a refusal, a tag put back): read again."""
        with self._cond:
            self._snapshot = None
            self._generation += 1

    def image_ids(self) -> frozenset[str] | None:
        """Every image id of the current list as it was read; None when no list is kept."""
        with self._cond:
            return None if self._snapshot is None else self._snapshot.image_ids

    def _start_reading(self) -> int:
        """Called with the lock held: this worker is the reader until :meth:`_read` ends."""
        self._reading, self._ended_meanwhile = True, []
        return self._generation

    def _read(
        self, read: ReadImages, generation: int
    ) -> tuple[ImageSnapshot | None, tuple[ImageRecord, ...]]:
        """Read a list and keep it; no list when an :meth:`invalidate` came during the read."""
        try:
            started = time.monotonic()
            images = read()
            snapshot = ImageSnapshot(images, started)  # made outside the lock: the others go on
        except BaseException:
            with self._cond:
                self._reading = False
                self._cond.notify_all()
            raise
        with self._cond:
            for name, removed in self._ended_meanwhile:
                snapshot.deleted(name, removed)
            self._reading, self._ended_meanwhile = False, []
            self._cond.notify_all()
            if generation != self._generation:
                return None, images
            self._snapshot = snapshot
            return snapshot, images
