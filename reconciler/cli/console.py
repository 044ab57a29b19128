"""Where the CLI writes: stdout for results, stderr for progress, warnings and errors.

Colour only on a terminal, and none at all when NO_COLOR is set.
"""

from __future__ import annotations

import json
import os
from typing import Literal

import click
from rich.console import Console
from rich.markup import escape


def error(message: str) -> None:
    err().print(f"[red]Error:[/] {escape(message)}", highlight=False)


def echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2))


def out() -> Console:
    return Console(highlight=False, soft_wrap=True, color_system=color_system())


def err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True, color_system=color_system())


def color_system() -> Literal["auto"] | None:
    # rich drops only colours for NO_COLOR and still sends bold; None sends no escape codes at all.
    return None if os.environ.get("NO_COLOR") else "auto"


def warn(message: str) -> None:
    err().print(f"[yellow]Warning:[/] {escape(message)}", highlight=False)
