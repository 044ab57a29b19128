"""Usage state: events to facts, folding, and the SQLite store in a temporary state directory."""

from __future__ import annotations

from pathlib import Path

from reconciler.daemon.docker_engine import event_from_api
from reconciler.model.inventory import ContainerRecord, DaemonEvent, EventWindow, Inventory
from reconciler.model.usage import (
    EventMark,
    UsageFacts,
    UsageState,
    event_gap,
    facts_from_events,
    merged_arrivals,
    sighting_facts,
    snapshot_facts,
)
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


def test_podmans_pull_events_with_an_empty_actor_id_are_resolved_by_their_name() -> None:
    inventory = host(image("a", "app:1"))
    events = [  # as Podman 4.3's /events gives them: no Actor.ID, the whole reference in `name`
        {"Type": "image", "Action": "pull", "time": 10,
         "Actor": {"ID": "", "Attributes": {"name": "docker.io/library/app:1", "image": "", "podId": ""}}},
    ]
    facts = facts_from_events([event_from_api(e) for e in events], inventory)
    assert facts.tags == ((TAG, image_id("a"), 10.0),)
    assert facts.uses == {image_id("a"): 10.0}


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


# --- arrivals, departures, resolution at the event's time, sightings, gaps ---------------


def event(kind: str, action: str, actor: str, when: float, **attributes: str) -> DaemonEvent:
    return DaemonEvent(kind, action, actor, attributes, when)


def test_an_arrival_is_the_earliest_time_seen_since_the_image_last_left() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    stored = {a: 10.0, b: 10.0}
    seen = UsageFacts(arrivals={a: 50.0, b: 50.0})
    assert merged_arrivals(stored, seen) == {a: 10.0, b: 10.0}
    # b was deleted at 30 and came back: what was known before 30 is void.
    gone = UsageFacts(departures={b: 30.0})
    assert merged_arrivals(stored, seen, gone) == {a: 10.0, b: 50.0}
    assert merged_arrivals(stored, gone) == {a: 10.0}
    assert UsageState(arrived=stored).folded(seen, gone).arrived == {a: 10.0, b: 50.0}


def test_a_pull_is_credited_to_the_tags_image_only_when_no_later_event_may_have_moved_it() -> None:
    old, new = image("old", created=0), image("new", "app:1", created=0)
    inventory = host(old, new)
    ref = "app:1"
    moved_later = [event("image", "pull", ref, 10.0), event("image", "pull", ref, 20.0)]
    facts = facts_from_events(moved_later, inventory)
    assert facts.tags == ((TAG, new.id, 20.0),)  # the pull at 10 may have brought the old image
    assert facts.arrivals == {new.id: 20.0} and facts.uses == {new.id: 20.0}
    loaded_later = [event("image", "pull", ref, 10.0), event("image", "load", new.id, 15.0)]
    assert facts_from_events(loaded_later, inventory).arrivals == {new.id: 15.0}
    other_load = [event("image", "pull", ref, 10.0), event("image", "load", old.id, 15.0)]
    assert facts_from_events(other_load, inventory).arrivals == {new.id: 10.0, old.id: 15.0}


def test_an_image_built_after_an_event_is_never_credited_with_it() -> None:
    built_later = image("b", "app:1", created=100)
    started = [event("container", "start", "c" * 64, 50.0, image="app:1")]
    assert facts_from_events(started, host(built_later)).uses == {}
    assert facts_from_events([event("image", "pull", "app:1", 50.0)], host(built_later)).arrivals == {}


def test_events_that_carry_an_id_are_taken_at_their_word() -> None:
    a = image("a", "app:1")
    events = [
        event("image", "load", a.id, 5.0),
        event("image", "tag", a.id, 7.0, name="app:1"),
        event("image", "delete", "sha256:" + "d" * 64, 8.0),
        event("container", "create", "c" * 64, 9.0, image="app:2"),  # by a name that is not on the host
    ]
    facts = facts_from_events(events, host(a))
    assert facts.arrivals == {a.id: 5.0}
    assert facts.departures == {"sha256:" + "d" * 64: 8.0}
    assert facts.tags == ((TAG, a.id, 7.0),)


