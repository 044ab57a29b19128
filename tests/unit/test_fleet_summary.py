"""The summary that ends a run over several hosts, on plain outcomes."""

from __future__ import annotations

from reconciler.cli.fleet import Target, summarize, summary_table
from reconciler.errors import ExitCode
from reconciler.flows.outcomes import PlanOutcome
from reconciler.model.plan import Action, Plan, Step


def test_a_plan_that_prunes_build_cache_is_summed_up_in_the_table_and_json() -> None:
    plan = Plan(
        steps=(
            Step(Action.PULL, "example.com/web:1", "declared"),
            Step(Action.PRUNE_CACHE, "t02eb", "unused for 7d", bytes=200),
        )
    )
    row = summarize(
        Target("build-1", "unix:///x.sock", None),
        PlanOutcome("unix:///x.sock", plan, ExitCode.CHANGES_PENDING),
        1.0,
    )
    table = summary_table([row], planned=True)
    assert table.splitlines()[1].split()[:3] == ["build-1", "changes", "1"]
    document = row.as_dict()
    assert document["pulled"] == 1 and document["cache_records_pruned"] == 1
