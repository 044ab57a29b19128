"""Loading the retention: section: defaults, every field, and located diagnostics."""

from __future__ import annotations

import textwrap
from dataclasses import replace

import pytest

from reconciler.errors import ManifestError
from reconciler.loading.loader import load_manifest_text
from reconciler.model.inventory import ImageRecord
from reconciler.model.manifest import (
    DiskBudget,
    Manifest,
    Order,
    RetentionSpec,
    Rule,
    Selector,
    TagFilter,
    Unmatched,
)
from reconciler.model.reference import parse_reference
from reconciler.planning.retention import evaluate_retention

DAY = 86_400


def load(text: str) -> Manifest:
    return load_manifest_text(textwrap.dedent(text), "images.yaml", {})


def problems(text: str) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load(text)
    return [str(d) for d in caught.value.diagnostics]


FULL = r"""
version: 1
retention:
  min_age: 2h
  protect: ["localhost:5000/base/*", "**/*:release-*"]
  unmatched: remove
  max_removal_percent: 30
  disk:
    max_total: 20GB
    high: 85%
    low: 80%
  rules:
    - name: ci-builds
      select: {repositories: ["localhost:5000/ci/**"], tags: {include: ".*", exclude: "^release-"}, untagged: false}
      keep_last: 5
      order: semver
      keep_within: 14d
      keep_tags: "^v?[0-9]+\\.[0-9]+\\.[0-9]+$"
      keep_previous: 1
      older_than: 30d
    - name: dangling
      select: {untagged: true}
      older_than: 1d
"""


def test_the_full_section_builds_the_expected_spec() -> None:
    assert load(FULL).retention == RetentionSpec(
        min_age=7200,
        protect=("localhost:5000/base/*", "**/*:release-*"),
        unmatched=Unmatched.REMOVE,
        max_removal_percent=30.0,
        disk=DiskBudget(max_total=20_000_000_000, high=85.0, low=80.0),
        rules=(
            Rule(
                name="ci-builds",
                select=Selector(
                    repositories=("localhost:5000/ci/**",),
                    tags=TagFilter(include=".*", exclude="^release-"),
                ),
                keep_last=5,
                order=Order.SEMVER,
                keep_within=14 * DAY,
                keep_tags=r"^v?[0-9]+\.[0-9]+\.[0-9]+$",
                keep_previous=1,
                older_than=30 * DAY,
            ),
            Rule(name="dangling", select=Selector(untagged=True), older_than=DAY),
        ),
    )


def test_no_section_means_no_retention_and_an_empty_one_the_defaults() -> None:
    assert load("version: 1\n").retention is None
    assert load("version: 1\nretention: {}\n").retention == RetentionSpec()
    assert RetentionSpec().min_age == 3600 and RetentionSpec().max_removal_percent == 50


def test_bad_units_are_reported_with_a_hint_at_their_line() -> None:
    assert problems(
        """\
        version: 1
        retention:
          min_age: 1h30m
          disk: {max_total: 20G}
          rules:
            - name: r
              older_than: 30
        """
    ) == [
        "images.yaml:3:12: retention.min_age: '1h30m' is not a duration; write a whole number"
        " and one unit of s, m, h, d or w, such as 90m, 14d or 2w.",
        "images.yaml:4:21: retention.disk.max_total: '20G' is not a size; write a number and a unit"
        " of B, kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), such as 20GB.",
        "images.yaml:7:19: retention.rules[0].older_than: expected a string, got the number 30;"
        " add a unit, such as 30d.",
    ]


def test_percentages_out_of_range_and_low_above_high() -> None:
    assert problems(
        """\
        version: 1
        retention:
          disk: {high: 101%, low: 80%}
        """
    ) == [
        "images.yaml:3:16: retention.disk.high: '101%' is not a percentage; write a number from 0"
        " to 100 followed by %, such as 85%."
    ]
    assert problems(
        """\
        version: 1
        retention:
          disk:
            high: 80%
            low: 85%
        """
    ) == [
        "images.yaml:5:10: retention.disk.low: low (85%) must not be above high (80%):"
        " eviction runs from high down to low."
    ]


def test_high_needs_low() -> None:
    found = problems("version: 1\nretention:\n  disk: {high: 85%}\n")
    assert len(found) == 1 and "retention.disk" in found[0] and "'low'" in found[0]


def test_invalid_regexes_are_located() -> None:
    found = problems(
        """\
        version: 1
        retention:
          rules:
            - name: r
              select: {tags: {include: "v(", exclude: "ok"}}
              keep_tags: "[a-"
        """
    )
    assert [f.split(": ")[1] for f in found] == [
        "retention.rules[0].select.tags.include",
        "retention.rules[0].keep_tags",
    ]
    assert found[0].startswith("images.yaml:5:")
    assert "'v(' is not a valid regular expression" in found[0]


