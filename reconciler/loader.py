"""Load images.yaml into a :class:`Manifest`, reporting every problem at once.

Four passes over plain data, each adding diagnostics rather than stopping:
read the YAML (:mod:`reconciler.yaml_source`), substitute environment
variables in string values, validate against the JSON Schema, then check what
a schema cannot say (reference grammar, repositories and aliases declared
twice). Only when no pass found anything is a Manifest built.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, TypeVar

from jsonschema import Draft202012Validator, ValidationError

from reconciler.errors import Diagnostic, ManifestError
from reconciler.manifest import (
    DiskBudget,
    ImageSpec,
    ImageState,
    Manifest,
    Order,
    PruneSpec,
    PullPolicy,
    RetentionSpec,
    Rule,
    Selector,
    Source,
    TagFilter,
    Unmatched,
)
from reconciler.reference import (
    Reference,
    ReferenceError,
    is_valid_digest,
    is_valid_tag,
    parse_reference,
    parse_repository,
)
from reconciler.schema import load_schema
from reconciler.units import UnitError, parse_duration, parse_percent, parse_size
from reconciler.yaml_source import (
    MAX_BYTES,
    Plain,
    SourceDocument,
    YamlPath,
    format_path,
    read_yaml,
    read_yaml_bytes,
)

__all__ = ["expand_variables", "load_manifest", "load_manifest_text"]


def load_manifest(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> Manifest:
    """Read, validate and normalise the manifest at ``path``.

    ``environ`` supplies ``${VAR}`` values (default: the process environment).
    Raises :class:`ManifestError` carrying every problem found, in line order.
    """
    filename = os.fspath(path)
    data = _read_file(filename)
    document = read_yaml_bytes(data, filename)
    return _build(document, _environment(environ), _sha256(data))


def load_manifest_text(
    text: str, filename: str, environ: Mapping[str, str] | None = None
) -> Manifest:
    """Like :func:`load_manifest`, for text already in memory; ``filename`` names it."""
    document = read_yaml(text, filename)
    return _build(document, _environment(environ), _sha256(text.encode("utf-8")))


def _read_file(filename: str) -> bytes:
    # One byte past the bound is enough to tell the file is too large.
    try:
        with open(filename, "rb") as handle:
            return handle.read(MAX_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        message = f"cannot read the file: {reason}."
        raise ManifestError([Diagnostic(filename, "", 0, 0, message)]) from exc


def _environment(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _build(document: SourceDocument, environ: Mapping[str, str], digest: str) -> Manifest:
    diagnostics = list(document.diagnostics)
    data, found = _substitute_all(document, environ)
    diagnostics += found
    diagnostics += _schema_diagnostics(document, data)
    flawed = {index for d in diagnostics if (index := _entry_index(d.path)) is not None}
    images, found = _Semantics(document).check(data.get("images"), flawed)
    diagnostics += found
    retention_flawed = any(d.path.startswith("retention") for d in diagnostics)
    retention = _RetentionBuilder(document)
    retention_spec = None if retention_flawed else retention.build(data.get("retention"))
    diagnostics += retention.diagnostics
    if diagnostics:
        raise ManifestError(_in_line_order(diagnostics))
    return Manifest(
        images=images,
        prune=_prune(data.get("prune")),
        retention=retention_spec,
        path=document.filename,
        digest=digest,
    )


def _in_line_order(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    unique = list(dict.fromkeys(diagnostics))
    # Path and message only break ties, so that the order never depends on the validator's.
    return sorted(unique, key=lambda d: (d.line, d.column, d.path, d.message))


_ENTRY_PATH = re.compile(r"images\[(\d+)\]")


def _entry_index(path: str) -> int | None:
    match = _ENTRY_PATH.match(path)
    return int(match.group(1)) if match else None


def _prune(value: Plain) -> PruneSpec:
    if not isinstance(value, dict):
        return PruneSpec()
    return PruneSpec(
        unlisted_tags=value.get("unlisted_tags") is True, dangling=value.get("dangling") is True
    )


# --- environment substitution -------------------------------------------------

_VARIABLE = re.compile(
    r"\$(?:(?P<dollar>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<default>:-[^}]*)?\}"
    r"|(?P<malformed>\{))"
)


def _substitute_all(
    document: SourceDocument, environ: Mapping[str, str]
) -> tuple[dict[str, Plain], list[Diagnostic]]:
    """Substitute ``${VAR}`` in every string value (keys stay as written)."""
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


# --- JSON Schema ----------------------------------------------------------------


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema())


def _schema_diagnostics(document: SourceDocument, data: dict[str, Plain]) -> list[Diagnostic]:
    """Every schema violation of ``data``, as a sentence at its YAML position."""
    diagnostics: list[Diagnostic] = []
    for error in _validator().iter_errors(data):
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


# --- semantic checks ------------------------------------------------------------

_TAG_RULE = (
    "a tag has 1 to 128 ASCII letters, digits, '_', '.' or '-', and does not start with '.' or '-'"
)
_ABSENT_ONLY_KEYS = ("tags", "aliases", "digest", "platform", "pull")


@dataclass(frozen=True)
class _Declared:
    """Where a repository, tag or alias was declared, to name it in a message."""

    index: int
    path: YamlPath
    line: int

    def __str__(self) -> str:
        return f"images[{self.index}] (line {self.line})"


class _Semantics:
    """Checks a schema cannot express, on entries the schema accepted."""

    def __init__(self, document: SourceDocument) -> None:
        self.document = document
        self.diagnostics: list[Diagnostic] = []

    def check(
        self, images: Plain, skip: set[int]
    ) -> tuple[tuple[ImageSpec, ...], list[Diagnostic]]:
        """Build the specs of the valid entries; report what stands in the way."""
        entries = images if isinstance(images, list) else []
        specs = {
            index: spec
            for index, raw in enumerate(entries)
            if index not in skip and isinstance(raw, dict)
            if (spec := self._entry(index, raw)) is not None
        }
        self._check_repositories(specs)
        self._check_aliases(specs)
        return tuple(specs.values()), self.diagnostics

    def _report(self, path: YamlPath, message: str, *, at_key: bool = False) -> None:
        self.diagnostics.append(self.document.diagnostic(path, message, at_key=at_key))

    def _entry(self, index: int, raw: dict[str, Plain]) -> ImageSpec | None:
        path: YamlPath = ("images", index)
        before = len(self.diagnostics)
        state = ImageState(_text(raw.get("state")) or ImageState.PRESENT.value)
        repository = self._repository(path, _text(raw.get("name")) or "")
        if state is ImageState.ABSENT:
            self._check_absent_keys(path, raw)
            spec = None if repository is None else ImageSpec(repository, state=state)
        else:
            spec = self._present(path, raw, repository)
        if spec is None or len(self.diagnostics) > before:
            return None
        line, column = self.document.position(path)
        return replace(spec, source=Source(self.document.filename, format_path(path), line, column))

    def _present(
        self, path: YamlPath, raw: dict[str, Plain], repository: Reference | None
    ) -> ImageSpec | None:
        tags = self._tags(path, _texts(raw.get("tags")))
        aliases = self._aliases(path, _texts(raw.get("aliases")))
        digest = self._digest(path, _text(raw.get("digest")))
        if repository is None:
            return None
        return ImageSpec(
            repository=repository,
            tags=tags or (() if digest is not None else ("latest",)),  # as `docker pull` does
            aliases=aliases,
            digest=digest,
            platform=_text(raw.get("platform")),
            pull=PullPolicy(_text(raw.get("pull")) or PullPolicy.IF_MISSING.value),
        )

    def _repository(self, path: YamlPath, name: str) -> Reference | None:
        name_path = (*path, "name")
        try:
            reference = parse_reference(name)
        except ReferenceError as exc:
            self._report(name_path, str(exc))
            return None
        if reference.tag is not None or reference.digest is not None:
            self._report(name_path, _name_suffix_message(reference))
            return None
        try:
            return parse_repository(name)
        except ReferenceError as exc:
            self._report(name_path, str(exc))
            return None

    def _check_absent_keys(self, path: YamlPath, raw: dict[str, Plain]) -> None:
        for key in _ABSENT_ONLY_KEYS:
            if key in raw:
                message = (
                    f"'{key}' has no meaning with state: absent, which removes every local tag"
                    " of the repository; remove it."
                )
                self._report((*path, key), message, at_key=True)

    def _tags(self, path: YamlPath, tags: Sequence[str]) -> tuple[str, ...]:
        for index, tag in enumerate(tags):
            if not is_valid_tag(tag):
                self._report((*path, "tags", index), f"{tag!r} is not a valid tag: {_TAG_RULE}.")
        return tuple(tags)

    def _aliases(self, path: YamlPath, texts: Sequence[str]) -> tuple[Reference, ...]:
        aliases: list[Reference] = []
        for index, text in enumerate(texts):
            alias_path = (*path, "aliases", index)
            try:
                alias = parse_reference(text)
            except ReferenceError as exc:
                self._report(alias_path, str(exc))
                continue
            if alias.digest is not None:
                message = f"alias {text!r} has a digest; an alias is a name with a tag"
                self._report(alias_path, message + ", as `docker tag` makes.")
                continue
            aliases.append(alias if alias.tag is not None else alias.with_tag("latest"))
        return tuple(aliases)

    def _digest(self, path: YamlPath, digest: str | None) -> str | None:
        if digest is not None and not (is_valid_digest(digest) and digest.startswith("sha256:")):
            message = (
                f"{digest!r} is not a valid digest; write sha256: followed by 64 lower-case"
                " hexadecimal digits."
            )
            self._report((*path, "digest"), message)
        return digest

    def _declared(self, index: int, *relative: str | int) -> _Declared:
        path: YamlPath = ("images", index, *relative)
        return _Declared(index, path, self.document.position(path)[0])

    def _check_repositories(self, specs: Mapping[int, ImageSpec]) -> None:
        """Each repository is declared once, whether present or absent."""
        first: dict[Reference, int] = {}
        for index, spec in specs.items():
            earlier_index = first.setdefault(spec.repository, index)
            if earlier_index == index:
                continue
            earlier = specs[earlier_index]
            where = self._declared(earlier_index, "name")
            name = spec.repository.familiar_name
            if earlier.state is spec.state:
                message = (
                    f"repository {name} is already declared by {where}; merge the two entries."
                )
            else:
                message = (
                    f"repository {name} is declared {spec.state.value} here and"
                    f" {earlier.state.value} by {where}; keep one of them."
                )
            self._report(("images", index, "name"), message)

    def _check_aliases(self, specs: Mapping[int, ImageSpec]) -> None:
        """An alias names one image: not claimed twice, not a declared tag, not absent."""
        present = {i: spec for i, spec in specs.items() if spec.state is ImageState.PRESENT}
        tags = {
            reference: self._declared(i, "tags", position)
            for i, spec in present.items()
            for position, reference in enumerate(spec.tag_references())
        }
        absent = {
            spec.repository: self._declared(i, "name")
            for i, spec in specs.items()
            if spec.state is ImageState.ABSENT
        }
        claimed: dict[Reference, _Declared] = {}
        for i, spec in present.items():
            for position, alias in enumerate(spec.aliases):
                here = self._declared(i, "aliases", position)
                message = _alias_conflict(alias, claimed, tags, absent)
                if message:
                    self._report(here.path, message)
                else:
                    claimed[alias] = here


def _alias_conflict(
    alias: Reference,
    claimed: Mapping[Reference, _Declared],
    tags: Mapping[Reference, _Declared],
    absent: Mapping[Reference, _Declared],
) -> str | None:
    shown = alias.familiar()
    if alias in claimed:
        return f"alias {shown} is already claimed by {claimed[alias]}."
    if alias in tags:
        return f"alias {shown} is already declared as a tag by {tags[alias]}; it cannot be both."
    if alias.repository() in absent:
        where = absent[alias.repository()]
        return (
            f"alias {shown} is in repository {alias.familiar_name}, which {where} declares absent."
        )
    return None


def _name_suffix_message(reference: Reference) -> str:
    parts = []
    if reference.tag is not None:
        parts.append(f"a name takes no tag; move '{reference.tag}' to tags: [\"{reference.tag}\"]")
    if reference.digest is not None:
        parts.append(f'a name takes no digest; move it to digest: "{reference.digest}"')
    return "; ".join(parts) + "."


def _text(value: Plain) -> str | None:
    return value if isinstance(value, str) else None


def _texts(value: Plain) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


# --- retention ------------------------------------------------------------------

_UNIT_PARSERS: dict[str, Callable[[str], float]] = {
    "min_age": parse_duration,
    "keep_within": parse_duration,
    "older_than": parse_duration,
    "max_total": parse_size,
    "high": parse_percent,
    "low": parse_percent,
}

_Measure = TypeVar("_Measure", int, float)

# The unit a bare number most likely lacks, for the hint.
_UNIT_EXAMPLES = {"min_age": "h", "keep_within": "d", "older_than": "d", "max_total": "GB"}
_UNIT_EXAMPLES |= {"high": "%", "low": "%"}


def _unit_problem(parser: Callable[[str], float], text: str) -> str | None:
    try:
        parser(text)
    except UnitError as exc:
        return str(exc)
    return None


class _RetentionBuilder:
    """Build the ``retention:`` section the schema accepted; check what it cannot say."""

    def __init__(self, document: SourceDocument) -> None:
        self.document = document
        self.diagnostics: list[Diagnostic] = []

    def _report(self, path: YamlPath, message: str, *, at_key: bool = False) -> None:
        self.diagnostics.append(self.document.diagnostic(path, message, at_key=at_key))

    def build(self, raw: Plain) -> RetentionSpec | None:
        if not isinstance(raw, dict):
            return None
        path: YamlPath = ("retention",)
        protect = _texts(raw.get("protect"))
        for index, pattern in enumerate(protect):
            self._check_glob((*path, "protect", index), pattern, tag_allowed=True)
        rules = raw.get("rules")
        built = [
            self._rule((*path, "rules", index), item)
            for index, item in enumerate(rules if isinstance(rules, list) else [])
            if isinstance(item, dict)
        ]
        self._check_rule_names(built)
        percent = raw.get("max_removal_percent", 50)
        return RetentionSpec(
            min_age=_default(self._duration((*path, "min_age"), raw.get("min_age")), 3600),
            protect=tuple(protect),
            unmatched=Unmatched(_text(raw.get("unmatched")) or Unmatched.KEEP.value),
            max_removal_percent=float(percent) if isinstance(percent, int | float) else 50.0,
            disk=self._disk((*path, "disk"), raw.get("disk")),
            rules=tuple(rule for _, rule in built),
        )

    def _rule(self, path: YamlPath, raw: dict[str, Plain]) -> tuple[YamlPath, Rule]:
        return path, Rule(
            name=_text(raw.get("name")) or "",
            select=self._selector((*path, "select"), raw.get("select")),
            keep_last=_count(raw.get("keep_last")),
            order=Order(_text(raw.get("order")) or Order.CREATED.value),
            keep_within=self._duration((*path, "keep_within"), raw.get("keep_within")),
            keep_tags=self._regex((*path, "keep_tags"), raw.get("keep_tags")),
            keep_previous=_count(raw.get("keep_previous")),
            older_than=self._duration((*path, "older_than"), raw.get("older_than")),
        )

    def _selector(self, path: YamlPath, raw: Plain) -> Selector:
        if not isinstance(raw, dict):
            return Selector()
        repositories = _texts(raw.get("repositories"))
        for index, glob in enumerate(repositories):
            self._check_glob((*path, "repositories", index), glob, tag_allowed=False)
        tags = raw.get("tags")
        tags = tags if isinstance(tags, dict) else {}
        untagged = raw.get("untagged") is True
        if untagged and "tags" in raw:
            message = "tags has no meaning with untagged: true, which selects images without a tag; remove one of them."
            self._report((*path, "tags"), message, at_key=True)
        return Selector(
            repositories=tuple(repositories),
            tags=TagFilter(
                include=self._regex((*path, "tags", "include"), tags.get("include")),
                exclude=self._regex((*path, "tags", "exclude"), tags.get("exclude")),
            ),
            untagged=untagged,
        )

    def _disk(self, path: YamlPath, raw: Plain) -> DiskBudget | None:
        if not isinstance(raw, dict):
            return None
        max_total = _text(raw.get("max_total"))
        high, low = _text(raw.get("high")), _text(raw.get("low"))
        budget = DiskBudget(
            max_total=self._measure((*path, "max_total"), max_total, parse_size),
            high=self._measure((*path, "high"), high, parse_percent),
            low=self._measure((*path, "low"), low, parse_percent),
        )
        if budget.high is not None and budget.low is not None and budget.low > budget.high:
            message = (
                f"low ({low}) must not be above high ({high}): eviction runs from high down to low."
            )
            self._report((*path, "low"), message)
        return budget

    def _measure(
        self, path: YamlPath, text: str | None, parser: Callable[[str], _Measure]
    ) -> _Measure | None:
        # The schema checked the form; a parser still bounds values (101%) the pattern lets through.
        if text is None:
            return None
        try:
            return parser(text)
        except UnitError as exc:
            self._report(path, str(exc))
            return None

    def _duration(self, path: YamlPath, value: Plain) -> int | None:
        return self._measure(path, _text(value), parse_duration)

    def _regex(self, path: YamlPath, value: Plain) -> str | None:
        text = _text(value)
        if text is None:
            return None
        try:
            re.compile(text)
        except re.error as exc:
            self._report(path, f"{text!r} is not a valid regular expression: {exc}.")
        return text

    def _check_glob(self, path: YamlPath, glob: str, *, tag_allowed: bool) -> None:
        last = glob.rpartition("/")[2]
        if "@" in glob:
            self._report(path, f"{glob!r} has a digest; patterns match repository names and tags.")
        elif ":" in last and not tag_allowed:
            message = f"{glob!r} has a tag; select tags with tags: {{include: ...}} instead."
            self._report(path, message)
        elif any(part.strip() != part or not part for part in glob.split("/")):
            message = f"{glob!r} has an empty or blank path segment; write name/name."
            self._report(path, message)

    def _check_rule_names(self, built: Sequence[tuple[YamlPath, Rule]]) -> None:
        first: dict[str, YamlPath] = {}
        for path, rule in built:
            earlier = first.setdefault(rule.name, path)
            if earlier != path:
                line = self.document.position((*earlier, "name"))[0]
                message = f"rule name {rule.name!r} is already used by {format_path(earlier)} (line {line}); names must be unique."
                self._report((*path, "name"), message)


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


def _count(value: Plain) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
