"""What reconcile made on hosts from local files, kept between runs.

A loaded image cannot carry a label of ours, so ``loads`` records which image each archive
(by its sha256) gave: the plan loads again only when the archive's digest is new or that
image is gone. ``builds`` keeps the parts of each build's inputs by their digest (the label
on the image), so that the next plan can say which file or arg changed. A missing, corrupt
or foreign-version file reads as empty (an archive is then loaded once more; a rebuild says
only "build inputs changed"); each write merges with what another run wrote meanwhile and
replaces the file at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.model.build_inputs import BuildInputs, LocalRecords
from reconciler.state.atomic_file import read_document, write_atomically

RECORD_FILE = "local_images.json"
FORMAT = 1
MAX_ENTRIES = 500  # per kind; the oldest written go first


def records_path(state_dir: Path) -> Path:
    return state_dir / RECORD_FILE


def read_local_records(state_dir: Path) -> LocalRecords:
    document = read_document(records_path(state_dir), FORMAT)
    if document is None:
        return LocalRecords()
    loads = document.get("loads")
    builds = document.get("builds")
    return LocalRecords(
        loaded={str(k): v for k, v in loads.items() if isinstance(v, str)}
        if isinstance(loads, dict)
        else {},
        built={str(k): parts for k, v in builds.items() if (parts := _inputs(v))}
        if isinstance(builds, dict)
        else {},
    )


def _inputs(raw: Any) -> BuildInputs | None:
    if not isinstance(raw, dict):
        return None
    files, args = raw.get("files"), raw.get("args")
    if not isinstance(files, dict) or not isinstance(args, list):
        return None
    try:
        return BuildInputs(
            files={str(k): str(v) for k, v in files.items()},
            dockerfile=str(raw.get("dockerfile") or ""),
            args=tuple((str(k), str(v)) for k, v in args),
            target=raw.get("target") if isinstance(raw.get("target"), str) else None,
            builder=str(raw.get("builder") or "legacy"),
        )
    except (TypeError, ValueError):
        return None


def record_local_images(
    state_dir: Path, loaded: Mapping[str, str] = {}, built: Mapping[str, BuildInputs] = {}
) -> None:
    """Add archive digest -> image id and inputs digest -> parts to the file. Raises OSError."""
    if not loaded and not built:
        return
    known = read_local_records(state_dir)
    loads = {**{k: v for k, v in known.loaded.items() if k not in loaded}, **loaded}
    builds = {**{k: v for k, v in known.built.items() if k not in built}, **built}
    document = {
        "format": FORMAT,
        "loads": dict(list(loads.items())[-MAX_ENTRIES:]),
        "builds": {
            digest: {
                "files": dict(parts.files),
                "dockerfile": parts.dockerfile,
                "args": [list(pair) for pair in parts.args],
                "target": parts.target,
                "builder": parts.builder,
            }
            for digest, parts in list(builds.items())[-MAX_ENTRIES:]
        },
    }
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomically(
        records_path(state_dir), json.dumps(document, separators=(",", ":")), mode=0o600
    )
