"""A batch's image list parses an image when a step asks for it, and answers as if it had parsed all."""

from __future__ import annotations

from reconciler.daemon.api_records import image_from_api
from reconciler.execution.image_snapshot import ImageSnapshot
from reconciler.model.inventory import ImageRecord

from .planning_data import digest, image_id


def listed(seed: str, tags: list[str], digests: list[str] | None = None) -> ImageRecord:
    return image_from_api({"Id": image_id(seed), "RepoTags": tags, "RepoDigests": digests, "Size": 7})


def parsed(record: ImageRecord) -> bool:
    return "tags" in record.__dict__


def test_a_list_parses_only_the_images_its_steps_ask_for() -> None:
    records = [listed(f"i{n}", [f"reg.local/app:{n}", f"reg.local/app:x{n}"]) for n in range(100)]
    snapshot = ImageSnapshot(records, 0.0)
    found = snapshot.find("reg.local/app:3")
    assert found is not None and found.id == image_id("i3")
    assert found.repo_tags == ("reg.local/app:3", "reg.local/app:x3")
    assert snapshot.find(image_id("i5")) is not None  # by id
    assert [n for n, record in enumerate(records) if parsed(record)] == [3, 5]
    assert snapshot.find("reg.local/app:missing") is None  # no text gives it: every image parsed to be sure
    assert all(parsed(record) for record in records)


def test_a_full_text_is_found_by_the_familiar_name_and_a_digest_by_parsing() -> None:
    pinned = f"docker.io/library/nginx@{digest('n')}"
    podman = listed("n", ["docker.io/library/nginx:1"], [pinned])  # as Podman lists it
    other = listed("o", ["reg.local/other:1"])
    snapshot = ImageSnapshot([podman, other], 0.0)
    assert (found := snapshot.find("nginx:1")) is not None and found.id == podman.id
    assert not parsed(other)
    assert (found := snapshot.find(f"nginx@{digest('n')}")) is not None and found.repo_digests == (pinned,)


def test_deletes_apply_to_images_no_step_asked_for_yet() -> None:
    pinned = f"reg.local/app@{digest('a')}"
    app = listed("a", ["reg.local/app:1", "reg.local/app:2"], [pinned])
    gone = listed("g", ["reg.local/gone:1"])
    snapshot = ImageSnapshot([app, gone], 0.0)
    snapshot.deleted("reg.local/gone:1", [gone.id])
    snapshot.deleted("reg.local/app:1", [])
    assert snapshot.find("reg.local/gone:1") is None and snapshot.find(gone.id) is None
    assert snapshot.find("reg.local/app:1") is None
    assert (found := snapshot.find("reg.local/app:2")) is not None and found.repo_digests == (pinned,)
    # The repository's last tag takes its digest references along, as the daemon does.
    snapshot.deleted("reg.local/app:2", [])
    assert (left := snapshot.find(app.id)) is not None and left.repo_tags == () and left.repo_digests == ()
    assert snapshot.find(pinned) is None
    assert snapshot.image_ids == {app.id, gone.id}
