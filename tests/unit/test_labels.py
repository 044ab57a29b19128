"""Label selectors: how the manifest says them, the located errors, and retention deciding by them."""

from __future__ import annotations

import textwrap

import pytest

from reconciler.errors import ManifestError
from reconciler.loading.loader import load_manifest_text
from reconciler.model.inventory import ImageRecord
from reconciler.model.manifest import (
    LabelCondition,
    LabelSelector,
    LabelTest,
    Manifest,
    RetentionSpec,
)
from reconciler.model.reference import parse_reference
from reconciler.planning.labels import labels_match
from reconciler.planning.retention import evaluate_retention
from reconciler.planning.retention_verdicts import Fate, Rung

NOW = 2_000_000_000.0
DAY = 86_400


def load(text: str) -> Manifest:
    return load_manifest_text(textwrap.dedent(text), "images.yaml", {})


def spec(text: str) -> RetentionSpec:
    found = load(text).retention
    assert found is not None
    return found


def image(number: int, *tags: str, labels: dict[str, str] | None = None, age: float = 100 * DAY) -> ImageRecord:
    return ImageRecord(
        id=f"sha256:{number:064x}",
        tags=tuple(parse_reference(t) for t in tags),
        created=int(NOW - age),
        size=10,
        shared_size=0,
        labels=tuple(sorted((labels or {}).items())),
    )


def test_values_presence_absence_and_not_are_read_as_written() -> None:
    found = spec("""
        version: 1
        retention:
          rules:
            - name: ci
              select: {labels: {"com.example.keep": "true", ci: true, tmp: false, stage: {not: prod}}}
        """)
    selector = found.rules[0].select.labels
    assert selector == LabelSelector((
        LabelCondition("ci", LabelTest.PRESENT),
        LabelCondition("com.example.keep", LabelTest.EQUALS, "true"),
        LabelCondition("stage", LabelTest.NOT_EQUALS, "prod"),
        LabelCondition("tmp", LabelTest.ABSENT),
    ))
    assert labels_match(selector, {"ci": "", "com.example.keep": "true", "stage": "dev"})
    assert labels_match(selector, {"ci": "1", "com.example.keep": "true"})  # no stage is "not prod"
    assert not labels_match(selector, {"ci": "1", "com.example.keep": "yes"})
    assert not labels_match(selector, {"ci": "1", "com.example.keep": "true", "tmp": "1"})
    assert not labels_match(selector, {"ci": "1", "com.example.keep": "true", "stage": "prod"})


def test_bad_label_selectors_are_located_with_what_to_write() -> None:
    with pytest.raises(ManifestError) as caught:
        load("""
            version: 1
            retention:
              protect:
                - labels: {"a key": true}
              rules:
                - name: x
                  select: {labels: {n: 3}}
            """)
    messages = [str(d) for d in caught.value.diagnostics]
    assert messages == [
        "images.yaml:8:28: retention.rules[0].select.labels.n: expected a string or true or false"
        " or a mapping with not, got the number 3."
    ]
    with pytest.raises(ManifestError) as caught:
        load("""
            version: 1
            retention:
              protect:
                - labels: {"a key": true, "k=v": "x"}
            """)
    messages = [str(d) for d in caught.value.diagnostics]
    assert len(messages) == 2 and messages[0].startswith("images.yaml:5:16: retention.protect[0].labels.a key:")
    assert "white space" in messages[0] and "'='" in messages[1]


def test_protect_by_label_keeps_the_image_and_names_the_label() -> None:
    retention = spec("""
        version: 1
        retention:
          unmatched: remove
          protect: [{labels: {"com.example.keep": "true"}}]
        """)
    kept, other = image(1, "app:1", labels={"com.example.keep": "true"}), image(2, "app:2", labels={"com.example.keep": "no"})
    result = evaluate_retention(retention, [kept, other], [], frozenset(), NOW)
    first, second = result.verdicts
    assert first.outcome is Fate.KEEP and first.decisions[0].rung is Rung.PROTECTED
    assert first.decisions[0].pattern == "label com.example.keep=true"
    assert "label com.example.keep=true" in first.decisions[0].reason
    assert second.outcome is Fate.REMOVE


def test_a_rule_selects_by_label_and_its_decisions_name_the_label() -> None:
    retention = spec("""
        version: 1
        retention:
          rules:
            - name: ci-scratch
              select: {labels: {ci.job: true}}
              older_than: 1d
        """)
    scratch = image(1, "app:pr-1", labels={"ci.job": "42"})
    plain = image(2, "app:pr-2")
    untagged = image(3, labels={"ci.job": "43"})
    result = evaluate_retention(retention, [scratch, plain, untagged], [], frozenset(), NOW)
    by_id = {v.image_id: v for v in result.verdicts}
    assert by_id[scratch.id].outcome is Fate.REMOVE
    assert by_id[scratch.id].decisions[0].pattern == "label ci.job"
    assert "selected by its label ci.job" in by_id[scratch.id].decisions[0].reason
    assert by_id[plain.id].outcome is Fate.KEEP  # no rule selects it; unmatched: keep
    assert by_id[untagged.id].outcome is Fate.KEEP  # the rule selects tags, not untagged images


def test_a_label_rule_decides_untagged_images_too() -> None:
    retention = spec("""
        version: 1
        retention:
          rules:
            - name: ci-dangling
              select: {untagged: true, labels: {ci.job: true}}
        """)
    ours, theirs = image(1, labels={"ci.job": "1"}), image(2)
    result = evaluate_retention(retention, [ours, theirs], [], frozenset(), NOW)
    assert [v.outcome for v in result.verdicts] == [Fate.REMOVE, Fate.KEEP]
