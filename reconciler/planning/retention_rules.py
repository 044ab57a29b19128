"""Retention's rung 5: the rules, in file order, deciding per tag (or per untagged image).

Each tag goes to the first rule that selects it; ``keep_last`` ranks per repository (the
images rungs 1-4 keep take their places too), ``keep_previous`` holds the images tags pointed
at before. The rules' meaning is told in :mod:`reconciler.planning.retention`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from operator import itemgetter

from reconciler.model.inventory import ImageRecord
from reconciler.model.manifest import Order, Unmatched
from reconciler.model.reference import InvalidReference, Reference, parse_reference
from reconciler.model.units import format_age
from reconciler.planning.retention_rungs import CompiledRule, RetentionContext
from reconciler.planning.retention_verdicts import (
    Decision,
    Fate,
    Rung,
    Verdict,
    new_decision,
    new_verdict,
)
from reconciler.planning.semver import SemverKey, semver_key

_Key = tuple[SemverKey, int] | int  # by version, then creation time; or by creation time
_NO_VERSION: SemverKey = (0, (), ())  # how an untagged image ranks by version: below every tag
# Read once: an enum member read off its class costs about 60 ns on Python 3.11, and every
# decision and verdict names one.
_RULE, _UNMATCHED = Rung.RULE, Rung.UNMATCHED
_KEEP, _UNTAG, _REMOVE = Fate.KEEP, Fate.UNTAG, Fate.REMOVE
_by_reference = itemgetter(0)


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


_Judgement = tuple[bool, str, str]  # kept, the condition that decided, the sentence


class _Conditions:
    """One rule's keep conditions, OR'ed, then ``older_than``, deciding on a tag or untagged image.

    A host's decisions repeat a few sentences (the same rank, the same age in days), so each
    judgement is made once per rank or worded age and shared by the decisions that have it.
    """

    __slots__ = (
        "by_rank",
        "keep_last",
        "keep_tags",
        "keep_within",
        "label_text",
        "name",
        "older",
        "older_than",
        "rule",
        "unconditional",
        "within",
        "younger",
    )

    def __init__(self, rule: CompiledRule) -> None:
        spec = rule.rule
        self.rule = rule
        self.name = spec.name
        self.label_text = rule.label_text
        self.keep_last = spec.keep_last
        self.keep_within = spec.keep_within
        self.keep_tags = rule.keep_tags
        self.older_than = spec.older_than
        self.by_rank: dict[int, _Judgement] = {}
        # By the age as format_age words it: kept by keep_within, not older than older_than, older.
        self.within: dict[str, _Judgement] = {}
        self.younger: dict[str, _Judgement] = {}
        self.older: dict[str, _Judgement] = {}
        self.unconditional = self._labelled(
            False, "select", f"selected by rule {spec.name} and kept by none of its conditions"
        )

    def decide(self, subject: str, age: float, tag: str | None, rank: int | None) -> Decision:
        """The rule's decision on ``subject``: a tag (``tag``), or an untagged image's short id."""
        keep_last, keep_within, older_than = self.keep_last, self.keep_within, self.older_than
        if keep_last is not None and rank is not None and rank <= keep_last:
            judgement = self.by_rank.get(rank) or self._keep_last(rank)
        elif keep_within is not None and age <= keep_within:
            words = format_age(age)
            judgement = self.within.get(words) or self._within(words)
        elif self.keep_tags is not None and tag is not None and self.keep_tags.fullmatch(tag):
            reason = f"tag {tag} matches keep_tags {self.rule.rule.keep_tags!r}"
            judgement = self._labelled(True, "keep_tags", reason)
        elif older_than is None:
            judgement = self.unconditional
        elif age <= older_than:
            words = format_age(age)
            judgement = self.younger.get(words) or self._younger(words)
        else:
            words = format_age(age)
            judgement = self.older.get(words) or self._older(words)
        kept, condition, reason = judgement
        # The three after age are last_used, containers and pattern; arrived is last.
        return new_decision(
            (subject, kept, _RULE, reason, self.name, condition, age, None, (), self.label_text,
             rank, None)
        )  # fmt: skip

    # The judgements, each made the first time it is needed and kept.

    def _keep_last(self, rank: int) -> _Judgement:
        spec = self.rule.rule
        by = "version" if spec.order is Order.SEMVER else "creation time"
        reason = f"newest #{rank} of its repository by {by} (keep_last {spec.keep_last})"
        judgement = self.by_rank[rank] = self._labelled(True, "keep_last", reason)
        return judgement

    def _within(self, words: str) -> _Judgement:
        reason = f"created {words} ago, within keep_within {self.rule.keep_within_text}"
        judgement = self.within[words] = self._labelled(True, "keep_within", reason)
        return judgement

    def _younger(self, words: str) -> _Judgement:
        reason = f"created {words} ago, not older than {self.rule.older_than_text}"
        judgement = self.younger[words] = self._labelled(True, "older_than", reason)
        return judgement

    def _older(self, words: str) -> _Judgement:
        reason = (
            f"created {words} ago, older than {self.rule.older_than_text},"
            " and kept by none of the rule's conditions"
        )
        judgement = self.older[words] = self._labelled(False, "older_than", reason)
        return judgement

    def _labelled(self, kept: bool, condition: str, reason: str) -> _Judgement:
        """The judgement, its sentence saying the rule's label selector when it has one."""
        if self.label_text is not None:
            reason = f"{reason} (selected by its {self.label_text})"
        return kept, condition, reason


