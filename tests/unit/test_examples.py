"""The examples/ jobs parse, have the expected shape, and use only options the CLI has."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from reconciler.cli.commands import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_yaml(name: str) -> dict[Any, Any]:
    data = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def load_unit(name: str) -> configparser.ConfigParser:
    # systemd units allow repeated keys (Environment=), which strict mode refuses.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string((EXAMPLES / name).read_text(encoding="utf-8"))
    return parser


def reconcile_commands(text: str, markdown: bool = False) -> list[list[str]]:
    """Every ``reconcile ...`` command in ``text``, split as a shell would (Markdown: in code spans)."""
    lines = re.findall(r"`(reconcile [^`]+)`", text) if markdown else text.splitlines()
    found = []
    for line in lines:
        match = re.search(r"(?:^|[\s/])reconcile (\w.*)$", line.split(" #", 1)[0])
        if match:
            words = shlex.split(match.group(1))
            ends = [i for i, word in enumerate(words) if word in ("|", "||", "&&", ";")]
            found.append(words[: ends[0]] if ends else words)
    return found


def test_gitlab_plans_merge_requests_and_applies_the_default_branch() -> None:
    data = load_yaml(".gitlab-ci.yml")
    assert data["stages"] == ["plan", "apply"]
    plan = data["plan"]
    assert any("--detailed-exitcode" in line for line in plan["script"])
    assert plan["allow_failure"] == {"exit_codes": [2]}  # 2 is "changes pending", not a failure
    assert "merge_request_event" in plan["rules"][0]["if"]
    assert data["save-plan"]["artifacts"]["paths"] == ["plan.json"]
    apply = data["apply"]
    assert apply["stage"] == "apply"
    assert "$CI_DEFAULT_BRANCH" in apply["rules"][0]["if"]
    assert apply["script"] == ["reconcile apply plan.json"]


def test_github_actions_plans_pull_requests_and_applies_pushes_to_main() -> None:
    data = load_yaml("github-actions.yml")
    # YAML 1.1 reads the key `on` as True; GitHub reads it as "on".
    triggers = data["on"] if "on" in data else data[True]
    assert set(triggers) == {"pull_request", "push"}
    assert triggers["push"]["branches"] == ["main"]
    plan, apply = data["jobs"]["plan"], data["jobs"]["apply"]
    assert plan["if"] == "github.event_name == 'pull_request'"
    plan_script = "\n".join(step.get("run", "") for step in plan["steps"])
    assert "--detailed-exitcode" in plan_script and '"$code" -eq 2' in plan_script
    assert apply["if"] == "github.event_name == 'push'"
    assert [s["run"] for s in apply["steps"] if "run" in s][-1] == "reconcile apply plan.json"


def test_systemd_service_runs_reconcile_apply_once() -> None:
    unit = load_unit("reconcile-apply.service")
    assert {"Unit", "Service"} <= set(unit.sections())
    assert unit["Service"]["Type"] == "oneshot"
    command = shlex.split(unit["Service"]["ExecStart"])
    assert command[0].endswith("/reconcile") and command[1] == "apply"


def test_systemd_watch_service_runs_reconcile_watch_for_as_long_as_docker_runs() -> None:
    unit = load_unit("reconcile-watch.service")
    assert unit["Service"]["Type"] == "simple"
    assert reconcile_commands(unit["Service"]["ExecStart"])[0][0] == "watch"
    assert "docker.service" in unit["Unit"]["Requires"]
    assert unit["Service"]["StateDirectory"] == "reconciler"
    # The applies' state directory: they read what the watch records.
    text = (EXAMPLES / "reconcile-watch.service").read_text(encoding="utf-8")
    assert "Environment=RECONCILE_STATE_DIR=/var/lib/reconciler" in text
    assert "Environment=RECONCILE_STATE_DIR=/var/lib/reconciler" in (EXAMPLES / "reconcile-apply.service").read_text(encoding="utf-8")


def test_systemd_timer_starts_the_service_and_catches_up() -> None:
    unit = load_unit("reconcile-apply.timer")
    assert {"Unit", "Timer", "Install"} <= set(unit.sections())
    assert unit["Timer"]["OnCalendar"]
    assert unit["Timer"]["Persistent"] == "true"
    assert unit["Timer"]["Unit"] == "reconcile-apply.service"
    assert unit["Install"]["WantedBy"] == "timers.target"


def test_crontab_line_has_five_time_fields_and_runs_reconcile_apply() -> None:
    lines = [
        line
        for line in (EXAMPLES / "crontab").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith("MAILTO=")
    ]
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    minute, hour, day, month, weekday, command = fields
    for field, top in ((minute, 59), (hour, 23)):
        assert field.isdigit() and 0 <= int(field) <= top
    assert (day, month, weekday) == ("*", "*", "*")
    assert "reconcile apply " in command
    # The exit code is not lost in a pipe, and reconcile's own lock is not wrapped in another one.
    assert " | " not in command and "flock" not in command
    assert "--lock-timeout" in command and "--metrics-file" in command
    assert "%" not in command  # cron would read it as a newline


@pytest.mark.parametrize(
    "name",
    [".gitlab-ci.yml", "github-actions.yml", "reconcile-apply.service", "reconcile-watch.service", "crontab", "README.md"],
)
def test_examples_use_only_commands_and_options_the_cli_has(name: str) -> None:
    commands = reconcile_commands((EXAMPLES / name).read_text(encoding="utf-8"), name.endswith(".md"))
    assert commands, f"{name} runs no reconcile command"
    for words in commands:
        command = cli.get_command(click.Context(cli), words[0])
        assert command is not None, f"{name}: no command {words[0]!r}"
        known = {opt for param in command.params for opt in param.opts}
        used = {word.split("=", 1)[0] for word in words[1:] if word.startswith("-")}
        assert used <= known, f"{name}: `reconcile {' '.join(words)}` uses unknown options {used - known}"
