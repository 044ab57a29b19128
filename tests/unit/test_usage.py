"""Usage state: events to facts, folding, and the SQLite store in a temporary state directory."""

from __future__ import annotations

from pathlib import Path

from reconciler.daemon.docker_engine import event_from_api
from reconciler.model.inventory import ContainerRecord, Inventory
from reconciler.model.usage import UsageFacts, UsageState, facts_from_events, snapshot_facts
from reconciler.state.usage_store import read_usage, record_usage, usage_path
from tests.unit.planning_data import image, image_id

HOST = "unix:///run/docker.sock"
TAG = "docker.io/library/app:1"


def host(*images: object, containers: tuple[ContainerRecord, ...] = ()) -> Inventory:
    return Inventory(images=images, containers=containers, host=HOST)  # type: ignore[arg-type]


def test_container_events_mark_their_image_used_via_the_container_or_the_image_name() -> None:
    inventory = host(
        image("a", "app:1"),
        image("b", "tool:2"),
        containers=(ContainerRecord(id="c" * 64, name="web", image_id=image_id("a")),),
    )
    events = [
        {"Type": "container", "Action": "create", "time": 100, "Actor": {"ID": "c" * 64, "Attributes": {"image": "x"}}},
        {"Type": "container", "Action": "start", "time": 150, "Actor": {"ID": "d" * 64, "Attributes": {"image": "tool:2"}}},
        {"Type": "container", "Action": "start", "time": 90, "Actor": {"ID": "c" * 64, "Attributes": {}}},
        {"Type": "container", "Action": "start", "time": 95, "Actor": {"ID": "e" * 64, "Attributes": {"image": "gone:1"}}},
    ]
    facts = facts_from_events([event_from_api(e) for e in events], inventory)
    assert facts.uses == {image_id("a"): 100.0, image_id("b"): 150.0}


def test_image_events_say_where_tags_point() -> None:
    inventory = host(image("a", "app:1"), image("b"))
    events = [
        {"Type": "image", "Action": "pull", "time": 10, "Actor": {"ID": "app:1", "Attributes": {"name": "app"}}},
        {"Type": "image", "Action": "tag", "time": 20, "Actor": {"ID": image_id("b"), "Attributes": {"name": "app:old"}}},
    ]
    facts = facts_from_events([event_from_api(e) for e in events], inventory)
    assert facts.tags == ((TAG, image_id("a"), 10.0), ("docker.io/library/app:old", image_id("b"), 20.0))
    assert facts.uses == {image_id("a"): 10.0, image_id("b"): 20.0}


def test_no_state_file_reads_as_empty_and_creates_nothing(tmp_path: Path) -> None:
    assert read_usage(tmp_path / "state", HOST) == UsageState()
    assert not (tmp_path / "state").exists()


def test_recorded_uses_keep_the_latest_time_and_the_cursor(tmp_path: Path) -> None:
    record_usage(tmp_path, HOST, [UsageFacts(uses={"sha256:a": 50.0})], until=60.0)
    record_usage(tmp_path, HOST, [UsageFacts(uses={"sha256:a": 40.0, "sha256:b": 70.0})], until=80.0)
    state = read_usage(tmp_path, HOST)
    assert state.last_used == {"sha256:a": 50.0, "sha256:b": 70.0}
    assert state.events_until == 80.0
    assert read_usage(tmp_path, "unix:///other.sock") == UsageState()  # per daemon


def test_a_moved_tag_keeps_its_old_images_newest_first(tmp_path: Path) -> None:
    for when, target in ((1.0, "sha256:a"), (2.0, "sha256:a"), (3.0, "sha256:b"), (4.0, "sha256:c")):
        record_usage(tmp_path, HOST, [UsageFacts(tags=((TAG, target, when),))], until=when)
    state = read_usage(tmp_path, HOST)
    assert state.tag_images == {TAG: ("sha256:c", "sha256:b", "sha256:a")}
    now_at_c = host(image("c", "app:1"))
    assert state.previous(Inventory(images=(), host=HOST)) == {TAG: ("sha256:c", "sha256:b", "sha256:a")}
    c_id = image_id("c")
    record_usage(tmp_path, HOST, [UsageFacts(tags=((TAG, c_id, 5.0),))], until=5.0)
    assert read_usage(tmp_path, HOST).previous(now_at_c) == {TAG: ("sha256:c", "sha256:b", "sha256:a")}


def test_folding_in_memory_matches_what_recording_stores(tmp_path: Path) -> None:
    facts = (
        UsageFacts(uses={"sha256:a": 5.0}, tags=((TAG, "sha256:a", 1.0), (TAG, "sha256:b", 2.0))),
        snapshot_facts(host(image("c", "app:1")), [TAG, "docker.io/library/none:1"], 3.0),
    )
    folded = UsageState().folded(*facts)
    record_usage(tmp_path, HOST, facts, until=3.0)
    stored = read_usage(tmp_path, HOST)
    assert folded.tag_images == stored.tag_images == {TAG: (image_id("c"), "sha256:b", "sha256:a")}
    assert folded.last_used == stored.last_used == {"sha256:a": 5.0}


def test_the_state_file_is_written_in_wal_mode_and_read_without_writing(tmp_path: Path) -> None:
    record_usage(tmp_path, HOST, [UsageFacts(uses={"sha256:a": 1.0})], until=1.0)
    before = usage_path(tmp_path).read_bytes()
    usage_path(tmp_path).chmod(0o400)
    try:
        assert read_usage(tmp_path, HOST).last_used == {"sha256:a": 1.0}
    finally:
        usage_path(tmp_path).chmod(0o600)
    assert usage_path(tmp_path).read_bytes() == before
    assert before[18:20] == b"\x02\x02"  # the header's read/write versions: 2 is WAL
