"""The JSON Schema of images.yaml, as shipped inside the package.

The same file is published at the top of the repository for editors; a test
keeps the two copies identical.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

_PACKAGE = "reconciler"
_RESOURCE = "schemas/manifest.schema.json"


@cache
def schema_text() -> str:
    """The schema file's text, exactly as packaged."""
    return resources.files(_PACKAGE).joinpath(_RESOURCE).read_text(encoding="utf-8")


def load_schema() -> dict[str, Any]:
    """The schema as a new dictionary, free for the caller to keep or change."""
    schema: dict[str, Any] = json.loads(schema_text())
    return schema
