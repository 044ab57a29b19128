"""Retention's precedence rungs around the rules: 1-4 keep an image whole, 6 evicts for the disk budget.

:class:`RetentionContext` is the compiled spec with the lookups every rung needs; its
:meth:`~RetentionContext.protection` is rungs 1-4 (in use, held, declared, protected, min_age),
:func:`evict` rung 6. Rung 5, the rules, is :mod:`reconciler.planning.retention_rules`; the
order and meaning of all of them are told in :mod:`reconciler.planning.retention`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence, Set
from operator import attrgetter

from reconciler.model.host_facts import DiskUsage
from reconciler.model.inventory import ContainerRecord, ImageRecord
from reconciler.model.manifest import DiskBudget, RetentionSpec, Rule
from reconciler.model.reference import Reference
from reconciler.model.units import format_age, format_duration
from reconciler.planning.disk_budget import BudgetCheck, EvictionReasons, counted_bytes
from reconciler.planning.globs import ProtectPatterns, glob_regex, name_matches
from reconciler.planning.labels import describe_selector, labels_match
from reconciler.planning.retention_verdicts import (
    REMOVING,
    Decision,
    Fate,
    Rung,
    Verdict,
    new_decision,
    new_verdict,
)

# --- rungs 1-4 -------------------------------------------------------------------


class RetentionContext:
    """The compiled spec and the lookups every rung needs."""

    def __init__(
        self,
        spec: RetentionSpec,
        now: float,
        declared: Set[str],
        last_used: Mapping[str, float],
        previous: Mapping[str, tuple[str, ...]],
        containers: Iterable[ContainerRecord],
        arrived: Mapping[str, float] | None = None,
        held: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.held = held or {}
        self.arrived = arrived
        self.now = now
        self.declared = declared
        # The repositories of the references declared: a reference of any other repository is not
        # declared, with no need to spell it out.
        self.declared_names = {_repository_of(text) for text in declared}
        self.last_used = last_used
        self.previous = previous
        users: dict[str, list[str]] = {}
        for container in containers:
            users.setdefault(container.image_id, []).append(container.name)
        self.users = {image_id: tuple(sorted(names)) for image_id, names in users.items()}
        self.min_age = spec.min_age
        self.protect_labels = spec.protect_labels
        self.min_age_text = format_duration(spec.min_age)
        self.protect = ProtectPatterns(spec.protect)
        self.rules = tuple(CompiledRule(rule) for rule in spec.rules)

    def age(self, image: ImageRecord) -> float:
        """Since creation: what older_than, keep_within and keep_last go by."""
        return self.now - image.created

    def protection(self, image: ImageRecord) -> Decision | None:
        """The first of rungs 1-4 that keeps ``image`` whole, or None."""
        users = self.users.get(image.id)
        if users:
            reason = (
                f"used by container {', '.join(users)}; an image a container uses is never removed"
            )
            return self._keep(image, Rung.IN_USE, reason, containers=users)
        if image.id in self.held:
            return self._keep(image, Rung.HELD, self.held[image.id])
        claim = self._declared_reference(image)
        if claim is not None:
            return self._keep(image, Rung.DECLARED, f"{claim} is declared under images:", claim)
        protecting = self.protect.first_match(image.tags, image.digests)
        if protecting is not None:
            pattern, ref = protecting
            reason = f"{ref.familiar()} matches the protect pattern {pattern.text!r}"
            return self._keep(image, Rung.PROTECTED, reason, pattern.text)
        if self.protect_labels:
            labels = image.label_map
            for selector in self.protect_labels:
                if labels_match(selector, labels):
                    described = describe_selector(selector)
                    reason = f"its {described} matches protect labels"
                    return self._keep(image, Rung.PROTECTED, reason, described)
        # Rung 4: kept while younger than min_age, by arrival on the host when arrivals are kept.
        arrival = None if self.arrived is None else self.arrived.get(image.id, self.now)
        if self.now - (image.created if arrival is None else arrival) >= self.min_age:
            return None  # most images: no decision to word
        return self._min_age(image, arrival)

    def _min_age(self, image: ImageRecord, arrival: float | None) -> Decision:
        """Rung 4's decision for an image younger than min_age (``arrival``: when it arrived, if kept)."""
        age, limit = self.now - image.created, self.min_age_text
        if arrival is None:
            reason = f"created {format_age(age)} ago, within min_age {limit}"
            return self._keep(image, Rung.MIN_AGE, reason)
        here = self.now - arrival
        reason = f"arrived on the host {format_age(here)} ago, within min_age {limit} (created {format_age(age)} ago)"
        return self._keep(image, Rung.MIN_AGE, reason, arrived=arrival)

    def _keep(
        self,
        image: ImageRecord,
        rung: Rung,
        reason: str,
        pattern: str | None = None,
        containers: tuple[str, ...] = (),
        arrived: float | None = None,
    ) -> Decision:
        return Decision(
            image.short_id,
            True,
            rung,
            reason,
            age=self.age(image),
            containers=containers,
            pattern=pattern,
            arrived=arrived,
        )

    def _declared_reference(self, image: ImageRecord) -> str | None:
        declared, names = self.declared, self.declared_names
        # Two loops, not one over tags + digests: that tuple would be one more object per image.
        for ref in image.tags:
            if ref.name in names and ref.canonical() in declared:
                return ref.familiar()
        for ref in image.digests:
            if ref.name in names and ref.canonical() in declared:
                return ref.familiar()
        return image.short_id if image.id in declared else None