def test_each_run_sees_arrivals_containers_and_departures_itself() -> None:
    a, b = image("a", "app:1"), image("b")
    used = ContainerRecord(id="c" * 64, name="web", image_id=b.id, created=40)
    gone = "sha256:" + "e" * 64
    facts = sighting_facts(host(a, b, containers=(used,)), {a.id: 1.0, gone: 1.0}, 100.0)
    assert facts.arrivals == {a.id: 100.0, b.id: 40.0}
    assert facts.uses == {b.id: 100.0}  # in use by a container: used at every run
    assert facts.departures == {gone: 100.0}


def test_arrivals_and_the_event_anchor_are_stored(tmp_path: Path) -> None:
    a = "sha256:" + "a" * 64
    mark = EventMark(9.5, "image", "pull", "app:1")
    record_usage(tmp_path, HOST, [UsageFacts(arrivals={a: 9.0})], until=10.0, anchor=mark)
    record_usage(tmp_path, HOST, [UsageFacts(arrivals={a: 12.0})], until=12.0)
    state = read_usage(tmp_path, HOST)
    assert state.arrived == {a: 9.0} and state.anchor == mark


def _events(count: int, start: float, kept: int | None = 256) -> EventWindow:
    return EventWindow(tuple(event("container", "exec_start", "c" * 64, start + n) for n in range(count)), kept)


def test_a_gap_in_the_events_is_told_when_the_anchor_is_gone_or_the_buffer_came_back_full() -> None:
    anchor = EventMark(100.0, "container", "exec_start", "c" * 64)
    kept = UsageState(events_until=120.0, anchor=anchor)
    assert event_gap(kept, _events(10, 100.0), 99.999) is None
    restarted = event_gap(kept, _events(3, 500.0), 99.999)
    assert restarted is not None and "restarted" in restarted
    overflowed = event_gap(kept, _events(256, 200.0), 99.999)
    assert overflowed is not None and "more than 256 events" in overflowed
    no_anchor = UsageState(events_until=120.0)
    assert event_gap(no_anchor, _events(256, 130.0), 120.0) is not None
    assert event_gap(no_anchor, _events(255, 130.0), 120.0) is None
    assert event_gap(UsageState(), _events(256, 130.0), 0.0) is None  # a first run has no gap to tell


def test_on_an_event_log_only_a_lost_anchor_tells_a_gap_however_many_events_came() -> None:
    anchor = EventMark(100.0, "container", "exec_start", "c" * 64)
    kept = UsageState(events_until=120.0, anchor=anchor)
    assert event_gap(kept, _events(1000, 100.0, kept=None), 99.999) is None
    assert event_gap(UsageState(events_until=120.0), _events(1000, 130.0, kept=None), 120.0) is None
    rotated = event_gap(kept, _events(3, 500.0, kept=None), 99.999)
    assert rotated is not None and "event log no longer holds" in rotated and "256" not in rotated


class _CountedImages(tuple):  # type: ignore[type-arg]
    """An inventory's images that count how often they are walked."""

    walks = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        type(self).walks += 1
        return super().__iter__()


def test_events_naming_whole_ids_are_resolved_without_walking_the_images_for_each() -> None:
    images = [image(f"i{n}", f"app:{n}") for n in range(1000)]
    events = [event("image", "tag", images[n].id, float(n), name=f"app:t{n}") for n in range(256)]
    _CountedImages.walks = 0
    facts = facts_from_events(events, Inventory(images=_CountedImages(images), host=HOST))
    assert len(facts.tags) == 256
    assert _CountedImages.walks <= 2  # once for the ids (and once for the tags), not once an event


def test_an_id_prefix_names_an_image_only_when_unique_and_12_digits_long() -> None:
    a, b = image("a", "app:1"), image("b", "app:2")
    short, twelve = a.id[7:18], a.id[7:19]
    facts = facts_from_events(
        [event("container", "start", "c" * 64, 5.0, image=twelve), event("container", "start", "d" * 64, 6.0, image=short)],
        host(a, b),
    )
    assert facts.uses == {a.id: 5.0}
