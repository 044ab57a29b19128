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
    """An image list taken at ``read_at`` (monotonic seconds), kept up to date with the run's deletes.

    An image's references are parsed when a step first asks for it or deletes from it, not for every
    image of the list: a name is found by the text the daemon lists its tag as (Docker's familiar
    one, Podman's full one), and only a name no text gives makes every image parsed, once. On a
    host of 11,000 images each list was 75 ms of parsing for the few hundred images its batch asks.
    """

    def __init__(self, images: Iterable[ImageRecord], read_at: float) -> None:
        self.read_at = read_at
        self.served = 0
        self._records = {record.id: record for record in images}  # those not parsed yet
        self._by_text = {text: record.id for record in self._records.values() for text in record.tag_texts}
        self._by_id: dict[str, _Image] = {}  # the images parsed, as the run's deletes left them
        self._by_ref: dict[str, str] = {}  # canonical references of those -> id
        # Every image id of the list, as it was read: the daemon's delete answer lists layer ids
        # beside image ids, and only these are images.
        self.image_ids = frozenset(self._records)

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
            image = self._image(name)
        else:
            try:
                image = self._image_of(name, reference_key(name))
            except InvalidReference:
                return None
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
            image = self._image_of(name, key)
            if image is not None:
                self._by_ref.pop(key, None)
                image.tags = [t for t in image.tags if t != key]
                image.digests = [d for d in image.digests if d != key]
                if not image.tags:
                    # With its last tag Docker deletes the repository's digest references too.
                    repository = key.rpartition("@" if "@" in key else ":")[0]
                    for digest in [d for d in image.digests if d.partition("@")[0] == repository]:
                        image.digests.remove(digest)
                        self._by_ref.pop(digest, None)
        for image_id in removed_ids:
            self._records.pop(image_id, None)
            gone = self._by_id.pop(image_id, None)
            if gone is not None:
                for ref in (*gone.tags, *gone.digests):
                    self._by_ref.pop(ref, None)

    def _image_of(self, name: str, key: str) -> _Image | None:
        """The image the reference ``name`` (canonical ``key``) points at, parsed."""
        image_id = self._by_ref.get(key)
        if image_id is None:
            listed = self._by_text.get(name) or self._by_text.get(key)
            if listed is not None:
                self._image(listed)  # parsed now, its references known: one of them is the key's, unless deleted
            else:
                for unparsed in list(self._records):  # a name no listed text gives: every image parsed
                    self._image(unparsed)
            image_id = self._by_ref.get(key)
        return self._by_id.get(image_id) if image_id is not None else None

    def _image(self, image_id: str) -> _Image | None:
        """The image ``image_id`` as the run's deletes left it (parsed on first use); None when gone."""
        image = self._by_id.get(image_id)
        if image is None:
            record = self._records.pop(image_id, None)
            if record is None:
                return None
            image = self._by_id[image_id] = _Image(
                record.id,
                [t.canonical() for t in record.tags],
                [d.canonical() for d in record.digests],
                record.size,
            )
            for ref in (*image.tags, *image.digests):
                self._by_ref[ref] = image_id
        return image
