"""The schema's patterns give editors Docker's reference grammar; `reconcile validate` stays the judge."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from reconciler.errors import ManifestError
from reconciler.loading.loader import load_manifest_text
from reconciler.loading.schema import load_schema

HEX = "a" * 64


def editor_errors(entry: dict[str, Any]) -> list[str]:
    """What an editor using the schema flags in a manifest with this one entry (values as written)."""
    validator = Draft202012Validator(load_schema())
    return [e.message for e in validator.iter_errors({"version": 1, "images": [entry]})]


@pytest.mark.parametrize(
    "name",
    ["nginx", "library/nginx", "localhost:5000/team/app", "registry.example.com/a/b-c__d.e", "[::1]:5000/x",
     "${REGISTRY:-docker.io}/library/nginx", "Registry.Example.com/app"],
)
def test_good_names_pass(name: str) -> None:
    assert editor_errors({"name": name}) == []


@pytest.mark.parametrize("name", ["web:1.1", "nginx:latest", "nginx@sha256:" + HEX, "Team/App", "a//b", "app-", " nginx"])
def test_a_name_with_a_tag_or_outside_the_grammar_is_flagged(name: str) -> None:
    assert len(editor_errors({"name": name})) == 1


def test_tags_aliases_and_digests_have_patterns() -> None:
    assert editor_errors({"name": "a", "tags": ["1.10", "v2_rc-1", "${TAG}"], "aliases": ["b:stable", "c"]}) == []
    assert editor_errors({"name": "a", "digest": "sha256:" + HEX}) == []
    assert len(editor_errors({"name": "a", "tags": ["-x", "a" * 129, "a b"]})) == 3
    assert len(editor_errors({"name": "a", "aliases": ["b:-x"]})) == 1
    assert len(editor_errors({"name": "a", "digest": "sha256:abc"})) == 1


def test_validate_still_words_it_once() -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest_text("version: 1\nimages:\n  - name: web:1.1\n", "images.yaml", environ={})
    assert len(caught.value.diagnostics) == 1
    assert "does not match the pattern" not in str(caught.value)
