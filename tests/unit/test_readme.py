"""The README's manifest examples are valid manifests, so they cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconciler.loading.loader import load_manifest_text

README = Path(__file__).resolve().parents[2] / "README.md"
YAML_BLOCKS = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
MANIFESTS = [block for block in YAML_BLOCKS if block.lstrip().startswith("version:")]


def test_readme_has_manifest_examples() -> None:
    assert MANIFESTS


@pytest.mark.parametrize("text", MANIFESTS)
def test_readme_manifest_example_loads(text: str) -> None:
    manifest = load_manifest_text(text, "README.md", environ={})
    assert manifest.images or manifest.prune
