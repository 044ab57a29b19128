"""The first tag of a ``source: build`` or ``source: load`` entry: build or load it, or not. Pure.

A built image carries the digest of its inputs as a label (:data:`INPUTS_LABEL`): the tag is
built again only when the inputs' digest now differs, and the step says why (the file or arg
that changed, when an earlier build's parts were recorded). A loaded image cannot carry a
label: the run records which image an archive gave, and the archive is loaded again only
when its sha256 is new or that image is gone; when the image is there and only the tag
moved, a tag step points the tag back at it.
"""

from __future__ import annotations

from collections.abc import Iterator

from reconciler.model.build_inputs import INPUTS_LABEL, LocalFacts, what_changed
from reconciler.model.inventory import Inventory, short_id
from reconciler.model.manifest import ImageSpec
from reconciler.model.plan import Action, Step
from reconciler.model.reference import Reference


def ensure_built(
    spec: ImageSpec, ref: Reference, inventory: Inventory, local: LocalFacts
) -> Iterator[Step]:
    assert spec.build is not None
    image = inventory.image_with_tag(ref)
    inputs = local.inputs.get(ref.canonical())
    if inputs is None:
        yield Step(
            Action.BUILD,
            ref.familiar(),
            "build inputs unknown",
            blocked="its build inputs were not read",
        )
        return
    digest = inputs.digest
    if image is None:
        reason = "not built yet"
    else:
        label = image.label_map.get(INPUTS_LABEL)
        if label == digest:
            return
        if label is None:
            reason = f"the image {short_id(image.id)} was not built from this entry (it has no {INPUTS_LABEL} label)"
        else:
            reason = what_changed(local.records.built.get(label), inputs)
    yield Step(
        Action.BUILD,
        ref.familiar(),
        reason,
        image_id=image.id if image else None,
        build=spec.build,
        inputs=digest,
    )


def ensure_loaded(
    spec: ImageSpec, ref: Reference, inventory: Inventory, local: LocalFacts
) -> Iterator[Step]:
    assert spec.archive is not None
    image = inventory.image_with_tag(ref)
    digest = local.archives.get(spec.archive)
    if digest is None:
        yield Step(
            Action.LOAD, ref.familiar(), "archive unknown", blocked="the archive was not read"
        )
        return
    loaded = local.records.loaded.get(digest)
    loaded_image = inventory.image_by_id.get(loaded) if loaded else None
    if loaded_image is not None:
        if image is not None and image.id == loaded_image.id:
            return
        where = f"now points at {short_id(image.id)}" if image else "is not on the host"
        yield Step(
            Action.TAG,
            ref.familiar(),
            f"the archive's image {short_id(loaded_image.id)} is on the host, and the tag {where}",
            image_id=loaded_image.id,
            source=loaded_image.id,
            bytes=0,
        )
        return
    if loaded is not None:
        reason = f"the image {short_id(loaded)} this archive gave is gone"
    elif image is None:
        reason = "not loaded yet"
    else:
        reason = f"the archive is new or changed since it was last loaded (now {digest[:19]})"
    yield Step(
        Action.LOAD,
        ref.familiar(),
        reason,
        image_id=image.id if image else None,
        archive=spec.archive,
        inputs=digest,
    )
