"""The images of one moment, for the re-checks of a batch of destructive steps.

Before an untag or a removal the executor checks what the step expects: the tag still
points at the planned image, the image gained no tag. One ``GET /images/json`` answers
those checks for a batch of steps, where an inspection per step cost a round trip each;
the run's own deletes are applied to it as they happen, and it is read again for the
next batch. What another client does within a batch is still caught where it matters:
the daemon refuses to delete the last tag of an image a container uses (409), and the
tags a refused removal took are put back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.daemon.host import ImageDetails
from reconciler.model.inventory import ImageRecord
from reconciler.model.reference import InvalidReference, reference_key

# Destructive steps one image list serves at most, and for at most this long. The time bounds what
# a list may miss; each list costs dockerd about a tenth of a second per 1,000 images, taken from
# the deletes it serves beside it, so at a few hundred deletes a second it is the time that ends a batch.
BATCH_STEPS = 400
BATCH_SECONDS = 2.0


@dataclass
class _Image:
    id: str
    tags: list[str]  # canonical name:tag
    digests: list[str]  # canonical name@digest
    size: int


class ImageSnapshot:
    """An image list taken at ``read_at`` (monotonic seconds), kept up to date with the run's deletes."""

    def __init__(self, images: Iterable[ImageRecord], read_at: float) -> None:
        self.read_at = read_at
        self.served = 0
        self._by_id: dict[str, _Image] = {}
        self._by_ref: dict[str, str] = {}
        for record in images:
            image = _Image(
                record.id,
                [t.canonical() for t in record.tags],
                [d.canonical() for d in record.digests],
                record.size,
            )
            self._by_id[image.id] = image
            for ref in (*image.tags, *image.digests):
                self._by_ref[ref] = image.id
        # Every image id of the list, kept as the run deletes: the daemon's delete answer lists
        # layer ids beside image ids, and only these are images.
        self.image_ids = frozenset(self._by_id)

    def serves(self, now: float) -> bool:
        """Whether this list may still answer a step's checks."""
        return self.served < BATCH_STEPS and now - self.read_at <= BATCH_SECONDS

    def nearly_spent(self, now: float) -> bool:
        """Whether a quarter or less of what it may serve is left: time to read the next list.
        At a few hundred deletes a second that leaves the read enough time to end first."""
        return self.served >= BATCH_STEPS * 3 // 4 or now - self.read_at >= BATCH_SECONDS * 3 / 4

    def find(self, name: str) -> ImageDetails | None:
        """The image ``name`` (a full image id or a reference) points at, as this list knows it."""
        self.served += 1
        if name.startswith("sha256:"):
            image = self._by_id.get(name)
        else:
            try:
                image_id = self._by_ref.get(reference_key(name))
            except InvalidReference:
                return None
            image = self._by_id.get(image_id) if image_id else None
        if image is None:
            return None
        return ImageDetails(image.id, tuple(image.tags), tuple(image.digests), image.size)

    def deleted(self, name: str, removed_ids: Iterable[str]) -> None:
        """The run deleted ``name``, and the daemon said these images went with it."""
        if not name.startswith("sha256:"):
            try:
                key = reference_key(name)
            except InvalidReference:
                return
            image_id = self._by_ref.pop(key, None)
            image = self._by_id.get(image_id) if image_id else None
            if image is not None:
                image.tags = [t for t in image.tags if t != key]
                image.digests = [d for d in image.digests if d != key]
                if not image.tags:
                    # With its last tag Docker deletes the repository's digest references too.
                    repository = key.rpartition("@" if "@" in key else ":")[0]
                    for digest in [d for d in image.digests if d.partition("@")[0] == repository]:
                        image.digests.remove(digest)
                        self._by_ref.pop(digest, None)
        for image_id in removed_ids:
            gone = self._by_id.pop(image_id, None)
            if gone is not None:
                for ref in (*gone.tags, *gone.digests):
                    self._by_ref.pop(ref, None)
