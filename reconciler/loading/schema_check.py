"""A quick yes to "does this manifest satisfy the schema?", without jsonschema.

jsonschema builds its validator and its error objects at a cost a command pays on every
start (its import alone is about a third of a second here). Most manifests are valid, so
this module answers first, walking the schema's own keywords over the data: True only when
every keyword it meets holds. Anything else (a keyword it does not know, a value it is not
sure about, a violation) answers False, and the caller then runs jsonschema itself for the
diagnostics. So a False costs one more pass, and a True is never wrong.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from reconciler.loading.schema import load_schema

# Keywords that say nothing about validity.
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "title",
        "description",
        "default",
        "examples",
        "$comment",
        "$defs",
        "patternErrorMessage",
    }
)  # and every "x-" keyword: notes for editors and for the loader, which no validator reads

Check = Callable[[Any], bool]


def satisfies_schema(data: object, schema: str = "manifest") -> bool:
    """True when ``data`` certainly satisfies ``schema`` (manifest or inventory); False when jsonschema must say."""
    return _root_check(schema)(data)


@cache
def _root_check(name: str) -> Check:
    schema = load_schema(name)
    return _Compiler(schema).compile(schema)


class _Compiler:
    """Turns each (sub)schema into one closure, once; ``$ref`` into the closure of its target."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, Check] = {}
        self.unsure_refs: set[str] = set()
        # Set whenever a check answers False for "not known here" rather than "invalid":
        # "oneOf" and "not" may only count or negate sub-checks that know their answer.
        self.unsure = False

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return _always
        if schema is False:
            return _never
        if not isinstance(schema, dict):
            return self.unknown()  # something this module does not read
        checks: list[Check] = []
        for keyword, value in schema.items():
            if keyword in _ANNOTATIONS or keyword.startswith("x-"):
                continue
            make = _KEYWORDS.get(keyword)
            if make is None:
                return self.unknown()  # a keyword not known here: jsonschema decides
            checks.append(make(self, value, schema))
        return _every(checks)

    def unknown(self) -> Check:
        self.unsure = True
        return _never

    def exact(self, schemas: list[Any]) -> list[Check] | None:
        """Checks of ``schemas`` if each of them knows its answer, else None."""
        outer, self.unsure = self.unsure, False
        checks = [self.compile(sub) for sub in schemas]
        exact = not self.unsure
        self.unsure = outer or self.unsure
        return checks if exact else None

    def ref(self, target: str) -> Check:
        if target not in self.refs:
            if not target.startswith("#/"):
                return self.unknown()
            node: Any = self.root
            for part in target[2:].split("/"):
                node = node.get(part) if isinstance(node, dict) else None
            self.refs[target] = _never  # a cycle resolves late through the dict, below
            outer, self.unsure = self.unsure, False
            compiled = self.compile(node)
            if self.unsure:
                self.unsure_refs.add(target)
            self.unsure = outer or self.unsure
            self.refs[target] = compiled
        elif target in self.unsure_refs:
            self.unsure = True
        return lambda data: self.refs[target](data)


def _every(checks: list[Check]) -> Check:
    """One check that holds when all of ``checks`` do, tried in order (a call per check, where
    ``all()`` over a generator costs twice that)."""
    return functools.reduce(_both, checks) if checks else _always


def _both(first: Check, second: Check) -> Check:
    return lambda data: first(data) and second(data)


def _always(data: Any) -> bool:
    return True


def _never(data: Any) -> bool:
    return False


def _is_type(data: Any, name: str) -> bool:
    if name == "object":
        return isinstance(data, dict)
    if name == "array":
        return isinstance(data, list)
    if name == "string":
        return isinstance(data, str)
    if name == "boolean":
        return isinstance(data, bool)
    if name == "null":
        return data is None
    if name == "integer":
        return isinstance(data, int) and not isinstance(data, bool)
    if name == "number":
        return isinstance(data, int | float) and not isinstance(data, bool)
    return False


def _type(compiler: _Compiler, value: Any, schema: Any) -> Check:
    names = [value] if isinstance(value, str) else list(value)
    if len(names) == 1 and names[0] in _PLAIN_TYPES:  # a type no other JSON type is a subclass of
        kind = _PLAIN_TYPES[names[0]]
        return lambda data: isinstance(data, kind)
    return lambda data: any(_is_type(data, name) for name in names)


# The JSON types that are one Python type each (an integer is an int but not a bool, a number either).
_PLAIN_TYPES: dict[str, type] = {"object": dict, "array": list, "string": str, "boolean": bool}


def _properties(compiler: _Compiler, value: Any, schema: Any) -> Check:
    checks = {key: compiler.compile(sub) for key, sub in value.items()}

    def check(data: Any) -> bool:
        if not isinstance(data, dict):
            return True
        for key, item in data.items():
            each = checks.get(key)
            if each is not None and not each(item):
                return False
        return True

    return check


