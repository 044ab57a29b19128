"""The pure core imports no I/O library: planning stays a function of plain data."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PURE_MODULES = [
    "planning/images", "model/plan", "model/manifest", "model/inventory", "model/report", "cli/render",
    "model/reference", "errors", "planning/retention", "planning/retention_steps", "cli/explain", "model/usage",
    "loading/env_substitution", "loading/schema_messages", "loading/images_section",
    "loading/retention_section", "loading/plain_values", "planning/globs", "planning/semver",
    "planning/host_limit", "model/fleet", "model/deadline",
]
IO_LIBRARIES = {"docker", "yaml", "click", "requests", "subprocess", "socket", "sqlite3", "os"}
PACKAGE = Path(__file__).resolve().parents[2] / "reconciler"


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports_no_io_library(module: str) -> None:
    assert imported_roots(PACKAGE / f"{module}.py") & IO_LIBRARIES == set()


def test_only_the_daemon_package_speaks_to_docker() -> None:
    users = {
        str(p.relative_to(PACKAGE).with_suffix(""))
        for p in PACKAGE.rglob("*.py")
        if imported_roots(p) & {"docker", "requests"}
    }
    assert users and all(user.startswith("daemon/") for user in users), users
