"""Repository globs and ``protect:`` patterns, matched against references.

A glob is matched against the full normalised name (``docker.io/library/nginx``)
and the familiar one (``nginx``); either matching is enough. ``*`` matches
within one path segment, ``**`` as a whole segment matches any number of
segments, zero included; every other character is literal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
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
    _by_name: dict[str, bool] = field(default_factory=dict, compare=False)

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
        if self.tag is not None and (
            ref.tag is None or ref.digest is not None or not self.tag.fullmatch(ref.tag)
        ):
            return False
        known = self._by_name.get(ref.name)
        if known is None:
            known = self._by_name[ref.name] = name_matches(self.name, ref)
        return known
