"""Retention: which images and tags a host may drop, as a pure function of plain data.

:func:`evaluate_retention` takes the ``retention:`` section
(:class:`~reconciler.model.manifest.RetentionSpec`), the images and containers of a
host, the references ``images:`` declares, the clock and usage history, and
returns a :class:`Verdict` for every image, each naming the rung or rule that
decided and its inputs. Nothing here reads a daemon, a file or the clock.

Precedence, tested in this order for each image:

1. An image any container uses, running or stopped, is kept.
   Next, an image a hold keeps (``held``: image id -> why, from
   :mod:`reconciler.planning.holds`) is kept until the hold expires.
2. An image holding a reference ``images:`` declares (tag, alias, digest pin,
   or its id) is kept.
3. An image with a reference matching a ``protect:`` pattern is kept.
4. An image that arrived on the host less than ``min_age`` ago (default 1h)
   is kept. Arrival is when the host got the image (pull, load, build, tag, or
   the first run that saw it: ``arrived``), not its creation: an image built a
   month ago and pulled a minute ago is a minute old here. An image ``arrived``
   does not know arrives ``now``.
   Rungs 1-4 keep the whole image with every tag it has.
5. Rules, in file order. A rule decides per tag: each tag goes to the first
   rule that selects it; an untagged image goes, as a whole, to the first rule
   with ``untagged: true`` that selects it. What no rule selects is kept, or
   dropped with ``unmatched: remove``. The tags dropped are untagged; an image
   whose every tag is dropped (or that is untagged and dropped) is removed,
   unless a ``keep_previous`` of some rule holds it, when it only loses its tags.
6. With ``disk:`` and a known disk usage: when, after the removals of step 5,
   images take more than ``max_total`` bytes or the disk is fuller than
   ``high`` percent, the least recently used images that rungs 1-4 allow are
   evicted (last use from ``last_used``, else creation time; ties by id)
   until images take at most ``max_total`` and the disk is at most ``low``
   percent full. Each eviction counts its unique bytes (its full size when the
   unique size is unknown, which can only evict less).

Selection (``select:``):

- ``repositories``: globs matched against the full normalised name
  (``docker.io/library/nginx``) and the familiar one (``nginx``); either
  matching is enough. ``*`` matches within one path segment, ``**`` as a whole
  segment matches any number of segments, zero included; every other
  character is literal. No ``repositories`` selects every repository.
- ``tags: {include, exclude}``: regexes matched against the whole tag
  (fullmatch). A tag is selected when it matches ``include`` (default: every
  tag) and does not match ``exclude``.
- ``labels``: image labels that must all hold for the image the tag (or untagged
  image) belongs to: a value (equal), presence, absence, or ``not`` a value. ``protect``
  takes such selectors too (rung 3). Decisions they make name the labels (``pattern``).
- ``untagged: true`` makes the rule select images with no tag instead of tags;
  their repositories are those of their digest references (``name@sha256:...``),
  and an image with none matches only a rule without ``repositories``.

Keep conditions of a rule, OR'ed (any one keeps):

- ``keep_last: N``: per repository, the N newest images among those the rule
  selects there, all their selected tags with them. Images rungs 1-4 keep count
  among the N: a declared newest image is one of "the three newest". ``order: created``
  (default) ranks by creation time; ``order: semver`` by the highest version
  among the image's selected tags (``v1.2.3``, ``1.2``, ``2``; build metadata
  ignored), every release before every pre-release, and images whose tags are
  no version last; creation time, then id, break ties.
- ``keep_within: D``: images created less than D ago (age <= D).
- ``keep_tags: REGEX``: tags matching it (fullmatch).
- ``keep_previous: N``: for every tag the rule selects, the N images the tag
  pointed at most recently before (``previous``, newest first) are kept,
  whatever rule selects them: the old image of a moved tag usually has no tag
  left, so no tag rule would reach it. An untagged image held so takes no
  ``keep_last`` slot.

A selected tag or untagged image that nothing keeps is dropped when it is
older than ``older_than`` (age > D), or whatever its age when ``older_than``
is not given.

The guard on how much a plan may remove is :mod:`reconciler.planning.removal_guard`,
applied to the whole plan, retention's steps included.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from enum import StrEnum

from reconciler.model.host_facts import DiskUsage
from reconciler.model.inventory import ContainerRecord, ImageRecord
from reconciler.model.manifest import DiskBudget, Order, RetentionSpec, Rule, Unmatched
from reconciler.model.reference import InvalidReference, Reference, parse_reference
from reconciler.model.units import format_age, format_duration
from reconciler.planning.disk_budget import BudgetCheck, counted_bytes, eviction_reason
from reconciler.planning.globs import ReferencePattern, glob_regex, name_matches
from reconciler.planning.labels import describe_selector, labels_match
from reconciler.planning.semver import SemverKey, semver_key


class Fate(StrEnum):
    KEEP = "keep"
    UNTAG = "untag"  # some tags go, the image stays
    REMOVE = "remove"  # the image goes, with every tag (rung 5)
    EVICT = "evict"  # the image goes to meet the disk budget (rung 6)


class Rung(StrEnum):
    IN_USE = "in-use"
    HELD = "held"
    DECLARED = "declared"
    PROTECTED = "protected"
    MIN_AGE = "min-age"
    RULE = "rule"
    UNMATCHED = "unmatched"
    DISK = "disk"


@dataclass(frozen=True)
class Decision:
    """Why a tag (or a whole image) is kept or dropped, with the inputs that decided."""

    subject: str  # a familiar tag reference, or the short id for a whole image
    kept: bool
    rung: Rung
    reason: str  # a sentence for people
    rule: str | None = None
    condition: str | None = (
        None  # keep_last, keep_within, keep_tags, keep_previous, older_than, select
    )
    age: float = 0.0
    last_used: float | None = None
    containers: tuple[str, ...] = ()
    pattern: str | None = None  # the protect pattern or declared reference that matched
    rank: int | None = None  # 1-based rank within keep_last's repository
    arrived: float | None = None  # when the image arrived on the host (min_age's time)


@dataclass(frozen=True)
class Verdict:
    image_id: str
    outcome: Fate
    decisions: tuple[Decision, ...]
    untag: tuple[Reference, ...] = ()  # tags dropped while the image stays (UNTAG)
    freed_bytes: int | None = None  # unique bytes, for REMOVE and EVICT; None when unknown
    eviction: int | None = None  # EVICT: its place in the eviction order, from 1

    @property
    def removes(self) -> bool:
        return self.outcome in (Fate.REMOVE, Fate.EVICT)


@dataclass(frozen=True)
class RetentionResult:
    verdicts: tuple[Verdict, ...]  # one per image, sorted by image id
    freed_bytes: int  # sum of the known unique bytes of removed and evicted images
    unknown_sizes: int  # removed or evicted images whose unique size is unknown
    budget: BudgetCheck | None = None  # with a disk budget and the host's disk figures

    @property
    def removals(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.removes)


def evaluate_retention(
    spec: RetentionSpec,
    images: Sequence[ImageRecord],
    containers: Sequence[ContainerRecord],
    declared: Set[str],
    now: float,
    last_used: Mapping[str, float] | None = None,
    previous: Mapping[str, tuple[str, ...]] | None = None,
    disk: DiskUsage | None = None,
    arrived: Mapping[str, float] | None = None,
    held: Mapping[str, str] | None = None,
) -> RetentionResult:
    """Decide every image's fate under ``spec``; see the module docstring for the rules.

    ``declared`` holds canonical tag and digest references and image ids that
    ``images:`` claims. ``previous`` maps a canonical tag to the ids it pointed
    at before, newest first. ``arrived`` maps an image id to when it arrived on the
    host; an image it lacks arrives ``now``. Without it (``None``: a caller that keeps
    no usage state) min_age counts from creation. The same inputs, in any order, give
    the same result.
    """
    ordered = sorted(images, key=lambda image: image.id)
    context = _Context(spec, now, declared, last_used or {}, previous or {}, containers, arrived, held)
    protected = {image.id: found for image in ordered if (found := context.protection(image))}
    open_images = [image for image in ordered if image.id not in protected]
    verdicts = {key: Verdict(key, Fate.KEEP, (found,)) for key, found in protected.items()}
    kept_anyway = [image for image in ordered if image.id in protected]
    verdicts.update(_RuleRound(context, open_images, kept_anyway).verdicts())
    budget = None
    if spec.disk is not None and disk is not None:
        evicted, budget = _evict(context, spec.disk, disk, open_images, verdicts)
        verdicts.update(evicted)
    final = tuple(verdicts[image.id] for image in ordered)
    return _result(final, budget)


# --- rungs 1-4 -------------------------------------------------------------------


class _Context:
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
        self.last_used = last_used
        self.previous = previous
        self.users: dict[str, list[str]] = {}
        for container in containers:
            self.users.setdefault(container.image_id, []).append(container.name)
        self.protect = tuple(ReferencePattern.parse(text) for text in spec.protect)
        self.rules = tuple(_CompiledRule(rule) for rule in spec.rules)

    def age(self, image: ImageRecord) -> float:
        """Since creation: what older_than, keep_within and keep_last go by."""
        return self.now - image.created

    def arrival(self, image: ImageRecord) -> float | None:
        """When ``image`` arrived on the host (min_age's time); None when arrivals are not kept."""
        if self.arrived is None:
            return None
        return self.arrived.get(image.id, self.now)

    def protection(self, image: ImageRecord) -> Decision | None:
        """The first of rungs 1-4 that keeps ``image`` whole, or None."""
        subject, age = image.short_id, self.age(image)
        users = tuple(sorted(self.users.get(image.id, ())))
        if users:
            reason = (
                f"used by container {', '.join(users)}; an image a container uses is never removed"
            )
            return Decision(subject, True, Rung.IN_USE, reason, age=age, containers=users)
        if image.id in self.held:
            return Decision(subject, True, Rung.HELD, self.held[image.id], age=age)
        claim = self._declared_reference(image)
        if claim is not None:
            reason = f"{claim} is declared under images:"
            return Decision(subject, True, Rung.DECLARED, reason, age=age, pattern=claim)
        for pattern in self.protect:
            for ref in (*image.tags, *image.digests):
                if pattern.matches(ref):
                    reason = f"{ref.familiar()} matches the protect pattern {pattern.text!r}"
                    return Decision(
                        subject, True, Rung.PROTECTED, reason, age=age, pattern=pattern.text
                    )
        if self.spec.protect_labels:
            labels = image.label_map
            for selector in self.spec.protect_labels:
                if labels_match(selector, labels):
                    described = describe_selector(selector)
                    reason = f"its {described} matches protect labels"
                    return Decision(subject, True, Rung.PROTECTED, reason, age=age, pattern=described)
        arrival = self.arrival(image)
        limit = format_duration(self.spec.min_age)
        if arrival is None:
            if age < self.spec.min_age:
                reason = f"created {format_age(age)} ago, within min_age {limit}"
                return Decision(subject, True, Rung.MIN_AGE, reason, age=age)
        elif self.now - arrival < self.spec.min_age:
            here = self.now - arrival
            reason = f"arrived on the host {format_age(here)} ago, within min_age {limit} (created {format_age(age)} ago)"
            return Decision(subject, True, Rung.MIN_AGE, reason, age=age, arrived=arrival)
        return None

    def _declared_reference(self, image: ImageRecord) -> str | None:
        for ref in (*image.tags, *image.digests):
            if ref.canonical() in self.declared:
                return ref.familiar()
        return image.short_id if image.id in self.declared else None


# --- rung 5: rules ---------------------------------------------------------------


class _CompiledRule:
    """A rule with its regexes compiled and its repository matches remembered by name."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.repositories = tuple(glob_regex(glob) for glob in rule.select.repositories)
        self.include = _regex(rule.select.tags.include)
        self.exclude = _regex(rule.select.tags.exclude)
        self.keep_tags = _regex(rule.keep_tags)
        self._by_name: dict[str, bool] = {}

    def _repository_selected(self, ref: Reference) -> bool:
        if not self.repositories:
            return True
        known = self._by_name.get(ref.name)
        if known is None:
            known = any(name_matches(regex, ref) for regex in self.repositories)
            self._by_name[ref.name] = known
        return known

    def selects_tag(self, ref: Reference, image: ImageRecord | None) -> bool:
        """Whether the rule selects ``ref`` of ``image`` (None: the tag's image is not on the
        host, so a rule with ``labels`` cannot select it)."""
        if self.rule.select.untagged or ref.tag is None or not self._repository_selected(ref):
            return False
        if self.include is not None and not self.include.fullmatch(ref.tag):
            return False
        if self.exclude is not None and self.exclude.fullmatch(ref.tag):
            return False
        return self._labels_selected(image)

    def selects_untagged(self, image: ImageRecord) -> bool:
        if not self.rule.select.untagged or not self._labels_selected(image):
            return False
        return not self.repositories or any(self._repository_selected(d) for d in image.digests)

    def _labels_selected(self, image: ImageRecord | None) -> bool:
        selector = self.rule.select.labels
        if selector is None:
            return True
        return image is not None and labels_match(selector, image.label_map)

    @property
    def label_text(self) -> str | None:
        """The rule's label selector in words, for the decisions it makes."""
        selector = self.rule.select.labels
        return describe_selector(selector) if selector is not None else None


def _regex(text: str | None) -> re.Pattern[str] | None:
    return None if text is None else re.compile(text)


_Key = tuple[SemverKey, int] | tuple[int]


class _RuleRound:
    """Rung 5 over the images rungs 1-4 left open.

    The images rungs 1-4 keep still take their places in ``keep_last``'s ranking: "the
    three newest" counts a declared newest image as one of the three.
    """

    def __init__(
        self, context: _Context, images: Sequence[ImageRecord], kept_anyway: Sequence[ImageRecord] = ()
    ) -> None:
        self.context = context
        self.images = images
        self.kept_anyway = kept_anyway
        self.tag_owner: dict[tuple[str, Reference], int | None] = {}
        self.untagged_owner: dict[str, int | None] = {}
        self._assign()
        self.previous = self._previous_keeps()
        self.ranks = self._rank()

    def _first(self, selects: Iterable[bool]) -> int | None:
        return next((index for index, selected in enumerate(selects) if selected), None)

    def _tag_rule(self, ref: Reference, image: ImageRecord | None) -> int | None:
        """The first rule that selects ``ref`` of ``image``."""
        for index, rule in enumerate(self.context.rules):
            if rule.selects_tag(ref, image):
                return index
        return None

    def _assign(self) -> None:
        rules = self.context.rules
        for image in self.images:
            if not image.tags:
                self.untagged_owner[image.id] = self._first(
                    r.selects_untagged(image) for r in rules
                )
            for ref in image.tags:
                self.tag_owner[(image.id, ref)] = self._tag_rule(ref, image)

    def _rank(self) -> dict[tuple[int, str], dict[str, int]]:
        """(rule, repository) -> image id -> 1-based rank, newest first, for rules with keep_last."""
        groups: dict[tuple[int, str], dict[str, _Key]] = {}
        by_id = {image.id: image for image in (*self.images, *self.kept_anyway)}
        kept_tags = {
            (image.id, ref): self._tag_rule(ref, image)
            for image in self.kept_anyway
            for ref in image.tags
        }
        for (image_id, ref), owner in (*self.tag_owner.items(), *kept_tags.items()):
            if owner is not None and self.context.rules[owner].rule.keep_last is not None:
                keys = groups.setdefault((owner, ref.name), {})
                key = self._key(owner, by_id[image_id], ref.tag)
                keys[image_id] = max(key, keys.get(image_id, key))
        for image_id, owner in self.untagged_owner.items():
            # An image keep_previous holds may lose its tags; were it to take a slot among
            # the untagged then, the next run would drop an image this run keeps.
            if image_id in self.previous:
                continue
            if owner is not None and self.context.rules[owner].rule.keep_last is not None:
                image = by_id[image_id]
                for name in sorted({d.name for d in image.digests}) or [""]:
                    groups.setdefault((owner, name), {})[image_id] = self._key(owner, image, None)
        ranks: dict[tuple[int, str], dict[str, int]] = {}
        for group, keys in groups.items():
            ordered = sorted(sorted(keys), key=keys.__getitem__, reverse=True)  # stable: ties by id
            ranks[group] = {image_id: rank for rank, image_id in enumerate(ordered, 1)}
        return ranks

    def _key(self, owner: int, image: ImageRecord, tag: str | None) -> _Key:
        if self.context.rules[owner].rule.order is Order.SEMVER:
            return (semver_key(tag) if tag is not None else (0, (), ()), image.created)
        return (image.created,)

    def _previous_keeps(self) -> dict[str, Decision]:
        """Image id -> the keep_previous decision holding it."""
        keeps: dict[str, Decision] = {}
        # A tag's rule, for a rule selecting by labels, goes by the image the tag points at now.
        now_at = {ref.canonical(): image for image in (*self.images, *self.kept_anyway) for ref in image.tags}
        for tag_text in sorted(self.context.previous):
            ref = _parse_tag(tag_text)
            owner = (
                None
                if ref is None
                else self._tag_rule(ref, now_at.get(tag_text))
            )
            count = None if owner is None else self.context.rules[owner].rule.keep_previous
            if owner is None or not count or ref is None:
                continue
            name = self.context.rules[owner].rule.name
            for position, image_id in enumerate(self.context.previous[tag_text][:count], 1):
                reason = f"previous image #{position} of {ref.familiar()} (keep_previous {count}, rule {name})"
                keeps.setdefault(
                    image_id,
                    Decision(
                        ref.familiar(),
                        True,
                        Rung.RULE,
                        reason,
                        name,
                        "keep_previous",
                        rank=position,
                    ),
                )
        return keeps

    def verdicts(self) -> dict[str, Verdict]:
        return {image.id: self._verdict(image) for image in self.images}

    def _verdict(self, image: ImageRecord) -> Verdict:
        tags = sorted(image.tags) if len(image.tags) > 1 else image.tags
        if tags:
            units = [self._decide(image, ref, self.tag_owner[(image.id, ref)]) for ref in tags]
        else:
            units = [self._decide(image, None, self.untagged_owner[image.id])]
        dropped = tuple(ref for ref, d in zip(tags, units, strict=False) if not d.kept)
        held = self.previous.get(image.id)
        if held is not None:
            held = dataclasses.replace(held, age=self.context.now - image.created)
        decisions = (*units, held) if held else tuple(units)
        if held is None and not any(d.kept for d in units):
            return Verdict(image.id, Fate.REMOVE, decisions, freed_bytes=image.unique_size)
        # An image keep_previous holds cannot lose its last tag: the daemon would delete it with it.
        if dropped and len(dropped) < len(image.tags):
            return Verdict(image.id, Fate.UNTAG, decisions, untag=dropped)
        return Verdict(image.id, Fate.KEEP, decisions)

    def _decide(self, image: ImageRecord, ref: Reference | None, owner: int | None) -> Decision:
        subject = ref.familiar() if ref is not None else image.short_id
        age = self.context.age(image)
        if owner is None:
            kept = self.context.spec.unmatched is Unmatched.KEEP
            reason = f"no rule selects it; unmatched: {self.context.spec.unmatched.value}"
            return Decision(subject, kept, Rung.UNMATCHED, reason, age=age)
        rule = self.context.rules[owner]
        rank = self._rank_of(owner, image, ref)
        kept, condition, reason = _apply_rule(rule, age, ref, rank)
        if rule.label_text is not None:
            reason = f"{reason} (selected by its {rule.label_text})"
        return Decision(
            subject, kept, Rung.RULE, reason, rule.rule.name, condition, age, rank=rank, pattern=rule.label_text
        )

    def _rank_of(self, owner: int, image: ImageRecord, ref: Reference | None) -> int | None:
        if self.context.rules[owner].rule.keep_last is None:
            return None
        if ref is not None:
            return self.ranks.get((owner, ref.name), {}).get(image.id)
        names = sorted({d.name for d in image.digests}) or [""]
        found = [r for name in names if (r := self.ranks.get((owner, name), {}).get(image.id))]
        return min(found, default=None)


def _apply_rule(
    rule: _CompiledRule, age: float, ref: Reference | None, rank: int | None
) -> tuple[bool, str, str]:
    """(kept, condition, reason): the keep conditions OR'ed, then older_than."""
    spec = rule.rule
    if spec.keep_last is not None and rank is not None and rank <= spec.keep_last:
        by = "version" if spec.order is Order.SEMVER else "creation time"
        return True, "keep_last", f"newest #{rank} of its repository by {by} (keep_last {spec.keep_last})"
    created = f"created {format_age(age)} ago"
    if spec.keep_within is not None and age <= spec.keep_within:
        return (
            True,
            "keep_within",
            f"{created}, within keep_within {format_duration(spec.keep_within)}",
        )
    tag = ref.tag if ref is not None else None
    if rule.keep_tags is not None and tag is not None and rule.keep_tags.fullmatch(tag):
        return True, "keep_tags", f"tag {tag} matches keep_tags {spec.keep_tags!r}"
    if spec.older_than is None:
        return False, "select", f"selected by rule {spec.name} and kept by none of its conditions"
    limit = format_duration(spec.older_than)
    if age <= spec.older_than:
        return True, "older_than", f"{created}, not older than {limit}"
    return (
        False,
        "older_than",
        f"{created}, older than {limit}, and kept by none of the rule's conditions",
    )


def _parse_tag(text: str) -> Reference | None:
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return None
    return ref if ref.digest is None else None


# --- rung 6: disk budget -----------------------------------------------------------


def _evict(
    context: _Context,
    budget: DiskBudget,
    disk: DiskUsage,
    candidates: Sequence[ImageRecord],
    verdicts: Mapping[str, Verdict],
) -> tuple[dict[str, Verdict], BudgetCheck]:
    """Evict least recently used removable images while the budget is exceeded; numbered in
    the order they go, with the budget's figures."""
    freed = sum(counted_bytes(image) for image in candidates if verdicts[image.id].removes)
    images_size, used = disk.images_size - freed, disk.filesystem_used - freed

    def over(target_percent: float | None) -> bool:
        too_big = budget.max_total is not None and images_size > budget.max_total
        too_full = target_percent is not None and used * 100 > target_percent * disk.filesystem_size
        return too_big or too_full

    evicted: dict[str, Verdict] = {}
    remaining = [image for image in candidates if not verdicts[image.id].removes]
    remaining.sort(
        key=lambda image: (context.last_used.get(image.id, float(image.created)), image.id)
    )
    for image in remaining if over(budget.high) else ():
        if not over(budget.low):
            break
        used_at = context.last_used.get(image.id)
        reason = eviction_reason(budget, disk, images_size, used)
        decision = Decision(
            image.short_id, False, Rung.DISK, reason, age=context.age(image), last_used=used_at
        )
        evicted[image.id] = Verdict(
            image.id,
            Fate.EVICT,
            (*verdicts[image.id].decisions, decision),
            freed_bytes=image.unique_size,
            eviction=len(evicted) + 1,
        )
        images_size -= counted_bytes(image)
        used -= counted_bytes(image)
    going = sum(counted_bytes(image) for image in remaining if image.id in evicted)
    return evicted, BudgetCheck(budget, disk, freed, going, len(evicted))


# --- result ------------------------------------------------------------------------


def _result(verdicts: tuple[Verdict, ...], budget: BudgetCheck | None) -> RetentionResult:
    removed = [v for v in verdicts if v.removes]
    freed = sum(v.freed_bytes or 0 for v in removed)
    unknown = sum(1 for v in removed if v.freed_bytes is None)
    return RetentionResult(verdicts, freed, unknown, budget)
