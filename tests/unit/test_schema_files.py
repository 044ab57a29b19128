"""The published schema, the packaged one, and the example manifests agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from reconciler.loading.loader import load_manifest
from reconciler.loading.schema import load_schema, schema_text

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "manifests").glob("*.yaml"))


def test_published_and_packaged_schemas_are_byte_identical() -> None:
    published = (ROOT / "schemas" / "manifest.schema.json").read_bytes()
    packaged = (ROOT / "reconciler" / "schemas" / "manifest.schema.json").read_bytes()
    assert published == packaged


def test_schema_text_is_the_packaged_file() -> None:
    packaged = ROOT / "reconciler" / "schemas" / "manifest.schema.json"
    assert schema_text() == packaged.read_text(encoding="utf-8")


def test_load_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema == json.loads(schema_text())


def test_load_schema_returns_a_fresh_copy() -> None:
    load_schema()["required"].append("changed")
    assert load_schema()["required"] == ["version"]


@pytest.mark.parametrize("path", MANIFESTS, ids=[path.name for path in MANIFESTS])
def test_every_example_manifest_loads(path: Path) -> None:
    manifest = load_manifest(path, {"REGISTRY": "localhost:5000"})
    assert manifest.path == str(path)


def test_the_inventory_schema_is_published_and_packaged_alike_and_valid() -> None:
    published = (ROOT / "schemas" / "inventory.schema.json").read_bytes()
    packaged = (ROOT / "reconciler" / "schemas" / "inventory.schema.json").read_bytes()
    assert published == packaged
    Draft202012Validator.check_schema(load_schema("inventory"))
