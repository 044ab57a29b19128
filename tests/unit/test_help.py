"""--help teaches: each command's own exit codes and examples, whole summaries, one metavar style."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from reconciler.cli.commands import cli
from reconciler.errors import ManifestError

CODES = {
    "validate": [0, 64, 65, 1],
    "plan": [0, 2, 3, 64, 65, 69, 75, 1],
    "apply": [0, 3, 4, 64, 65, 69, 75, 130, 1],
    "export": [0, 64, 69, 1],
    "history": [0, 64, 1],
    "watch": [0, 64, 1],
    "schema": [0],
}


def help_of(*args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(("command", "codes"), CODES.items())
def test_each_command_lists_its_own_exit_codes_and_examples(command: str, codes: list[int]) -> None:
    text = help_of(command)
    table = text.split("Exit codes:")[1]
    assert [int(c) for c in re.findall(r"^ +(\d+) ", table, flags=re.MULTILINE)] == codes
    examples = text.split("Examples:")[1].split("Exit codes:")[0]
    assert f"reconcile {command}" in examples


def test_the_command_list_is_not_cut_off() -> None:
    listing = help_of().split("Commands:")[1]
    assert "..." not in listing
    assert "_RECONCILE_COMPLETE=bash_source reconcile" in help_of()


def test_option_help_says_what_the_option_does_here() -> None:
    assert "plan only reads" not in help_of("history")
    apply = help_of("apply")
    assert "RANGE" not in apply and "--pull-timeout SECONDS" in apply and "--parallelism N" in apply
    assert "--context NAME" in apply and "--yes" in apply
    assert "[text|json]" not in help_of("schema")


def test_a_dash_reads_the_manifest_from_stdin() -> None:
    runner = CliRunner()
    valid = runner.invoke(cli, ["validate", "-"], input="version: 1\nimages:\n  - name: nginx\n")
    assert valid.exit_code == 0 and valid.output == "- is valid: 1 image entry.\n"
    invalid = runner.invoke(cli, ["validate", "-"], input="version: 1\nimages:\n\t- name: nginx\n")
    assert isinstance(invalid.exception, ManifestError)  # main() turns it into exit 65
    assert str(invalid.exception).startswith("-:3:1: invalid YAML: a tab character")