# A rule that may select tags of a repository: its index, itself, its keep_last ranking there
# (None: the rule has no keep_last), its conditions.
_Candidate = tuple[int, CompiledRule, _Ranking | None, _Conditions]


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
        self._conditions = tuple(_Conditions(rule) for rule in context.rules)
        self.previous = self._previous_keeps()
        # The rankings are complete before any decision: each decision names its rank. The rule
        # of every tag of ``images`` is kept meanwhile, in order (image by image, each image's
        # tags as it lists them): one list of shared entries, not an object per tag.
        self._tag_rules: list[_Candidate | None] = []
        # Of each untagged image among ``images``: its rule and the rankings it has a place in.
        self._untagged: dict[str, tuple[int | None, list[_Ranking]]] = {}
        self._take_places(images, self._tag_rules)
        self._take_places(kept_anyway, None)
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
            rule = candidate[1]
            if rule.selects_every_tag or rule.selects_tag(tag, image):
                return candidate
        return None

    def _candidates(self, ref: Reference) -> tuple[_Candidate, ...]:
        """The rules that select some tags of ``ref``'s repository, in file order."""
        return tuple(
            (index, rule, self._ranking(index, ref.name), self._conditions[index])
            for index, rule in enumerate(self.context.rules)
            if rule.selects_tags_of(ref)
        )

    def _untagged_rule(self, image: ImageRecord) -> int | None:
        """The first rule with ``untagged: true`` that selects ``image``."""
        for index, rule in enumerate(self.context.rules):
            if rule.selects_untagged(image):
                return index
        return None

    def _take_places(
        self, images: Sequence[ImageRecord], tag_rules: list[_Candidate | None] | None
    ) -> None:
        """Place each image in the keep_last rankings of the rules its tags go to, appending each
        tag's rule to ``tag_rules``; an image without a tag (when ``tag_rules`` is given: images
        rungs 1-4 left open), in those of its untagged rule, both kept for its decision."""
        tag_rule = self._tag_rule
        for image in images:
            tags = image.tags
            for ref in tags:
                found = tag_rule(ref, image)
                if tag_rules is not None:
                    tag_rules.append(found)
                ranking = None if found is None else found[2]
                if ranking is None:
                    continue
                if ranking.by_version:
                    ranking.add(image, ref.tag)
                else:  # what add does by creation time, without its call
                    ranking.keys[image.id] = image.created
            if tag_rules is not None and not tags:
                untagged = self._untagged[image.id] = self._untagged_rule_and_rankings(image)
                for ranking in untagged[1]:
                    ranking.add(image, None)

    def _untagged_rule_and_rankings(self, image: ImageRecord) -> tuple[int | None, list[_Ranking]]:
        """An untagged image's rule and the keep_last rankings it takes a place in: one per
        repository of its digest references."""
        owner = self._untagged_rule(image)
        # An image keep_previous holds may lose its tags; were it to take a slot among
        # the untagged then, the next run would drop an image this run keeps.
        if owner is None or image.id in self.previous:
            return owner, []
        names = _digest_names(image)
        return owner, [r for name in names if (r := self._ranking(owner, name)) is not None]

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
        verdicts, tag_rules, position, verdict = {}, self._tag_rules, 0, self._verdict
        for image in self.images:
            verdicts[image.id] = verdict(image, tag_rules, position)
            position += len(image.tags)
        return verdicts

    def _verdict(
        self, image: ImageRecord, tag_rules: list[_Candidate | None], first: int
    ) -> Verdict:
        """``image``'s verdict; ``tag_rules[first:]`` are the rules of its tags, in the order it lists
        them (an index, not a slice: a slice would be one more object per image)."""
        age = self.context.now - image.created
        tags = image.tags
        dropped: tuple[Reference, ...] = ()
        if len(tags) == 1:
            decision = self._tag_decision(image, tags[0], tag_rules[first], age)
            decisions: tuple[Decision, ...] = (decision,)
            kept = decision.kept
            if not kept:
                dropped = tags
        elif tags:
            made, lost = [], []
            rules = tag_rules[first : first + len(tags)]
            for ref, found in sorted(zip(tags, rules, strict=True), key=_by_reference):
                decision = self._tag_decision(image, ref, found, age)
                made.append(decision)
                if not decision.kept:
                    lost.append(ref)
            decisions, dropped, kept = tuple(made), tuple(lost), len(lost) < len(tags)
        else:
            decision = self._untagged_decision(image, age)
            decisions, kept = (decision,), decision.kept
        held = self.previous.get(image.id)
        if held is None and not kept:
            return new_verdict((image.id, _REMOVE, decisions, (), image.unique_size, None))
        if held is not None:
            decisions = (*decisions, held._replace(age=age))
        # An image keep_previous holds cannot lose its last tag: the daemon would delete it with it.
        if dropped and len(dropped) < len(tags):
            return new_verdict((image.id, _UNTAG, decisions, dropped, None, None))
        return new_verdict((image.id, _KEEP, decisions, (), None, None))

    def _tag_decision(
        self, image: ImageRecord, ref: Reference, found: _Candidate | None, age: float
    ) -> Decision:
        if found is None:
            return self._unmatched(ref.familiar(), age)
        ranking = found[2]
        rank = None if ranking is None else ranking.ranks[image.id]
        return found[3].decide(ref.familiar(), age, ref.tag, rank)

    def _untagged_decision(self, image: ImageRecord, age: float) -> Decision:
        owner, rankings = self._untagged[image.id]
        if owner is None:
            return self._unmatched(image.short_id, age)
        rank = min((ranking.ranks[image.id] for ranking in rankings), default=None)
        return self._conditions[owner].decide(image.short_id, age, None, rank)

    def _unmatched(self, subject: str, age: float) -> Decision:
        return Decision(subject, self._unmatched_kept, _UNMATCHED, self._unmatched_reason, age=age)


def _digest_names(image: ImageRecord) -> list[str]:
    """The repositories of an untagged image, from its digest references ("" when it has none)."""
    return sorted({d.name for d in image.digests}) or [""]


def _parse_tag(text: str) -> Reference | None:
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return None
    return ref if ref.digest is None else None
