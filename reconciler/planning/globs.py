"""Repository globs and ``protect:`` patterns, matched against references.

A glob is matched against the full normalised name (``docker.io/library/nginx``)
and the familiar one (``nginx``); either matching is enough. ``*`` matches
within one path segment, ``**`` as a whole segment matches any number of
segments, zero included; every other character is literal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from reconciler.model.reference import Reference


@cache
def glob_regex(glob: str) -> re.Pattern[str]:
    """A repository glob as a regex: ``*`` within a segment, ``**`` any number of segments."""
    segments = glob.split("/")
    regex = ""
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            if index == 0:
                regex += "[^/]+(?:/[^/]+)*" if last else "(?:[^/]+/)*"
            else:
                regex += "(?:/[^/]+)*"  # zero segments too: a/**/b matches a/b
            continue
        after_leading_any = index == 1 and segments[0] == "**"
        regex += "" if index == 0 or after_leading_any else "/"
        regex += "[^/]*".join(re.escape(piece) for piece in segment.split("*"))
    return re.compile(regex, re.ASCII)


def name_matches(regex: re.Pattern[str], ref: Reference) -> bool:
    """Whether ``regex`` matches the full or the familiar name of ``ref``'s repository."""
    return bool(regex.fullmatch(ref.name) or regex.fullmatch(ref.familiar_name))


@dataclass(frozen=True)
class ReferencePattern:
    """A ``protect:`` entry: ``name-glob`` (any reference of the repository) or ``name-glob:tag-glob``."""

    text: str
    name: re.Pattern[str]
    tag: re.Pattern[str] | None

    @classmethod
    def parse(cls, text: str) -> ReferencePattern:
        # A ':' before the last '/' belongs to a registry's port, not to a tag.
        name, colon, tag = (
            text.rpartition(":") if ":" in text.rpartition("/")[2] else (text, "", "")
        )
        tag_regex = (
            re.compile(".*".join(re.escape(p) for p in tag.split("*")), re.ASCII) if colon else None
        )
        return cls(text, glob_regex(name), tag_regex)

    def matches(self, ref: Reference) -> bool:
        return self.tag_matches(ref) and name_matches(self.name, ref)

    def tag_matches(self, ref: Reference) -> bool:
        """Whether the tag part matches ``ref``: any reference without one, else a tag (no digest)."""
        tag = self.tag
        if tag is None:
            return True
        return ref.tag is not None and ref.digest is None and tag.fullmatch(ref.tag) is not None


class ProtectPatterns:
    """The ``protect:`` patterns in file order. The ones whose name glob matches a repository
    are remembered by its name, so a reference meets only the patterns that may match it."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.patterns = tuple(ReferencePattern.parse(text) for text in texts)
        # name -> (index, pattern) of those matching it: every one, and those without a tag part
        # (the only ones a digest reference can match).
        self._by_name: dict[str, tuple[_Indexed, _Indexed]] = {}

    def first_match(
        self, tags: Iterable[Reference], digests: Iterable[Reference] = ()
    ) -> tuple[ReferencePattern, Reference] | None:
        """The first pattern that matches one of ``tags`` or then ``digests`` (references with a
        digest), and the first of them it matches: what :meth:`ReferencePattern.matches` tried
        pattern by pattern over every reference finds."""
        if not self.patterns:
            return None
        by_name, best, best_index = self._by_name, None, len(self.patterns)
        for ref in tags:
            tag = ref.tag if ref.digest is None else None  # what a tag part can match
            for index, pattern in (by_name.get(ref.name) or self._named(ref))[0]:
                if index >= best_index:
                    break
                # tag_matches, without its call: one per tag of every image
                if pattern.tag is None or (tag is not None and pattern.tag.fullmatch(tag)):
                    best, best_index = (pattern, ref), index
                    break
        for ref in digests:
            for index, pattern in (by_name.get(ref.name) or self._named(ref))[1]:
                if index >= best_index:
                    break
                best, best_index = (pattern, ref), index
                break
        return best

    def _named(self, ref: Reference) -> tuple[_Indexed, _Indexed]:
        matching = tuple(
            (index, pattern)
            for index, pattern in enumerate(self.patterns)
            if name_matches(pattern.name, ref)
        )
        plain = tuple((index, pattern) for index, pattern in matching if pattern.tag is None)
        named = self._by_name[ref.name] = (matching, plain)
        return named


_Indexed = tuple[tuple[int, ReferencePattern], ...]
