"""The common document is read straight from libyaml's events, and gives what composing gives;
anything unusual (anchors, aliases, tags, duplicate or complex keys, past a bound) is left to
composing, whose refusals and diagnostics stay the only ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.loading import yaml_events, yaml_source
from reconciler.loading.yaml_source import MAX_DEPTH, MAX_NODES, read_yaml

MANIFESTS = sorted((Path(__file__).parents[2] / "manifests").glob("*.yaml"))
COMMON = [
    "version: 1\nimages:\n  - name: nginx\n    tags: [1.10, on, 010, '12:30', ~, true, -3, 1e3]\n",
    "a: {b: [1, [2, {c: d}]], '': x, 'q': \"\\u0024{X}\"}\nb: |\n  text\n",
    "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n",
    "a: [" + ", ".join(["1"] * (MAX_NODES - 3)) + "]\n",
]
UNUSUAL = [
    "x: &a [1, 2]\ny: *a\n",
    "z: !!str 3\n",
    "a: 1\na: 2\n",
    "? [k]\n: v\n",
    "a: 1\n---\nb: 2\n",
    "- 1\n",
    "",
    "a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n",
    "a: [1, 2\n",
]


def _outcome(text: str) -> object:
    try:
        document = read_yaml(text, "m.yaml")
    except ManifestError as exc:
        return [(d.line, d.column, d.path, d.message) for d in exc.diagnostics]
    return (
        document.data,
        dict(document.marks),
        dict(document.key_marks),
        dict(document.scalar_texts),
        document.plain_decimals,
        document.diagnostics,
    )


def _composed(text: str, monkeypatch: pytest.MonkeyPatch) -> object:
    with monkeypatch.context() as patch:
        patch.setattr(yaml_events.EventReader, "read", lambda self, text, parser_class: None)
        return _outcome(text)


@pytest.mark.parametrize("text", [p.read_text() for p in MANIFESTS if "&" not in p.read_text()] + COMMON)
def test_the_common_document_is_read_from_events_as_composing_reads_it(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert yaml_events.EventReader("m.yaml").read(text, yaml_source._FastLoader) is not None
    assert _outcome(text) == _composed(text, monkeypatch)


@pytest.mark.parametrize("text", UNUSUAL)
def test_an_unusual_document_is_left_to_composing(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert yaml_events.EventReader("m.yaml").read(text, yaml_source._FastLoader) is None
    assert _outcome(text) == _composed(text, monkeypatch)


def test_a_document_past_the_node_bound_is_left_to_composing() -> None:
    # Refused there in its words (tests/unit/test_loader.py); one node fewer is read from events.
    text = "a: [" + ", ".join(["1"] * (MAX_NODES - 2)) + "]\n"
    assert yaml_events.EventReader("m.yaml").read(text, yaml_source._FastLoader) is None
