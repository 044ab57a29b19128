"""JSON Schema validation of a manifest, each violation rewritten into a sentence.

The validator's errors become diagnostics at the YAML position of the value
they concern, worded for people: unknown keys with the closest allowed one,
missing keys, wrong types with a hint (quote it, add a unit, write a list),
choices, duplicates, patterns and units.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from reconciler.errors import Diagnostic
from reconciler.loading.schema import load_schema
from reconciler.loading.schema_check import satisfies_schema
from reconciler.loading.yaml_source import Plain, SourceDocument, YamlPath, format_path
from reconciler.model.units import UnitError, parse_duration, parse_percent, parse_size

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, ValidationError


@cache
def _validator(schema: str) -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema(schema))


def schema_diagnostics(
    document: SourceDocument, data: dict[str, Plain], schema: str = "manifest"
) -> list[Diagnostic]:
    """Every violation of ``schema`` (manifest or inventory) in ``data``, as a sentence at its YAML position.

    A document the quick check passes has none; only for the others is jsonschema
    imported and run, for its errors.
    """
    if satisfies_schema(data, schema):
        return []
    diagnostics: list[Diagnostic] = []
    for error in _validator(schema).iter_errors(data):
        if error.validator == "pattern" and isinstance(error.schema, dict) and error.schema.get("x-checked-by"):
            continue  # the pattern is for editors; the reference checks say exactly what is wrong
        path = tuple(error.absolute_path)
        render = _RENDERERS.get(str(error.validator), _render_default)
        diagnostics.extend(render(document, error, path))
    return diagnostics


def _render_unknown_keys(
    document: SourceDocument, error: ValidationError, path: YamlPath
) -> Iterator[Diagnostic]:
    allowed = list(error.schema.get("properties", {})) if isinstance(error.schema, dict) else []
    for key in _instance(error):
        if key in allowed:
            continue
        import difflib  # only an unknown key's suggestion needs it

        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"; did you mean '{close[0]}'? Allowed keys" if close else "; allowed keys"
        message = f"unknown key '{key}'{hint}: {', '.join(allowed)}."
        yield document.diagnostic((*path, key), message, at_key=True)


def _render_required(
    document: SourceDocument, error: ValidationError, path: YamlPath
) -> Iterator[Diagnostic]:
    for key in _keyword_value(error):
        if key not in _instance(error):
            hint = "; start the file with `version: 1`" if key == "version" and not path else ""
            yield document.diagnostic(path, f"missing required key '{key}'{hint}.")


def _render_type(
    document: SourceDocument, error: ValidationError, path: YamlPath
) -> Iterator[Diagnostic]:
    expected = _keyword_value(error)
    wanted = [expected] if isinstance(expected, str) else list(expected)
    value = _instance(error)
    names = " or ".join(_TYPE_NAMES.get(name, name) for name in wanted)
    hint = _type_hint(document, path, wanted, value)
    yield document.diagnostic(
        path, f"expected {names}, got {_describe(document, path, value)}{hint}."
    )


def _type_hint(document: SourceDocument, path: YamlPath, wanted: list[str], value: Any) -> str:
    unit = _UNIT_EXAMPLES.get(str(path[-1])) if path and path[0] == "retention" else None
    if unit is not None and isinstance(value, int) and not isinstance(value, bool):
        return f"; add a unit, such as {_source_text(document, path, value)}{unit}"
    if "string" in wanted and isinstance(value, int):
        return f'; quote it: "{_source_text(document, path, value)}"'
    if "array" in wanted and isinstance(value, str):
        return f"; write it as a list: {json.dumps([value])}"
    if "object" in wanted and isinstance(value, str) and len(path) == 2 and path[0] == "images":
        return f"; write it as `- name: {value}`"
    return ""


def _render_enum(
    document: SourceDocument, error: ValidationError, path: YamlPath
) -> Iterator[Diagnostic]:
    choices = ", ".join(str(choice) for choice in _keyword_value(error))
    got = _describe(document, path, _instance(error))
    yield document.diagnostic(path, f"must be one of: {choices} (got {got}).")


def _render_const(
    document: SourceDocument, error: ValidationError, path: YamlPath
) -> Iterator[Diagnostic]:
    wanted, value = _keyword_value(error), _instance(error)
    if path != ("version",):
        got = _describe(document, path, value)
        yield document.diagnostic(path, f"must be {json.dumps(wanted)} (got {got}).")
    elif isinstance(value, str) and value == str(wanted):
        message = f"the version is the number {wanted}, not the text '{value}'; remove the quotes."
        yield document.diagnostic(path, message)
    else:
        shown = _source_text(document, path, value) if isinstance(value, int) else repr(value)
        message = f"unsupported version {shown}; this reconcile reads version {wanted}."
        yield document.diagnostic(path, message)


def _render_unique(
    document: SourceDocument, error: ValidationError, path: YamlPath
) -> Iterator[Diagnostic]:
    first_index: dict[str, int] = {}
    for index, item in enumerate(_instance(error)):
        key = json.dumps(item, sort_keys=True)  # unlike ==, tells 1 from true
        first = first_index.setdefault(key, index)
        if first != index:
            item_path = (*path, index)
            first_path = (*path, first)
            got = _describe(document, item_path, item)
            where = f"{format_path(first_path)}, line {document.position(first_path)[0]}"
            yield document.diagnostic(
                item_path, f"{got} is listed twice (first as {where}); list it once."
            )


def _render_min_length(
    document: SourceDocument, error: ValidationError, path: YamlPath
) -> Iterator[Diagnostic]:
    yield document.diagnostic(path, "must not be empty.")


def _render_pattern(
    document: SourceDocument, error: ValidationError, path: YamlPath
) -> Iterator[Diagnostic]:
    value = _instance(error)
    unit_parser = _UNIT_PARSERS.get(str(path[-1])) if path and path[0] == "retention" else None
    if path and path[-1] == "platform":
        message = (
            f"'{value}' is not a platform; write os/arch or os/arch/variant in lower case,"
            " such as linux/amd64 or linux/arm64/v8."
        )
    elif unit_parser is not None:
        message = _unit_problem(unit_parser, str(value)) or f"{value!r} is out of range."
    else:
        message = f"'{value}' does not match the pattern {_keyword_value(error)}."
    yield document.diagnostic(path, message)


def _render_default(
    document: SourceDocument, error: ValidationError, path: YamlPath
) -> Iterator[Diagnostic]:
    yield document.diagnostic(path, error.message.rstrip(".") + ".")


def _render_one_of(
    document: SourceDocument, error: ValidationError, path: YamlPath
) -> Iterator[Diagnostic]:
    forms = [_form(branch) for branch in _keyword_value(error) if isinstance(branch, dict)]
    value = _describe(document, path, _instance(error))
    yield document.diagnostic(path, f"expected {' or '.join(forms)}, got {value}.")


def _form(branch: dict[str, Any]) -> str:
    """One branch of a ``oneOf`` in words: ``a string``, ``a mapping with labels``."""
    name = _TYPE_NAMES.get(str(branch.get("type")), str(branch.get("type")))
    required = branch.get("required") or ()
    return f"{name} with {', '.join(required)}" if required else name


def _instance(error: ValidationError) -> Any:
    """The value that failed (typed loosely by jsonschema)."""
    return error.instance


def _keyword_value(error: ValidationError) -> Any:
    """The failed keyword's value in the schema, such as the ``enum`` choices."""
    return error.validator_value


