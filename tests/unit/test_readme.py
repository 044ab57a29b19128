"""The README's manifest and inventory examples are valid, so they cannot rot."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from reconciler.loading.loader import load_manifest_text
from reconciler.loading.schema_messages import schema_diagnostics
from reconciler.loading.yaml_source import read_yaml

README = Path(__file__).resolve().parents[2] / "README.md"
YAML_BLOCKS = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
BLOCKS = [textwrap.dedent(block) for block in YAML_BLOCKS]
INVENTORIES = [block for block in BLOCKS if "\nhosts:" in block]
MANIFESTS = [block for block in BLOCKS if block.lstrip().startswith("version:") and block not in INVENTORIES]


def test_readme_has_manifest_examples() -> None:
    assert MANIFESTS


@pytest.mark.parametrize("text", MANIFESTS)
def test_readme_manifest_example_loads(text: str) -> None:
    manifest = load_manifest_text(text, "README.md", environ={})
    assert manifest.images or manifest.prune


@pytest.mark.parametrize("text", INVENTORIES)
def test_readme_inventory_example_fits_the_inventory_schema(text: str) -> None:
    document = read_yaml(text, "README.md")
    assert schema_diagnostics(document, document.data, "inventory") == []
    assert document.data["hosts"]
