"""The distribution is installed under a name of its own: `reconciler` on PyPI is another project."""

from __future__ import annotations

import configparser
from importlib import metadata
from pathlib import Path

from reconciler.daemon.address import DISTRIBUTION

ROOT = Path(__file__).resolve().parents[2]


def test_the_distribution_name_is_the_one_every_install_hint_gives() -> None:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["metadata"]["name"] == DISTRIBUTION == "docker-image-reconciler"
    readme = (ROOT / "README.md").read_text()
    assert f"pipx install {DISTRIBUTION}" in readme and f"pip install '{DISTRIBUTION}[ssh]'" in readme
    assert "pip install 'reconciler" not in readme and "pip install reconciler " not in readme


def test_the_installed_distribution_gives_the_reconcile_command_and_the_reconciler_package() -> None:
    installed = metadata.distribution(DISTRIBUTION)
    scripts = {entry.name: entry.value for entry in installed.entry_points if entry.group == "console_scripts"}
    assert scripts == {"reconcile": "reconciler.cli.entry:main"}
    assert "ssh" in (installed.metadata.get_all("Provides-Extra") or [])
