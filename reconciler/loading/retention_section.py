"""The ``retention:`` section of a manifest, built into a :class:`RetentionSpec`.

On a section the schema accepted: durations, sizes and percentages parsed and
bounded, regexes compiled, globs without digests (or tags where a tag has no
place), ``low`` not above ``high``, rule names unique.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from reconciler.errors import Diagnostic
from reconciler.loading.plain_values import as_text, as_texts
from reconciler.loading.yaml_source import Plain, SourceDocument, YamlPath, format_path
from reconciler.model.manifest import (
    DiskBudget,
    LabelCondition,
    LabelSelector,
    LabelTest,
    Order,
    RetentionSpec,
    Rule,
    Selector,
    TagFilter,
    Unmatched,
)
from reconciler.model.units import UnitError, parse_duration, parse_percent, parse_size

_Measure = TypeVar("_Measure", int, float)


class RetentionBuilder:
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
        protect = as_texts(raw.get("protect"))
        protect_labels: list[LabelSelector] = []
        entries = raw.get("protect")
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, str):
                self._check_glob((*path, "protect", index), entry, tag_allowed=True)
            elif isinstance(entry, dict) and (found := self._labels((*path, "protect", index, "labels"), entry.get("labels"))):
                protect_labels.append(found)
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
            protect_labels=tuple(protect_labels),
            unmatched=Unmatched(as_text(raw.get("unmatched")) or Unmatched.KEEP.value),
            max_removal_percent=float(percent) if isinstance(percent, int | float) else 50.0,
            disk=self._disk((*path, "disk"), raw.get("disk")),
            rules=tuple(rule for _, rule in built),
        )

    def _rule(self, path: YamlPath, raw: dict[str, Plain]) -> tuple[YamlPath, Rule]:
        return path, Rule(
            name=as_text(raw.get("name")) or "",
            select=self._selector((*path, "select"), raw.get("select")),
            keep_last=_count(raw.get("keep_last")),
            order=Order(as_text(raw.get("order")) or Order.CREATED.value),
            keep_within=self._duration((*path, "keep_within"), raw.get("keep_within")),
            keep_tags=self._regex((*path, "keep_tags"), raw.get("keep_tags")),
            keep_previous=_count(raw.get("keep_previous")),
            older_than=self._duration((*path, "older_than"), raw.get("older_than")),
        )

    def _selector(self, path: YamlPath, raw: Plain) -> Selector:
        if not isinstance(raw, dict):
            return Selector()
        repositories = as_texts(raw.get("repositories"))
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
            labels=self._labels((*path, "labels"), raw.get("labels")),
        )

    def _labels(self, path: YamlPath, raw: Plain) -> LabelSelector | None:
        """``{key: "value" | true | false | {not: "value"}}``; keys checked as Docker writes label keys."""
        if not isinstance(raw, dict):
            return None
        conditions = []
        for key, value in raw.items():
            problem = _label_key_problem(key)
            if problem:
                self._report((*path, key), f"{key!r} is not a label key: {problem}.", at_key=True)
                continue
            if isinstance(value, bool):
                conditions.append(LabelCondition(key, LabelTest.PRESENT if value else LabelTest.ABSENT))
            elif isinstance(value, str):
                conditions.append(LabelCondition(key, LabelTest.EQUALS, value))
            elif isinstance(value, dict) and (other := as_text(value.get("not"))) is not None:
                conditions.append(LabelCondition(key, LabelTest.NOT_EQUALS, other))
        return LabelSelector(tuple(sorted(conditions, key=lambda c: c.key))) if conditions else None

    def _disk(self, path: YamlPath, raw: Plain) -> DiskBudget | None:
        if not isinstance(raw, dict):
            return None
        max_total = as_text(raw.get("max_total"))
        high, low = as_text(raw.get("high")), as_text(raw.get("low"))
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
        return self._measure(path, as_text(value), parse_duration)

    def _regex(self, path: YamlPath, value: Plain) -> str | None:
        text = as_text(value)
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


def _label_key_problem(key: str) -> str | None:
    if not key.strip():
        return "it is empty"
    if key != key.strip() or any(c.isspace() for c in key):
        return "it has white space, which no label key has (LABEL splits on it)"
    if "=" in key:
        return "it has '=', which ends a key in LABEL key=value; write the value as the key's value"
    return None


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


def _count(value: Plain) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
