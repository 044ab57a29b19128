"""Build cache planning on plain data, the API's records, the prune filter, and apply on the fake daemon."""

from __future__ import annotations

import pytest

from reconciler.daemon.build_cache_records import build_cache_from_df, prune_filter
from reconciler.errors import ManifestError
from reconciler.execution.executor import Executor
from reconciler.loading.loader import load_manifest_text
from reconciler.model.build_cache import BuildCacheRecord
from reconciler.model.host_facts import HostFacts
from reconciler.model.inventory import Inventory
from reconciler.model.manifest import BuildCacheSpec
from reconciler.model.plan import Action
from reconciler.model.report import Outcome
from reconciler.planning.build_cache import plan_build_cache
from reconciler.planning.host_plan import decide

from ..fake_daemon import FakeDockerHost

NOW = 2_000_000_000.0
DAY = 86_400


def record(name: str, size: int, idle_days: float, *, in_use: bool = False, shared: bool = False) -> BuildCacheRecord:
    return BuildCacheRecord(name, "regular", "", size, NOW - 30 * DAY, NOW - idle_days * DAY, in_use, shared)


def test_records_unused_for_longer_than_unused_for_go_but_never_in_use_or_shared_ones() -> None:
    records = [record("old", 10, 9), record("busy", 10, 9, in_use=True), record("shared", 10, 9, shared=True), record("new", 10, 1)]
    steps = plan_build_cache(BuildCacheSpec(unused_for=7 * DAY), records, NOW)
    assert [(s.action, s.ref, s.bytes) for s in steps] == [(Action.PRUNE_CACHE, "old", 10)]
    assert "unused for 9d, over unused_for 1w" in steps[0].reason


def test_keep_storage_prunes_the_least_recently_used_until_the_cache_fits() -> None:
    records = [record("a", 100, 5), record("b", 100, 4), record("c", 100, 3), record("d", 100, 2), record("s", 500, 9, shared=True)]
    steps = plan_build_cache(BuildCacheSpec(keep_storage=250), records, NOW)
    assert [s.ref for s in steps] == ["a", "b"]  # 400 counted (shared data is not the cache's): 2 go
    both = plan_build_cache(BuildCacheSpec(keep_storage=250, unused_for=4 * DAY + 1), records, NOW)
    assert [s.ref for s in both] == ["a", "b"]
    assert "unused_for" in both[0].reason and "keep_storage" in both[1].reason


def test_a_never_used_record_counts_from_its_creation() -> None:
    fresh = BuildCacheRecord("x", "regular", "", 1, NOW - 10 * DAY, None, False, False)
    assert [s.ref for s in plan_build_cache(BuildCacheSpec(unused_for=DAY), [fresh], NOW)] == ["x"]


def test_the_api_records_parse_and_go_time_zero_is_never_used() -> None:
    usage = {"BuildCache": [
        {"ID": "b2", "Type": "source.local", "Description": "local source for context", "InUse": False, "Shared": False,
         "Size": 37, "CreatedAt": "2026-12-01T22:14:17.296534826Z", "LastUsedAt": None, "UsageCount": 1},
        {"ID": "a1", "Type": "regular", "InUse": True, "Shared": True, "Size": 5,
         "CreatedAt": "2026-12-01T22:14:17Z", "LastUsedAt": "0001-01-01T00:00:00Z"},
    ]}
    first, second = build_cache_from_df(usage)
    assert (first.id, first.in_use, first.shared, first.last_used) == ("a1", True, True, None)
    assert (second.size, second.description, round(second.created, 3)) == (37, "local source for context", 1796163257.297)
    assert build_cache_from_df({"BuildCache": None}) == ()


def test_the_prune_filter_names_exactly_one_record() -> None:
    # The daemon matches `id` as a regular expression: unanchored, `abc` prunes every id containing it.
    assert prune_filter("t02eb0uysafrohmi0fcxxxd8z") == {"id": ["^t02eb0uysafrohmi0fcxxxd8z$"]}
    with pytest.raises(ValueError):
        prune_filter(".*")


def test_the_section_loads_and_its_units_are_checked_at_their_line() -> None:
    manifest = load_manifest_text("version: 1\nbuild_cache: {keep_storage: 20GB, unused_for: 7d}\n", "m.yaml", environ={})
    assert manifest.build_cache == BuildCacheSpec(keep_storage=20_000_000_000, unused_for=7 * DAY)
    with pytest.raises(ManifestError) as caught:
        load_manifest_text("version: 1\nbuild_cache:\n  unused_for: 0x\n  keep: 1GB\n", "m.yaml", environ={})
    messages = [str(d) for d in caught.value.diagnostics]
    assert any(m.startswith("m.yaml:3:15: build_cache.unused_for") for m in messages)
    assert any("unknown key 'keep'" in m for m in messages)


def test_apply_prunes_exactly_the_planned_records_and_reports_the_bytes_the_daemon_reclaimed() -> None:
    host = FakeDockerHost()
    for found in (record("old", 100, 9), record("busy", 100, 9), record("new", 100, 1)):
        host.cache_records[found.id] = found
    manifest = load_manifest_text("version: 1\nbuild_cache: {unused_for: 7d}\n", "m.yaml", environ={})
    facts = HostFacts(Inventory(), build_cache=host.build_cache())
    plan = decide(manifest, facts, NOW).plan
    assert [s.ref for s in plan.steps] == ["busy", "old"]
    # Between plan and apply a build takes up "busy": BuildKit then leaves it alone.
    host.cache_records["busy"] = record("busy", 100, 9, in_use=True)
    report = Executor(host).apply(plan)
    assert [(r.step.ref, r.outcome, r.bytes) for r in report.results] == [("busy", Outcome.SKIPPED, None), ("old", Outcome.DONE, 100)]
    assert sorted(host.cache_records) == ["busy", "new"]
