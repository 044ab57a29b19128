"""The JSON Schemas of images.yaml and of inventory files, as shipped inside the package.

The same file is published at the top of the repository for editors; a test
keeps the two copies identical.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

_PACKAGE = "reconciler"
_RESOURCE = "schemas/{name}.schema.json"  # manifest (images.yaml) or inventory (--inventory)


@cache
def schema_text(name: str = "manifest") -> str:
    """The schema file's text, exactly as packaged."""
    resource = _RESOURCE.format(name=name)
    # A package installed as files is read where it lies: importlib.resources brings tempfile,
    # shutil and zipfile (several milliseconds of a command's start), only for other installs.
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), resource)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    from importlib import resources

    return resources.files(_PACKAGE).joinpath(resource).read_text(encoding="utf-8")


def load_schema(name: str = "manifest") -> dict[str, Any]:
    """The schema as a new dictionary, free for the caller to keep or change."""
    schema: dict[str, Any] = json.loads(schema_text(name))
    return schema
