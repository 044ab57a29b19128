"""Where the CLI writes: stdout for results, stderr for progress, warnings and errors.

Lines are written in rich's markup. On a terminal rich renders them (colour, live
displays); anywhere else a plain writer prints the same text without importing rich.
No colour at all when NO_COLOR is set.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

import click

from reconciler.cli.markup import escape, plain

if TYPE_CHECKING:
    from rich.console import Console


class Printer(Protocol):
    """What the commands print through: a rich Console, or :class:`PlainPrinter`."""

    @property
    def is_terminal(self) -> bool: ...

    def print(
        self, *objects: Any, sep: str = " ", end: str = "\n", highlight: bool | None = None
    ) -> None: ...


class PlainPrinter:
    """Markup printed as the plain text rich would print off a terminal."""

    is_terminal = False

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def print(
        self, *objects: Any, sep: str = " ", end: str = "\n", highlight: bool | None = None
    ) -> None:
        if any(not isinstance(o, str) for o in objects):
            # A rich renderable (a table, a bar): only rich can lay it out; it is imported just for it.
            from rich.console import Console

            width = int(os.environ.get("COLUMNS", "0") or 0) or None
            Console(
                file=self._stream, color_system=None, highlight=False, soft_wrap=False, width=width
            ).print(*objects, sep=sep, end=end)
            self._stream.flush()
            return
        self._stream.write(plain(sep.join(objects)) + end)
        self._stream.flush()


def error(message: str) -> None:
    err().print(f"[red]Error:[/] {escape(message)}", highlight=False)


def echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2))


def out() -> Printer:
    return _printer(sys.stdout, stderr=False)


def err() -> Printer:
    return _printer(sys.stderr, stderr=True)


def rich_console(stderr: bool) -> Console:
    """A rich Console for a terminal (imports rich)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True, color_system=color_system())


def _printer(stream: IO[str], *, stderr: bool) -> Printer:
    if _terminal(stream):
        return rich_console(stderr)
    return PlainPrinter(stream)


def _terminal(stream: IO[str]) -> bool:
    """Whether rich would treat ``stream`` as a terminal (FORCE_COLOR and TTY_COMPATIBLE=1 say so too)."""
    if os.environ.get("FORCE_COLOR") or os.environ.get("TTY_COMPATIBLE") == "1":
        return True
    if os.environ.get("TTY_COMPATIBLE") == "0":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def color_system() -> Literal["auto"] | None:
    # rich drops only colours for NO_COLOR and still sends bold; None sends no escape codes at all.
    return None if os.environ.get("NO_COLOR") else "auto"


def warn(message: str) -> None:
    err().print(f"[yellow]Warning:[/] {escape(message)}", highlight=False)
