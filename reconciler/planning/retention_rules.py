"""Retention's rung 5: the rules, in file order, deciding per tag (or per untagged image).

Each tag goes to the first rule that selects it; ``keep_last`` ranks per repository (the
images rungs 1-4 keep take their places too), ``keep_previous`` holds the images tags pointed
at before. The rules' meaning is told in :mod:`reconciler.planning.retention`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from reconciler.model.inventory import ImageRecord
from reconciler.model.manifest import Order, Unmatched
from reconciler.model.reference import InvalidReference, Reference, parse_reference
from reconciler.model.units import format_age
from reconciler.planning.retention_rungs import CompiledRule, RetentionContext
from reconciler.planning.retention_verdicts import Decision, Fate, Rung, Verdict
from reconciler.planning.semver import SemverKey, semver_key

_Key = tuple[SemverKey, int] | tuple[int]


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
        now_at = {
            ref.canonical(): image
            for image in (*self.images, *self.kept_anyway)
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
        tags = sorted(image.tags) if len(image.tags) > 1 else image.tags
        if tags:
            units = [self._decide(image, ref, self.tag_owner[(image.id, ref)]) for ref in tags]
        else:
            units = [self._decide(image, None, self.untagged_owner[image.id])]
        dropped = tuple(ref for ref, d in zip(tags, units, strict=False) if not d.kept)
        held = self.previous.get(image.id)
        if held is not None:
            held = held._replace(age=self.context.now - image.created)
        decisions = (*units, held) if held is not None else tuple(units)
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

    def _rank_of(self, owner: int, image: ImageRecord, ref: Reference | None) -> int | None:
        if self.context.rules[owner].rule.keep_last is None:
            return None
        if ref is not None:
            return self.ranks.get((owner, ref.name), {}).get(image.id)
        names = sorted({d.name for d in image.digests}) or [""]
        found = [r for name in names if (r := self.ranks.get((owner, name), {}).get(image.id))]
        return min(found, default=None)


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
