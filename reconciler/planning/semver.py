"""Tags ordered as versions, for ``order: semver``.

``v1.2.3``, ``1.2`` and ``2`` are versions (missing parts are 0, build
metadata is ignored); every release sorts above every pre-release, and tags
that are no version sort last.
"""

from __future__ import annotations

import re

_VERSION = re.compile(
    r"v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?", re.ASCII
)
_PreId = tuple[int, int, str]
SemverKey = tuple[int, tuple[int, ...], tuple[_PreId, ...]]


def semver_key(tag: str) -> SemverKey:
    """A key that sorts newer versions higher: releases above pre-releases above non-versions."""
    match = _VERSION.fullmatch(tag)
    if match is None:
        return (0, (), ())
    numbers = tuple(int(part or 0) for part in match.group(1, 2, 3))
    if match[4] is None:
        return (2, numbers, ())
    # SemVer precedence: numeric identifiers rank below alphanumeric ones, a longer list above its prefix.
    pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in match[4].split("."))
    return (1, numbers, pre)
