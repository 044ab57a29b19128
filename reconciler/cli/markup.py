"""rich's console markup without rich: escaping text into it, and reading it back as plain text.

The CLI writes its lines in rich's markup (``[bold]...[/]``). On a terminal rich renders
them; everywhere else (pipes, CI logs, files) :func:`plain` gives the same characters rich
would print there, without importing rich (a fifth of a second at start-up). The rules are
rich's own: a tag is ``[`` then a letter, ``#``, ``/`` or ``@`` up to ``]``; a backslash
before one makes it text; pairs of backslashes before a tag are literal backslashes.
"""

from __future__ import annotations

import re

_TAG = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")
_ESCAPE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")


def escape(text: str) -> str:
    """``text`` as markup that shows it unchanged (rich.markup.escape)."""
    if "[" not in text and not text.endswith("\\"):
        return text  # most text: nothing to escape (a plan writes a few for each of thousands of steps)
    escaped = _ESCAPE.sub(lambda m: f"{m.group(1)}{m.group(1)}\\{m.group(2)}", text)
    if escaped.endswith("\\") and not escaped.endswith("\\\\"):
        return escaped + "\\"
    return escaped


def plain(markup: str) -> str:
    """The text rich shows for ``markup``, its tags left out (emoji codes are not replaced)."""
    if "[" not in markup:
        return markup
    parts: list[str] = []
    position = 0
    for match in _TAG.finditer(markup):
        full, escapes, _ = match.groups()
        start, end = match.span()
        if start > position:
            parts.append(markup[position:start].replace("\\[", "["))
        position = end
        if escapes:
            backslashes, escaped = divmod(len(escapes), 2)
            parts.append("\\" * backslashes)
            if escaped:
                parts.append(full[len(escapes) :])
    if position < len(markup):
        parts.append(markup[position:].replace("\\[", "["))
    return "".join(parts)