_RENDERERS = {
    "additionalProperties": _render_unknown_keys,
    "required": _render_required,
    "type": _render_type,
    "enum": _render_enum,
    "const": _render_const,
    "uniqueItems": _render_unique,
    "minLength": _render_min_length,
    "pattern": _render_pattern,
    "oneOf": _render_one_of,
}

_TYPE_NAMES = {
    "string": "a string",
    "array": "a list",
    "object": "a mapping",
    "boolean": "true or false",
    "integer": "a whole number",
    "number": "a number",
    "null": "an empty value",
}


def _describe(document: SourceDocument, path: YamlPath, value: Any) -> str:
    """A value as a message names it: 'text', the number 1, true, a list."""
    if isinstance(value, str):
        return repr(value) if "'" in value else f"'{value}'"
    if isinstance(value, bool):
        return f"the boolean {_source_text(document, path, value)}"
    if isinstance(value, int):
        return f"the number {_source_text(document, path, value)}"
    if value is None:
        return "an empty value"
    return "a list" if isinstance(value, list) else "a mapping"


def _source_text(document: SourceDocument, path: YamlPath, value: Any) -> str:
    """The scalar as written in the file (``True``, ``+1``), else as JSON writes it."""
    return document.scalar_texts.get(path) or json.dumps(value)


# --- units of the retention: values, for the pattern and type messages above ---

_UNIT_PARSERS: dict[str, Callable[[str], float]] = {
    "min_age": parse_duration,
    "keep_within": parse_duration,
    "older_than": parse_duration,
    "max_total": parse_size,
    "high": parse_percent,
    "low": parse_percent,
}

# The unit a bare number most likely lacks, for the hint.
_UNIT_EXAMPLES = {"min_age": "h", "keep_within": "d", "older_than": "d", "max_total": "GB"}
_UNIT_EXAMPLES |= {"high": "%", "low": "%"}


def _unit_problem(parser: Callable[[str], float], text: str) -> str | None:
    try:
        parser(text)
    except UnitError as exc:
        return str(exc)
    return None
