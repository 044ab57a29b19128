"""Throwaway dockerds beside the sandbox's (``scripts/sandbox extra``), for tests that need two daemons."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from docker import APIClient

SANDBOX_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "sandbox"
# Variables that would send the docker CLI somewhere other than DOCKER_HOST.
_FOREIGN_DOCKER_VARS = ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")


@dataclasses.dataclass(frozen=True)
class ExtraDaemon:
    """An extra dockerd and what its ``GET /info`` said when it had started."""

    name: str
    docker_host: str
    info: Mapping[str, Any]


def sandbox_script(*args: str | os.PathLike[str]) -> str:
    """Run this checkout's ``scripts/sandbox ARGS`` on the running sandbox ($RECONCILE_SANDBOX_DIR); its stdout."""
    result = subprocess.run(
        ["bash", SANDBOX_SCRIPT, *(os.fspath(arg) for arg in args)],
        env={k: v for k, v in os.environ.items() if k not in _FOREIGN_DOCKER_VARS},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"`scripts/sandbox {' '.join(map(str, args))}` failed: {result.stderr}", pytrace=False)
    return result.stdout


def extra_daemon_up(name: str, key_file: Path | None = None) -> ExtraDaemon:
    """Start the extra daemon ``name`` (with ``key_file``'s engine ID when given); stop it with extra_daemon_down."""
    sandbox_script("extra", "up", name, *(("--key-file", key_file) if key_file else ()))
    address = sandbox_script("extra", "env", name).strip().removeprefix("export DOCKER_HOST=")
    client = APIClient(base_url=address, timeout=10)
    try:
        info = client.info()
    finally:
        client.close()
    return ExtraDaemon(name=name, docker_host=address, info=info)


def extra_daemon_down(name: str) -> None:
    """Stop the extra daemon ``name`` and remove everything it had."""
    sandbox_script("extra", "down", name)
