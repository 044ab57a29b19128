"""PyYAML's syntax errors as sentences: what is wrong at that line, and what to do about it.

PyYAML words its errors for parser writers (``expected <block end>, but found '?'``). The
common mistakes in a hand-written manifest are few: a line indented differently from its
neighbours, a tab, an unquoted ``: `` or ``@``, an unclosed quote or bracket. Each gets a
sentence and a hint; anything else keeps PyYAML's words, with its context.
"""

from __future__ import annotations

import re

from yaml.error import Mark, MarkedYAMLError

_BLOCK_END = re.compile(r"expected <block end>, but found '(?P<found>[^']*)'")
_BAD_CHARACTER = re.compile(r"found character '(?P<char>.*)' that cannot start any token")
_FLOW_END = re.compile(r"expected ',' or '(?P<close>[\]}])', but got '(?P<found>[^']*)'")
_UNDEFINED_ALIAS = re.compile(r"found undefined alias '(?P<name>[^']*)'")
_DUPLICATE_ANCHOR = re.compile(r"found duplicate anchor '(?P<name>[^']*)'; first occurrence")
_FLOW_NAMES = {"]": ("list", "["), "}": ("mapping", "{")}
_QUOTE_HINT = 'quote the value ("..." or \'...\')'


def syntax_message(exc: MarkedYAMLError) -> str:
    """The sentence for ``exc``, starting ``invalid YAML:``, with a hint where one is known."""
    problem = exc.problem or ""
    context = exc.context or ""
    opened = _line(exc.context_mark)
    message = _known_message(problem, context, exc.problem_mark, opened)
    if message is not None:
        return f"invalid YAML: {message}."
    text = f"invalid YAML: {problem or 'the text is not valid YAML'}"
    if context:
        text += f" ({context}"
        if exc.context_mark is not None and exc.context_mark.line != getattr(exc.problem_mark, "line", -1):
            text += f" at line {opened}"
        text += ")"
    return text + "."


def _known_message(problem: str, context: str, mark: Mark | None, opened: int | None) -> str | None:
    column = mark.column if mark is not None else 0
    if match := _BLOCK_END.fullmatch(problem):
        return _misaligned(match["found"], column, opened)
    if problem == "mapping values are not allowed here":
        return (
            "a `:` where no key can start: a value holding `: ` must be quoted, or this line is "
            "indented deeper than the keys beside it; " + _QUOTE_HINT + " or align the key with its neighbours"
        )
    if match := _BAD_CHARACTER.fullmatch(problem):
        char = match["char"]
        if char == "\\t":
            return "a tab character: YAML indents with spaces only; replace the tab with spaces"
        return f"an unquoted value cannot start with the character {char!r}; {_QUOTE_HINT}"
    if problem == "found unexpected end of stream" and "quoted scalar" in context:
        where = f" opened at line {opened}" if opened else ""
        return f"the quoted value{where} is never closed; add the closing quote"
    if problem == "could not find expected ':'" and "simple key" in context:
        where = f"line {opened}" if opened else "the line above"
        return f"{where} holds a key without `:` after it; write `key: value`, or `- value` for a list item"
    if match := _FLOW_END.fullmatch(problem):
        kind, start = _FLOW_NAMES[match["close"]]
        where = f" opened at line {opened}" if opened else ""
        return (
            f"the {kind} `{start}...{match['close']}`{where} is not closed, or its items are not separated "
            f"by commas; close it with `{match['close']}` and separate items with `, `"
        )
    if match := _DUPLICATE_ANCHOR.fullmatch(context):
        return f"the anchor `&{match['name']}` is defined twice (first at line {opened}); give each anchor its own name"
    if match := _UNDEFINED_ALIAS.fullmatch(problem):
        name = match["name"]
        return f"the alias `*{name}` names no anchor `&{name}` defined above it"
    return None


def _misaligned(found: str, column: int, opened: int | None) -> str:
    """A token where the block that encloses it should have ended: almost always indentation."""
    what = {
        "<block mapping start>": "a key",
        "?": "a key",
        "<block sequence start>": "a list item",
        "-": "a list item",
        "<scalar>": "a value",
    }.get(found, f"`{found}`")
    if found == "<scalar>":
        return (
            "text follows a complete value on the same line (such as `\"a\" b`); "
            f"{_QUOTE_HINT} as a whole, or move the rest to its own line"
        )
    block = f"the block that starts at line {opened}" if opened else "the lines above it"
    return (
        f"{what} at column {column + 1} lines up with nothing in {block}; indent it exactly as the "
        "lines it belongs with, using spaces (the keys of one list entry share the column after `- `)"
    )


def _line(mark: Mark | None) -> int | None:
    return None if mark is None else mark.line + 1