# --- compiled rules ------------------------------------------------------------


class CompiledRule:
    """A rule with its regexes compiled and its repository matches remembered by name."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.repositories = tuple(glob_regex(glob) for glob in rule.select.repositories)
        self.include = _regex(rule.select.tags.include)
        self.exclude = _regex(rule.select.tags.exclude)
        self.keep_tags = _regex(rule.keep_tags)
        self.labels = rule.select.labels
        self.selects_every_tag = (
            self.include is None and self.exclude is None and self.labels is None
        )
        # Said in every decision the rule makes: worded once.
        self.label_text = describe_selector(self.labels) if self.labels is not None else None
        self.keep_within_text = _duration_text(rule.keep_within)
        self.older_than_text = _duration_text(rule.older_than)
        self._by_name: dict[str, bool] = {}

    def _repository_selected(self, ref: Reference) -> bool:
        if not self.repositories:
            return True
        known = self._by_name.get(ref.name)
        if known is None:
            known = any(name_matches(regex, ref) for regex in self.repositories)
            self._by_name[ref.name] = known
        return known

    def selects_tags_of(self, ref: Reference) -> bool:
        """Whether the rule selects tags of ``ref``'s repository (some of them, by its tag filter)."""
        return not self.rule.select.untagged and self._repository_selected(ref)

    def selects_tag(self, tag: str, image: ImageRecord | None) -> bool:
        """Whether the rule selects ``tag`` of a repository it :meth:`selects_tags_of`, on ``image``
        (None: the tag's image is not on the host, so a rule with ``labels`` cannot select it)."""
        if self.include is not None and not self.include.fullmatch(tag):
            return False
        if self.exclude is not None and self.exclude.fullmatch(tag):
            return False
        return self.labels is None or self._labels_selected(image)

    def selects_untagged(self, image: ImageRecord) -> bool:
        if not self.rule.select.untagged or not self._labels_selected(image):
            return False
        return not self.repositories or any(self._repository_selected(d) for d in image.digests)

    def _labels_selected(self, image: ImageRecord | None) -> bool:
        selector = self.labels
        if selector is None:
            return True
        return image is not None and labels_match(selector, image.label_map)


def _repository_of(text: str) -> str:
    """The repository of canonical reference ``text`` (``name:tag`` or ``name@digest``); what
    else ``declared`` holds, such as an image id, gives a name no reference has."""
    return text.partition("@")[0] if "@" in text else text.rpartition(":")[0]


def _regex(text: str | None) -> re.Pattern[str] | None:
    return None if text is None else re.compile(text)


def _duration_text(seconds: float | None) -> str:
    return "" if seconds is None else format_duration(seconds)


# --- rung 6: disk budget -----------------------------------------------------------

_DISK, _EVICT = Rung.DISK, Fate.EVICT  # read once: see retention_verdicts.REMOVING


def evict(
    context: RetentionContext,
    budget: DiskBudget,
    disk: DiskUsage,
    candidates: Sequence[ImageRecord],
    verdicts: Mapping[str, Verdict],
) -> tuple[dict[str, Verdict], BudgetCheck]:
    """Evict least recently used removable images while the budget is exceeded; numbered in
    the order they go, with the budget's figures."""
    freed, remaining = 0, []
    for image in candidates:
        verdict = verdicts[image.id]
        if verdict.outcome in REMOVING:
            freed += counted_bytes(image.size, verdict.freed_bytes)  # the unique size the verdict read
        else:
            remaining.append(image)
    images_size, used = disk.images_size - freed, disk.filesystem_used - freed

    def over(target_percent: float | None) -> bool:
        too_big = budget.max_total is not None and images_size > budget.max_total
        too_full = target_percent is not None and used * 100 > target_percent * disk.filesystem_size
        return too_big or too_full

    evicted: dict[str, Verdict] = {}
    going = 0
    # Least recently used first, ties by id: sorted by id, then (stable) by last use (creation
    # time when no use is known: the same order as the float that stands for it).
    remaining.sort(key=attrgetter("id"))
    last_used = context.last_used
    if last_used:
        remaining.sort(key=lambda image: last_used.get(image.id, float(image.created)))
    else:
        remaining.sort(key=attrgetter("created"))
    reasons = EvictionReasons(budget, disk)
    for image in remaining if over(budget.high) else ():
        if not over(budget.low):
            break
        # The one after age is last_used.
        decision = new_decision(
            (image.short_id, False, _DISK, reasons.reason(images_size, used), None, None,
             context.now - image.created, last_used.get(image.id), (), None, None, None)
        )  # fmt: skip
        unique = image.unique_size
        # After the decisions: the untag list, freed_bytes, the place in the eviction order.
        decisions = (*verdicts[image.id].decisions, decision)
        evicted[image.id] = new_verdict((image.id, _EVICT, decisions, (), unique, len(evicted) + 1))
        counted = counted_bytes(image.size, unique)
        images_size, used, going = images_size - counted, used - counted, going + counted
    return evicted, BudgetCheck(budget, disk, freed, going, len(evicted))
