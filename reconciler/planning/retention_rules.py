"""Retention's rung 5: the rules, in file order, deciding per tag (or per untagged image).

Each tag goes to the first rule that selects it; ``keep_last`` ranks per repository (the
images rungs 1-4 keep take their places too), ``keep_previous`` holds the images tags pointed
at before. The rules' meaning is told in :mod:`reconciler.planning.retention`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

from reconciler.model.inventory import ImageRecord
from reconciler.model.manifest import Order, Unmatched
from reconciler.model.reference import InvalidReference, Reference, parse_reference
from reconciler.model.units import format_age
from reconciler.planning.retention_rungs import CompiledRule, RetentionContext
from reconciler.planning.retention_verdicts import Decision, Fate, Rung, Verdict
from reconciler.planning.semver import SemverKey, semver_key

_Key = tuple[SemverKey, int] | int  # by version, then creation time; or by creation time
_NO_VERSION: SemverKey = (0, (), ())  # how an untagged image ranks by version: below every tag


class _Ranking:
    """keep_last's order of one repository's images under one rule: newest first, ties by id."""

    __slots__ = ("keys", "ranks")

    def __init__(self) -> None:
        self.keys: dict[str, _Key] = {}  # image id -> what it ranks by
        self.ranks: dict[str, int] = {}  # image id -> 1-based rank, once ranked

    def add(self, image_id: str, key: _Key) -> None:
        """Give the image its place by ``key``, or keep the higher one it has (another tag's)."""
        known = self.keys.get(image_id)
        self.keys[image_id] = key if known is None else max(key, known)

    def rank(self) -> None:
        keys = self.keys
        ordered = sorted(sorted(keys), key=keys.__getitem__, reverse=True)  # stable: ties by id
        self.ranks = {image_id: rank for rank, image_id in enumerate(ordered, 1)}


# What a decision is about: a tag (None: the untagged image as a whole), the index of the rule
# it goes to (None: no rule selects it) and the keep_last rankings it has a place in.
_Unit = tuple[Reference | None, int | None, tuple[_Ranking, ...]]


class RuleRound:
    """Rung 5 over the images rungs 1-4 left open.

    The images rungs 1-4 keep still take their places in ``keep_last``'s ranking: "the
    three newest" counts a declared newest image as one of the three.
    """

    def __init__(
        self,
        context: RetentionContext,
        images: Sequence[ImageRecord],
        kept_anyway: Sequence[ImageRecord] = (),
    ) -> None:
        self.context = context
        self.images = images
        self.kept_anyway = kept_anyway
        rules = context.rules
        self._ranked = [rule.rule.keep_last is not None for rule in rules]
        self._by_version = [rule.rule.order is Order.SEMVER for rule in rules]
        # Repository name -> the rules that select some of its tags, with their indexes.
        self._tag_rules_by_name: dict[str, tuple[tuple[int, CompiledRule], ...]] = {}
        self._rankings: dict[tuple[int, str], _Ranking] = {}  # by rule and repository
        self.previous = self._previous_keeps()
        # Image id -> what its decisions are about: its tags, sorted, or the image untagged.
        self.units = {image.id: self._assign(image) for image in images}
        for image in kept_anyway:
            self._assign(image, tags_only=True)
        for ranking in self._rankings.values():
            ranking.rank()
        self._unmatched_kept = context.spec.unmatched is Unmatched.KEEP
        self._unmatched_reason = f"no rule selects it; unmatched: {context.spec.unmatched.value}"

    def _tag_rule(self, ref: Reference, image: ImageRecord | None) -> int | None:
        """The first rule that selects ``ref`` of ``image``."""
        tag = ref.tag
        if tag is None:
            return None
        candidates = self._tag_rules_by_name.get(ref.name)
        if candidates is None:
            candidates = tuple(
                (index, rule)
                for index, rule in enumerate(self.context.rules)
                if rule.selects_tags_of(ref)
            )
            self._tag_rules_by_name[ref.name] = candidates
        for index, rule in candidates:
            if rule.selects_tag(tag, image):
                return index
        return None

    def _untagged_rule(self, image: ImageRecord) -> int | None:
        """The first rule with ``untagged: true`` that selects ``image``."""
        for index, rule in enumerate(self.context.rules):
            if rule.selects_untagged(image):
                return index
        return None

    def _assign(self, image: ImageRecord, tags_only: bool = False) -> list[_Unit]:
        """The image's tags (or the image, untagged) with their rules; each takes its place in
        its rule's keep_last ranking."""
        if image.tags:
            tags = sorted(image.tags) if len(image.tags) > 1 else image.tags
            return [self._tag_unit(image, ref) for ref in tags]
        if tags_only:
            return []
        owner = self._untagged_rule(image)
        # An image keep_previous holds may lose its tags; were it to take a slot among
        # the untagged then, the next run would drop an image this run keeps.
        if owner is None or not self._ranked[owner] or image.id in self.previous:
            return [(None, owner, ())]
        key = (_NO_VERSION, image.created) if self._by_version[owner] else image.created
        rankings = tuple(self._ranking(owner, name) for name in _digest_names(image))
        for ranking in rankings:
            ranking.add(image.id, key)
        return [(None, owner, rankings)]

    def _tag_unit(self, image: ImageRecord, ref: Reference) -> _Unit:
        owner = self._tag_rule(ref, image)
        if owner is None or not self._ranked[owner]:
            return (ref, owner, ())
        ranking = self._ranking(owner, ref.name)
        # A tag's rule selects only tags: ref.tag is set.
        by_version = self._by_version[owner]
        ranking.add(image.id, (semver_key(ref.tag or ""), image.created) if by_version else image.created)
        return (ref, owner, (ranking,))

    def _ranking(self, owner: int, name: str) -> _Ranking:
        ranking = self._rankings.get((owner, name))
        if ranking is None:
            ranking = self._rankings[(owner, name)] = _Ranking()
        return ranking

    def _previous_keeps(self) -> dict[str, Decision]:
        """Image id -> the keep_previous decision holding it."""
        keeps: dict[str, Decision] = {}
        # A tag's rule, for a rule selecting by labels, goes by the image the tag points at now;
        # no other rule looks at the image.
        by_labels = any(rule.rule.select.labels is not None for rule in self.context.rules)
        now_at = {
            ref.canonical(): image
            for image in (chain(self.images, self.kept_anyway) if by_labels else ())
            for ref in image.tags
        }
        for tag_text in sorted(self.context.previous):
            ref = _parse_tag(tag_text)
            owner = None if ref is None else self._tag_rule(ref, now_at.get(tag_text))
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
        age = self.context.now - image.created
        decisions, dropped, kept = [], [], False
        for ref, owner, rankings in self.units[image.id]:
            decision = self._decide(image, ref, owner, rankings, age)
            decisions.append(decision)
            if decision.kept:
                kept = True
            elif ref is not None:
                dropped.append(ref)
        held = self.previous.get(image.id)
        if held is None and not kept:
            return Verdict(image.id, Fate.REMOVE, tuple(decisions), freed_bytes=image.unique_size)
        if held is not None:
            decisions.append(held._replace(age=age))
        # An image keep_previous holds cannot lose its last tag: the daemon would delete it with it.
        if dropped and len(dropped) < len(image.tags):
            return Verdict(image.id, Fate.UNTAG, tuple(decisions), untag=tuple(dropped))
        return Verdict(image.id, Fate.KEEP, tuple(decisions))

    def _decide(
        self,
        image: ImageRecord,
        ref: Reference | None,
        owner: int | None,
        rankings: tuple[_Ranking, ...],
        age: float,
    ) -> Decision:
        subject = ref.familiar() if ref is not None else image.short_id
        if owner is None:
            return Decision(
                subject, self._unmatched_kept, Rung.UNMATCHED, self._unmatched_reason, age=age
            )
        rule = self.context.rules[owner]
        rank = _place(rankings, image.id)
        kept, condition, reason = _apply_rule(rule, age, ref, rank)
        if rule.label_text is not None:
            reason = f"{reason} (selected by its {rule.label_text})"
        return Decision(
            subject,
            kept,
            Rung.RULE,
            reason,
            rule.rule.name,
            condition,
            age,
            rank=rank,
            pattern=rule.label_text,
        )


def _place(rankings: tuple[_Ranking, ...], image_id: str) -> int | None:
    """The image's best place in ``rankings`` (None: it is in none)."""
    if len(rankings) == 1:  # a tag's one ranking: the common case
        return rankings[0].ranks[image_id]
    return min((ranking.ranks[image_id] for ranking in rankings), default=None)


def _digest_names(image: ImageRecord) -> list[str]:
    """The repositories of an untagged image, from its digest references ("" when it has none)."""
    return sorted({d.name for d in image.digests}) or [""]


def _apply_rule(
    rule: CompiledRule, age: float, ref: Reference | None, rank: int | None
) -> tuple[bool, str, str]:
    """(kept, condition, reason): the keep conditions OR'ed, then older_than."""
    spec = rule.rule
    if spec.keep_last is not None and rank is not None and rank <= spec.keep_last:
        by = "version" if spec.order is Order.SEMVER else "creation time"
        return (
            True,
            "keep_last",
            f"newest #{rank} of its repository by {by} (keep_last {spec.keep_last})",
        )
    created = f"created {format_age(age)} ago"
    if spec.keep_within is not None and age <= spec.keep_within:
        return (
            True,
            "keep_within",
            f"{created}, within keep_within {rule.keep_within_text}",
        )
    tag = ref.tag if ref is not None else None
    if rule.keep_tags is not None and tag is not None and rule.keep_tags.fullmatch(tag):
        return True, "keep_tags", f"tag {tag} matches keep_tags {spec.keep_tags!r}"
    if spec.older_than is None:
        return False, "select", f"selected by rule {spec.name} and kept by none of its conditions"
    limit = rule.older_than_text
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
