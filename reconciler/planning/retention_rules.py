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
    """keep_last's order of one repository's images under one rule: newest first by creation
    time, or by version with ``order: semver``; ties by id."""

    __slots__ = ("by_version", "keys", "ranks")

    def __init__(self, by_version: bool) -> None:
        self.by_version = by_version
        self.keys: dict[str, _Key] = {}  # image id -> what it ranks by
        self.ranks: dict[str, int] = {}  # image id -> 1-based rank, once ranked

    def add(self, image: ImageRecord, tag: str | None) -> None:
        """Place ``image`` by ``tag`` (None: the image is untagged); of its tags, the highest
        version counts."""
        if not self.by_version:
            self.keys[image.id] = image.created
            return
        key: _Key = (_NO_VERSION if tag is None else semver_key(tag), image.created)
        known = self.keys.get(image.id)
        self.keys[image.id] = key if known is None else max(key, known)

    def rank(self) -> None:
        keys = self.keys
        ordered = sorted(sorted(keys), key=keys.__getitem__, reverse=True)  # stable: ties by id
        self.ranks = {image_id: rank for rank, image_id in enumerate(ordered, 1)}


# A rule that may select tags of a repository: its index, itself, its keep_last ranking there
# (None: the rule has no keep_last).
_Candidate = tuple[int, CompiledRule, _Ranking | None]
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
        self._rankings: dict[tuple[int, str], _Ranking] = {}  # by rule and repository
        self._candidates_by_name: dict[str, tuple[_Candidate, ...]] = {}
        self.previous = self._previous_keeps()
        # Image id -> what its decisions are about: its tags, sorted, or the image untagged.
        self.units = {image.id: self._assign(image) for image in images}
        for image in kept_anyway:
            self._assign(image, tags_only=True)
        for ranking in self._rankings.values():
            ranking.rank()
        self._unmatched_kept = context.spec.unmatched is Unmatched.KEEP
        self._unmatched_reason = f"no rule selects it; unmatched: {context.spec.unmatched.value}"

    def _tag_rule(self, ref: Reference, image: ImageRecord | None) -> _Candidate | None:
        """The first rule that selects ``ref`` of ``image``."""
        tag = ref.tag
        if tag is None:
            return None
        candidates = self._candidates_by_name.get(ref.name)
        if candidates is None:
            candidates = self._candidates_by_name[ref.name] = self._candidates(ref)
        for candidate in candidates:
            if candidate[1].selects_tag(tag, image):
                return candidate
        return None

    def _candidates(self, ref: Reference) -> tuple[_Candidate, ...]:
        """The rules that select some tags of ``ref``'s repository, in file order."""
        return tuple(
            (index, rule, self._ranking(index, ref.name))
            for index, rule in enumerate(self.context.rules)
            if rule.selects_tags_of(ref)
        )

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
        if owner is None or image.id in self.previous:
            return [(None, owner, ())]
        rankings = tuple(
            ranking
            for name in _digest_names(image)
            if (ranking := self._ranking(owner, name)) is not None
        )
        for ranking in rankings:
            ranking.add(image, None)
        return [(None, owner, rankings)]

    def _tag_unit(self, image: ImageRecord, ref: Reference) -> _Unit:
        found = self._tag_rule(ref, image)
        if found is None:
            return (ref, None, ())
        owner, _, ranking = found
        if ranking is None:
            return (ref, owner, ())
        ranking.add(image, ref.tag)
        return (ref, owner, (ranking,))

    def _ranking(self, owner: int, name: str) -> _Ranking | None:
        """Rule ``owner``'s keep_last ranking of repository ``name`` (None: it has no keep_last)."""
        rule = self.context.rules[owner].rule
        if rule.keep_last is None:
            return None
        ranking = self._rankings.get((owner, name))
        if ranking is None:
            ranking = self._rankings[(owner, name)] = _Ranking(rule.order is Order.SEMVER)
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
            found = None if ref is None else self._tag_rule(ref, now_at.get(tag_text))
            owner = None if found is None else found[0]
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
    if spec.keep_within is not None and age <= spec.keep_within:
        return (
            True,
            "keep_within",
            f"created {format_age(age)} ago, within keep_within {rule.keep_within_text}",
        )
    tag = ref.tag if ref is not None else None
    if rule.keep_tags is not None and tag is not None and rule.keep_tags.fullmatch(tag):
        return True, "keep_tags", f"tag {tag} matches keep_tags {spec.keep_tags!r}"
    if spec.older_than is None:
        return False, "select", f"selected by rule {spec.name} and kept by none of its conditions"
    created, limit = f"created {format_age(age)} ago", rule.older_than_text
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
