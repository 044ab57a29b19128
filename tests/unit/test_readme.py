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
    # Paths of built and loaded images in the examples are those of manifests/build-host.yaml.
    manifest = load_manifest_text(text, str(README.parent / "manifests" / "README.md"), environ={})
    assert manifest.images or manifest.prune


@pytest.mark.parametrize("text", INVENTORIES)
def test_readme_inventory_example_fits_the_inventory_schema(text: str) -> None:
    document = read_yaml(text, "README.md")
    assert schema_diagnostics(document, document.data, "inventory") == []
    assert document.data["hosts"]


def _screen(first_line_start: str) -> list[str]:
    """The lines of the README's captured screen that starts with ``first_line_start``."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(first_line_start))
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == "```")
    return [line.strip() for line in lines[start:end]]


def test_readme_explain_screen_has_the_tables_columns_and_the_budget_line() -> None:
    screen = _screen("verdict ")
    assert screen[0].split() == ["verdict", "image", "size", "age", "last", "use", "decided", "by", "freed"]
    evictions = [line.split() for line in screen if line.startswith("evict ")]
    assert len(evictions) >= 2 and evictions[0][-2:] != evictions[-1][-2:]  # a running total
    assert re.fullmatch(
        r"Disk budget: images take [0-9.]+ [kMG]?B; max_total [0-9.]+ [kMG]?B needs [0-9.]+ [kMG]?B freed;"
        r"( the rules' removals free [0-9.]+ [kMG]?B first;)? these \d+ evictions free "
        + re.escape(" ".join(evictions[-1][-2:])) + r"\.",
        screen[-1],
    ), screen[-1]


def test_readme_df_screen_has_the_commands_columns() -> None:
    screen = _screen("Disk use of the images on ")
    header = next(line for line in screen if line.startswith("repository"))
    assert header.split() == ["repository", "images", "tags", "unique", "shared", "age", "in", "use", "unique", "bytes"]
    assert any(line.startswith("Disk budget: max_total") for line in screen)
