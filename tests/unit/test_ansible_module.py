"""The Ansible module's reading of reconcile: its command lines, what counts as changed or failed,
the failure message and the diff (the module as a whole runs in tests/integration)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

MODULE_PATH = (
    Path(__file__).resolve().parents[2]
    / "ansible_collections/reconciler/reconciler/plugins/modules/reconcile.py"
)


@pytest.fixture(scope="module")
def module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reconcile_ansible_module", MODULE_PATH)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def params(**given: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "docker_host": None, "state_dir": None, "lock_dir": None, "lock_timeout": 0.0,
        "pull_timeout": None, "parallelism": None, "max_removals": None,
        "allow_large_removal": False, "metrics_file": None,
    }  # fmt: skip
    return {**defaults, **given}


PULL = {"action": "pull", "ref": "r.example/app:1", "image_id": None, "reason": "the tag is not on the host"}
REMOVE = {
    "action": "remove",
    "ref": "r.example/old:1",
    "image_id": "sha256:" + "ab" * 32,
    "reason": "r.example/old is declared absent",
}


def test_check_mode_plans_with_the_detailed_exit_code_and_takes_no_lock(module: ModuleType) -> None:
    argv = module.reconcile_argv(
        "reconcile", params(docker_host="ssh://h", lock_timeout=30, metrics_file="/m"), "i.yaml", True
    )
    assert argv == ["reconcile", "plan", "i.yaml", "--output", "json", "--host", "ssh://h", "--detailed-exitcode"]


def test_apply_passes_the_lock_timeout_and_the_run_options(module: ModuleType) -> None:
    argv = module.reconcile_argv(
        "/bin/reconcile",
        params(state_dir="/s", lock_timeout=300, parallelism=2, pull_timeout=60.5, max_removals=5,
               allow_large_removal=True, metrics_file="/m.prom"),
        "i.yaml",
        False,
    )  # fmt: skip
    assert argv == [
        "/bin/reconcile", "apply", "i.yaml", "--output", "json", "--state-dir", "/s",
        "--max-removals", "5", "--allow-large-removal", "--lock-timeout", "300",
        "--pull-timeout", "60.5", "--parallelism", "2", "--metrics-file", "/m.prom",
    ]  # fmt: skip
    assert module.reconcile_environment(params(lock_dir="/locks")) == {"RECONCILE_LOCK_DIR": "/locks"}


def test_check_mode_changed_is_exit_2_and_anything_else_but_0_fails(module: ModuleType) -> None:
    plan = json.dumps({"steps": [PULL], "summary": {"host": "unix:///s"}})
    pending = module.run_result("i.yaml", ["reconcile", "plan"], 2, plan, "", True)
    assert (pending["changed"], pending["failed"], pending["plan"]["steps"]) == (True, False, [PULL])
    in_sync = module.run_result("i.yaml", ["reconcile", "plan"], 0, '{"steps": []}', "", True)
    assert (in_sync["changed"], in_sync["failed"]) == (False, False)
    unreachable = module.run_result("i.yaml", ["reconcile", "plan"], 69, "", "Cannot reach the daemon\n", True)
    assert (unreachable["changed"], unreachable["failed"], unreachable["plan"]) == (False, True, None)
    assert module.failure_message(unreachable) == "`reconcile plan i.yaml` exited 69: Cannot reach the daemon"


def test_apply_changed_means_a_step_was_done_even_when_another_failed(module: ModuleType) -> None:
    report = {
        "steps": [
            {**PULL, "outcome": "failed", "detail": "not found"},
            {**REMOVE, "outcome": "done", "detail": "removed"},
        ],
        "summary": {"host": "unix:///s"},
    }
    result = module.run_result("i.yaml", ["reconcile", "apply"], 3, json.dumps(report), "", False)
    assert (result["changed"], result["failed"], result["rc"]) == (True, True, 3)
    assert module.failure_message(result) == (
        "`reconcile apply i.yaml` exited 3: pull r.example/app:1: failed (not found)"
    )
    nothing = module.run_result("i.yaml", ["reconcile", "apply"], 0, '{"steps": []}', "", False)
    assert (nothing["changed"], nothing["failed"]) == (False, False)
    assert module.diff_of(nothing, False) is None


def test_a_refused_plan_says_why(module: ModuleType) -> None:
    plan = {"steps": [REMOVE], "summary": {"refused": "the plan removes 1 image, more than --max-removals 0"}}
    result = module.run_result("i.yaml", ["reconcile", "plan"], 3, json.dumps(plan), "", True)
    assert result["failed"] and "more than --max-removals 0" in module.failure_message(result)


def test_the_diff_reads_like_the_plan_and_after_an_apply_gives_outcomes(module: ModuleType) -> None:
    plan = {"steps": [PULL, {**REMOVE, "blocked": "in use by container web"}], "summary": {"host": "unix:///s"}}
    checked = module.run_result("i.yaml", ["reconcile", "plan"], 2, json.dumps(plan), "", True)
    assert module.diff_of(checked, True)["prepared"] == (
        "reconcile would change unix:///s for i.yaml:\n"
        "+ pull   r.example/app:1\n"
        "    the tag is not on the host\n"
        "! remove r.example/old:1 (abababababab)\n"
        "    in use by container web\n"
    )
    report = {"steps": [{**PULL, "outcome": "done"}, {**REMOVE, "outcome": "skipped", "detail": "in use"}]}
    applied = module.run_result("i.yaml", ["reconcile", "apply"], 3, json.dumps(report), "", False)
    prepared = module.diff_of(applied, False)["prepared"]
    assert "+ pull   r.example/app:1  [done]" in prepared
    assert "- remove r.example/old:1 (abababababab)  [skipped: in use]" in prepared
