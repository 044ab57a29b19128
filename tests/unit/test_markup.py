"""The plain writer prints what rich prints off a terminal, and start-up off a terminal needs neither rich,
jsonschema nor docker-py for a valid manifest."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.errors import MarkupError
from rich.markup import escape as rich_escape

from reconciler.cli.markup import escape, plain

pieces = st.sampled_from(["[", "]", "\\", "a", "/", "#", "@", " ", "x", "[bold]", "[/]", "[red]", "=", "é"])
texts = st.lists(pieces, max_size=14).map("".join)


def _rich_prints(markup: str) -> str | None:
    buffer = io.StringIO()
    console = Console(file=buffer, highlight=False, soft_wrap=True, color_system=None, emoji=False)
    try:
        console.print(markup, highlight=False)
    except MarkupError:
        return None
    return buffer.getvalue()


@settings(max_examples=500, deadline=None)
@given(texts)
def test_escape_is_riches(text: str) -> None:
    assert escape(text) == rich_escape(text)


@settings(max_examples=500, deadline=None)
@given(texts)
def test_plain_text_is_what_rich_prints(text: str) -> None:
    for markup in (text, f"[bold]{escape(text)}[/] and {escape(text)}"):
        printed = _rich_prints(markup)
        if printed is not None:
            assert plain(markup) + "\n" == printed


def test_validate_in_a_pipe_imports_no_rich_jsonschema_or_docker(tmp_path: Path) -> None:
    manifest = tmp_path / "images.yaml"
    manifest.write_text("version: 1\nimages:\n  - name: nginx\n    tags: ['1.25']\n")
    probe = (
        "import sys, runpy; sys.argv = ['reconcile', 'validate', sys.argv[1]]\n"
        "try:\n    runpy.run_module('reconciler', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in ('rich', 'jsonschema', 'docker', 'requests') if m in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", probe, str(manifest)], capture_output=True, text=True, check=True)
    assert found.stdout.strip().splitlines() == [f"{manifest} is valid: 1 image entry.", "[]"]
