"""The quick schema check says yes only when jsonschema finds nothing, and says it for valid manifests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from reconciler.loading.schema import load_schema
from reconciler.loading.schema_check import satisfies_schema
from reconciler.loading.yaml_source import read_yaml

MANIFESTS = sorted((Path(__file__).parents[2] / "manifests").glob("*.yaml"))
VALIDATOR = Draft202012Validator(load_schema())
DOCUMENTS = [read_yaml(path.read_text(), path.name).data for path in MANIFESTS]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 10**12), st.sampled_from(
        ["", "1", "latest", "1h", "10GB", "90%", "always", "missing", "never", "linux/amd64", "sha256:" + "a" * 64,
         "nginx", "a b", "x" * 200, "registry.local:5000/app", "@", "keep", "newest", "semver"]
    )
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["name", "tags", "pull", "keep_last", "x", "select", "rules", "disk", "high", "low"]), inner,
    max_size=3), max_leaves=6)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, item in data.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    data = copy.deepcopy(draw(st.sampled_from(DOCUMENTS)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(data)))
        if not path:
            continue
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        how = draw(st.sampled_from(["replace", "delete", "add", "duplicate"]))
        if how == "replace":
            parent[path[-1]] = draw(values)
        elif how == "delete":
            del parent[path[-1]]
        elif how == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "name", "tags", "keep_last", "pull"]))] = draw(values)
        elif how == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
    return data


def test_every_shipped_manifest_passes_the_quick_check() -> None:
    assert DOCUMENTS
    for data in DOCUMENTS:
        assert not list(VALIDATOR.iter_errors(data))
        assert satisfies_schema(data)


@settings(max_examples=400, deadline=None)
@given(mutated())
def test_the_quick_check_agrees_with_jsonschema(data: Any) -> None:
    assert satisfies_schema(data) == (not list(VALIDATOR.iter_errors(data)))
