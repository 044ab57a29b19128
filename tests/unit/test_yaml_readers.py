"""libyaml and the pure-Python reader compose the same document; whatever libyaml refuses is
read again by the pure-Python reader, so refusals are worded and placed the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.loading import yaml_source
from reconciler.loading.yaml_source import read_yaml

MANIFESTS = sorted((Path(__file__).parents[2] / "manifests").glob("*.yaml"))
TEXTS = [
    'a: "éé"\nb: [1, "ü", c]\n',
    "x: &a [1, 2]\ny: *a\nz: !!str 3\n\"k\u00e9y\": {q: 1}\n",
    "version: 1\nimages:\n  - name: nginx\n    tags: [1.10, on, 010, '12:30']\n",
    "a: |\n  line one\n  line two\nb: >-\n  folded\n  text\n",
]
BROKEN = [
    "a: [1, 2\n",
    "a: b: c\n",
    "a:\n\t- b\n",
    "- 1\n- 2\n",
    "",
    "a: 1\n---\nb: 2\n",
    "a: \x07\n",
    "a: &x [*x]\n",
    "a: " + "[" * 60 + "]" * 60 + "\n",
]


def _python_only(text: str) -> object:
    saved = yaml_source._FastLoader
    yaml_source._FastLoader = None
    try:
        return _outcome(text)
    finally:
        yaml_source._FastLoader = saved


def _outcome(text: str) -> object:
    try:
        document = read_yaml(text, "m.yaml")
    except ManifestError as exc:
        return [(d.line, d.column, d.message) for d in exc.diagnostics]
    return (document.data, dict(document.marks), dict(document.key_marks), dict(document.scalar_texts))


def test_libyaml_is_used_when_installed() -> None:
    assert yaml_source._FastLoader is not None


@pytest.mark.parametrize("text", [p.read_text() for p in MANIFESTS] + TEXTS)
def test_both_readers_give_the_same_document(text: str) -> None:
    assert _outcome(text) == _python_only(text)


@pytest.mark.parametrize("text", BROKEN)
def test_a_refusal_is_the_pure_python_readers(text: str) -> None:
    found = _outcome(text)
    assert isinstance(found, list) and found
    assert found == _python_only(text)
