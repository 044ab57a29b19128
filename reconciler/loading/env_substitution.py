"""Environment substitution in a manifest's string values, as Compose does it.

``${VAR}``, ``${VAR:-default}`` and ``$$`` in every string value (keys stay as
written); a variable that cannot be expanded becomes a diagnostic at the
value's position, and the value keeps its text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from reconciler.errors import Diagnostic
from reconciler.loading.yaml_source import Plain, SourceDocument, YamlPath

_VARIABLE = re.compile(
    r"\$(?:(?P<dollar>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<default>:-[^}]*)?\}"
    r"|(?P<malformed>\{))"
)


def substitute_all(
    document: SourceDocument, environ: Mapping[str, str]
) -> tuple[dict[str, Plain], list[Diagnostic]]:
    """Substitute ``${VAR}`` in every string value (keys stay as written)."""
    try:
        return {key: _substituted(value, environ) for key, value in document.data.items()}, []
    except _Unexpanded:
        pass  # walk again, keeping the paths, to place each problem
    diagnostics: list[Diagnostic] = []

    def walk(value: Plain, path: YamlPath) -> Plain:
        if isinstance(value, str):
            text, problems = expand_variables(value, environ)
            diagnostics.extend(document.diagnostic(path, problem) for problem in problems)
            return text
        if isinstance(value, list):
            return [walk(item, (*path, index)) for index, item in enumerate(value)]
        if isinstance(value, dict):
            return {key: walk(item, (*path, key)) for key, item in value.items()}
        return value

    return {key: walk(value, (key,)) for key, value in document.data.items()}, diagnostics


class _Unexpanded(Exception):
    """Internal: a variable could not be expanded, and its diagnostic needs the value's path."""


def _substituted(value: Plain, environ: Mapping[str, str]) -> Plain:
    """``value`` with its strings substituted, when every variable in them can be."""
    if isinstance(value, str):
        if "$" not in value:
            return value
        text, problems = expand_variables(value, environ)
        if problems:
            raise _Unexpanded
        return text
    if isinstance(value, list):
        return [_substituted(item, environ) for item in value]
    if isinstance(value, dict):
        return {key: _substituted(item, environ) for key, item in value.items()}
    return value


def expand_variables(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """Expand ``${VAR}``, ``${VAR:-default}`` and ``$$`` as Compose does.

    The default applies when the variable is unset or empty and is taken
    literally (no nested ``${...}``). Returns the new text and a sentence for
    each variable that could not be expanded.
    """
    if "$" not in text:
        return text, []
    problems: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match["dollar"]:
            return "$"
        if match["malformed"]:
            problems.append(_malformed_message(text, match.start()))
            return match[0]
        name, default = match["name"], match["default"]
        value = environ.get(name)
        if default is not None and not value:
            return default[2:]
        if value is None:
            problems.append(
                f"environment variable {name} is not set; export it or write ${{{name}:-default}}."
            )
            return match[0]
        return value

    return _VARIABLE.sub(replace, text), problems


def _malformed_message(text: str, start: int) -> str:
    end = text.find("}", start)
    snippet = text[start:] if end < 0 else text[start : end + 1]
    return (
        f"malformed variable reference {snippet!r}; write ${{NAME}} or ${{NAME:-default}}, "
        "or $$ for a literal $."
    )
