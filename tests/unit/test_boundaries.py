"""The pure core imports no I/O library: planning stays a function of plain data."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PURE_MODULES = [
    "planner", "plan", "manifest", "inventory", "report", "render", "reference", "errors",
    "retention", "retention_plan", "explain", "usage",
    "env_substitution", "schema_messages", "manifest_checks", "retention_loader", "plain_values",
    "globs", "semver",
]
IO_LIBRARIES = {"docker", "yaml", "click", "requests", "subprocess", "socket"}
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


def test_docker_errors_stay_in_the_daemon_modules() -> None:
    users = {p.stem for p in PACKAGE.glob("*.py") if "docker" in imported_roots(p)}
    # puller writes to the daemon; registry_auth turns credential-helper failures into our errors.
    assert users <= {"daemon", "daemon_read", "executor", "puller", "registry_auth", "cli"}
