"""``--limit PATTERN``: which hosts of an inventory a run takes, read as ``ansible --limit`` reads it.

A pattern is a list of terms separated by ``,`` (or ``:``): a host or group name, or a glob
over those names (``web-*``, ``db[12]``); ``all`` and ``*`` are every host. ``!term`` takes
hosts away, ``&term`` keeps only hosts also in the term; plain terms add. Hosts keep the
inventory's order. Pure: names in, names out.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_SEPARATORS = re.compile(r"[,:]")


class LimitError(ValueError):
    """The pattern selects no host; the message says which terms matched nothing."""


@dataclass(frozen=True)
class Selection:
    hosts: tuple[str, ...]  # in inventory order
    unmatched: tuple[str, ...] = ()  # terms that matched no host or group (a warning, as ansible gives)


def select_hosts(pattern: str, hosts: Sequence[str], groups: Mapping[str, Sequence[str]]) -> Selection:
    """The hosts ``pattern`` picks among ``hosts`` (names, in order), ``groups`` mapping each group to its hosts."""
    terms = [term.strip() for term in _SEPARATORS.split(pattern) if term.strip()]
    if not terms:
        raise LimitError(f"--limit {pattern!r} names no host or group.")
    added: set[str] = set()
    intersect: list[set[str]] = []
    removed: set[str] = set()
    unmatched: list[str] = []
    for term in terms:
        kind, name = (term[0], term[1:]) if term[0] in "!&" else ("", term)
        found = _matching(name, hosts, groups)
        if not found:
            unmatched.append(term)
        if kind == "!":
            removed |= found
        elif kind == "&":
            intersect.append(found)
        else:
            added |= found
    if not any(not term.startswith(("!", "&")) for term in terms):
        added = set(hosts)  # only exclusions or intersections: of every host, as ansible reads "!db"
    chosen = added - removed
    for keep in intersect:
        chosen &= keep
    selected = tuple(h for h in hosts if h in chosen)
    if not selected:
        known = ", ".join([*groups, *hosts][:20])
        raise LimitError(f"--limit {pattern!r} selects no host of the inventory (hosts and groups: {known}).")
    return Selection(selected, tuple(unmatched))


def _matching(name: str, hosts: Sequence[str], groups: Mapping[str, Sequence[str]]) -> set[str]:
    if name in ("all", "*"):
        return set(hosts)
    found = {h for h in hosts if fnmatch.fnmatchcase(h, name)}
    for group, members in groups.items():
        if fnmatch.fnmatchcase(group, name):
            found |= set(members)
    return found
