"""What Docker does to an image's references, as the executor needs to know it. Pure."""

from __future__ import annotations

import hashlib

from reconciler.daemon.host import ImageDetails
from reconciler.model.plan import Plan
from reconciler.model.reference import parse_reference, reference_key


def dropped_references(plan: Plan) -> dict[str, set[str]]:
    """Image id -> canonical references the plan's untags and removals take from it, blocked or not."""
    dropping: dict[str, set[str]] = {}
    for step in plan.steps:
        if step.is_destructive and step.image_id:
            dropping.setdefault(step.image_id, set()).add(reference_key(step.ref))
    return dropping


def survives_untag(image: ImageDetails, ref: str) -> bool:
    """Whether the image stays once ``ref`` goes: another tag, or a digest reference of another
    repository (the daemon deletes the ref's own repository's digest references with its last tag)."""
    if image_tags(image) - {reference_key(ref)}:
        return True
    parsed = parse_reference(ref)
    if parsed.digest is not None:  # deleting a digest reference takes nothing else along
        return any(reference_key(d) != reference_key(ref) for d in image.repo_digests)
    return any(parse_reference(d).name != parsed.name for d in image.repo_digests)


def image_tags(image: ImageDetails) -> set[str]:
    return {reference_key(t) for t in image.repo_tags}


ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
}


def familiar_names(keys: set[str]) -> str:
    """Reference keys as people write them, sorted and comma-separated: ``web:1.1, web:latest``."""
    return ", ".join(sorted(parse_reference(key).familiar() for key in keys))


def is_platform(image: ImageDetails, platform: str) -> bool:
    """Whether the image's os/architecture[/variant] is the declared ``os/arch[/variant]``.

    A declared variant is compared only when the image records one, with arm64's v8 as Docker's default.
    """
    wanted = platform.lower().split("/")
    os_name, arch = wanted[0], ARCH_ALIASES.get(wanted[1], wanted[1]) if len(wanted) > 1 else ""
    if image.os.lower() != os_name or (
        arch and ARCH_ALIASES.get(image.architecture.lower(), image.architecture.lower()) != arch
    ):
        return False
    if len(wanted) < 3 or not image.variant:
        return True
    return image.variant.lower() == wanted[2] or (
        arch == "arm64" and {image.variant.lower(), wanted[2]} <= {"v8", ""}
    )


def has_digest(image: ImageDetails, name: str, digest: str) -> bool:
    for text in image.repo_digests:
        ref = parse_reference(text)
        if ref.name == name and ref.digest == digest:
            return True
    return False


def layer_chain_ids(diff_ids: tuple[str, ...]) -> frozenset[str]:
    """The chain ids of an image's layers (``RootFS.Layers`` are diff ids), as the daemon names
    the layers it deletes: the first is its diff id, each next one sha256 of "PREVIOUS DIFF"."""
    chain: list[str] = []
    for diff_id in diff_ids:
        previous = chain[-1] if chain else None
        chain.append(
            diff_id
            if previous is None
            else "sha256:" + hashlib.sha256(f"{previous} {diff_id}".encode()).hexdigest()
        )
    return frozenset(chain)