def test_rule_names_are_unique_and_untagged_takes_no_tags() -> None:
    assert problems(
        """\
        version: 1
        retention:
          rules:
            - name: r
            - name: r
              select: {untagged: true, tags: {include: x}}
        """
    ) == [
        "images.yaml:5:13: retention.rules[1].name: rule name 'r' is already used by"
        " retention.rules[0] (line 4); names must be unique.",
        "images.yaml:6:32: retention.rules[1].select.tags: tags has no meaning with untagged: true,"
        " which selects images without a tag; remove one of them.",
    ]


def test_globs_take_no_digest_and_repository_globs_no_tag() -> None:
    found = problems(
        """\
        version: 1
        retention:
          protect: ["app@sha256:abc", "a//b", "localhost:5000/app:1"]
          rules:
            - name: r
              select: {repositories: ["localhost:5000/app:1", "localhost:5000/ci/**"]}
        """
    )
    assert [f.split(": ", 2)[1:] for f in found] == [
        [
            "retention.protect[0]",
            "'app@sha256:abc' has a digest; patterns match repository names and tags.",
        ],
        ["retention.protect[1]", "'a//b' has an empty or blank path segment; write name/name."],
        [
            "retention.rules[0].select.repositories[0]",
            "'localhost:5000/app:1' has a tag; select tags with tags: {include: ...} instead.",
        ],
    ]


def test_unknown_keys_in_a_rule_suggest_the_right_one() -> None:
    found = problems("version: 1\nretention:\n  rules:\n    - name: r\n      keep_lats: 3\n")
    assert found == [
        "images.yaml:5:7: retention.rules[0].keep_lats: unknown key 'keep_lats'; did you mean"
        " 'keep_last'? Allowed keys: name, select, keep_last, order, keep_within, keep_tags,"
        " keep_previous, older_than."
    ]


def test_problems_elsewhere_do_not_stop_retention_checks() -> None:
    found = problems(
        """\
        version: 1
        images:
          - name: UPPER
        retention:
          min_age: soon
        """
    )
    assert [f.split(": ")[1] for f in found] == ["images[0].name", "retention.min_age"]


def test_zero_durations_are_kept_as_written() -> None:
    spec = load(
        "version: 1\nretention: {min_age: 0s, rules: [{name: r, older_than: 0s}]}\n"
    ).retention
    assert spec is not None
    assert (spec.min_age, spec.rules[0].older_than) == (0, 0)


def test_a_loaded_manifest_drives_the_evaluation_end_to_end() -> None:
    manifest = load(
        """\
        version: 1
        images:
          - name: localhost:5000/ci/app
            tags: ["stable"]
            aliases: ["app:prod"]
          - name: localhost:5000/old
            state: absent
        retention:
          rules:
            - name: ci
              select: {repositories: ["localhost:5000/ci/**"]}
              keep_last: 1
        """
    )
    assert manifest.retention is not None
    now = 10_000_000.0

    def image(number: int, *tags: str) -> ImageRecord:
        refs = tuple(parse_reference(t) for t in tags)
        return ImageRecord(f"sha256:{number:064x}", refs, created=int(now - number * DAY))

    images = (
        image(1, "localhost:5000/ci/app:new"),
        image(2, "localhost:5000/ci/app:stable"),  # declared, so kept whatever its rank
        image(3, "localhost:5000/ci/app:old"),
        image(4, "app:prod", "localhost:5000/ci/app:older"),  # an alias protects the image
    )
    declared = manifest.declared.all
    assert declared == {
        "localhost:5000/ci/app:stable",
        "docker.io/library/app:prod",
    }
    retention = replace(manifest.retention, max_removal_percent=100)
    result = evaluate_retention(retention, images, (), declared, now)
    assert [v.outcome.value for v in result.verdicts] == ["keep", "keep", "remove", "keep"]


@pytest.mark.parametrize(("written", "percent"), [("2.5", 2.5), ("40.0", 40.0), (".5", 0.5), ("1e1", 10.0), ("7", 7.0)])
def test_max_removal_percent_takes_a_decimal_as_yaml_writes_it(written: str, percent: float) -> None:
    manifest = load(f"version: 1\nimages: []\nretention:\n  max_removal_percent: {written}\n  rules: []\n")
    assert manifest.retention is not None and manifest.retention.max_removal_percent == percent


def test_a_quoted_percentage_is_text_and_refused_at_its_line() -> None:
    with pytest.raises(ManifestError) as caught:
        load('version: 1\nimages: []\nretention:\n  max_removal_percent: "40.0"\n  rules: []\n')
    assert "retention.max_removal_percent" in str(caught.value) and ":4:" in str(caught.value)


def test_every_number_field_of_the_schema_is_typed_from_its_decimal() -> None:
    import json
    from importlib.resources import files

    from reconciler.loading.loader import NUMBER_FIELDS

    schema = json.loads(files("reconciler.schemas").joinpath("manifest.schema.json").read_text())

    def numbers(node: object) -> int:
        if isinstance(node, dict):
            return (node.get("type") == "number") + sum(numbers(value) for value in node.values())
        return sum(numbers(value) for value in node) if isinstance(node, list) else 0

    assert numbers(schema) == len(NUMBER_FIELDS)