def _additional_properties(compiler: _Compiler, value: Any, schema: Any) -> Check:
    if "patternProperties" in schema:
        return compiler.unknown()
    known = frozenset(schema.get("properties", {}))
    extra = compiler.compile(value)
    if extra is _never:  # no other key: the check is the keys alone
        return lambda data: not isinstance(data, dict) or known.issuperset(data)

    def check(data: Any) -> bool:
        if not isinstance(data, dict):
            return True
        return all(extra(item) for key, item in data.items() if key not in known)

    return check


def _required(compiler: _Compiler, value: Any, schema: Any) -> Check:
    keys = tuple(value)
    return lambda data: not isinstance(data, dict) or all(key in data for key in keys)


def _min_properties(compiler: _Compiler, value: Any, schema: Any) -> Check:
    return lambda data: not isinstance(data, dict) or len(data) >= value


def _dependent_required(compiler: _Compiler, value: Any, schema: Any) -> Check:
    rules = {key: tuple(needed) for key, needed in value.items()}

    def check(data: Any) -> bool:
        if not isinstance(data, dict):
            return True
        return all(all(n in data for n in needed) for key, needed in rules.items() if key in data)

    return check


def _items(compiler: _Compiler, value: Any, schema: Any) -> Check:
    if "prefixItems" in schema:
        return compiler.unknown()
    item = compiler.compile(value)
    return lambda data: not isinstance(data, list) or all(map(item, data))


def _unique_items(compiler: _Compiler, value: Any, schema: Any) -> Check:
    if value is not True:
        return _always

    def check(data: Any) -> bool:
        if not isinstance(data, list):
            return True
        if set(map(type, data)) <= _STRING:
            return len(set(data)) == len(data)  # strings are equal as their JSON texts are
        # JSON text tells 1 from true and "1"; equal texts are equal values. Unsure: jsonschema decides.
        try:
            texts = [json.dumps(element, sort_keys=True) for element in data]
        except (TypeError, ValueError):
            return False
        return len(set(texts)) == len(texts)

    return check


_STRING = frozenset({str})


def _enum(compiler: _Compiler, value: Any, schema: Any) -> Check:
    allowed = [json.dumps(choice, sort_keys=True) for choice in value]
    texts = frozenset(choice for choice in value if type(choice) is str)
    # A string's JSON text equals only the text of the same string.
    return lambda data: data in texts if type(data) is str else _json_text(data) in allowed


def _const(compiler: _Compiler, value: Any, schema: Any) -> Check:
    wanted = json.dumps(value, sort_keys=True)
    return lambda data: _json_text(data) == wanted


def _json_text(data: Any) -> str | None:
    try:
        return json.dumps(data, sort_keys=True)
    except (TypeError, ValueError):
        return None


def _pattern(compiler: _Compiler, value: Any, schema: Any) -> Check:
    try:
        regex = re.compile(value)
    except re.error:
        return compiler.unknown()
    return lambda data: not isinstance(data, str) or regex.search(data) is not None


def _min_length(compiler: _Compiler, value: Any, schema: Any) -> Check:
    return lambda data: not isinstance(data, str) or len(data) >= value


def _max_length(compiler: _Compiler, value: Any, schema: Any) -> Check:
    return lambda data: not isinstance(data, str) or len(data) <= value


def _minimum(compiler: _Compiler, value: Any, schema: Any) -> Check:
    return lambda data: not _is_type(data, "number") or data >= value


def _maximum(compiler: _Compiler, value: Any, schema: Any) -> Check:
    return lambda data: not _is_type(data, "number") or data <= value


def _ref(compiler: _Compiler, value: Any, schema: Any) -> Check:
    return compiler.ref(str(value))


def _one_of(compiler: _Compiler, value: Any, schema: Any) -> Check:
    checks = compiler.exact(list(value))
    if checks is None:
        return compiler.unknown()
    return lambda data: sum(1 for check in checks if check(data)) == 1


def _any_of(compiler: _Compiler, value: Any, schema: Any) -> Check:
    checks = [compiler.compile(sub) for sub in value]
    return lambda data: any(check(data) for check in checks)


def _not(compiler: _Compiler, value: Any, schema: Any) -> Check:
    checks = compiler.exact([value])
    if checks is None:
        return compiler.unknown()
    check = checks[0]
    return lambda data: not check(data)


_KEYWORDS: dict[str, Callable[[_Compiler, Any, Any], Check]] = {
    "type": _type,
    "properties": _properties,
    "additionalProperties": _additional_properties,
    "required": _required,
    "minProperties": _min_properties,
    "dependentRequired": _dependent_required,
    "items": _items,
    "uniqueItems": _unique_items,
    "enum": _enum,
    "const": _const,
    "pattern": _pattern,
    "minLength": _min_length,
    "maxLength": _max_length,
    "minimum": _minimum,
    "maximum": _maximum,
    "$ref": _ref,
    "oneOf": _one_of,
    "anyOf": _any_of,
    "not": _not,
}
