"""Export against the sandbox: the host's images as an images.yaml that plans to no changes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Engine
from docker import APIClient
from docker.errors import ImageNotFound

ImageFactory = Callable[..., str]
DockerRun = Callable[..., "subprocess.CompletedProcess[str]"]
CliRun = Callable[..., Any]


def on_host(api: APIClient, ref: str) -> bool:
    try:
        api.inspect_image(ref)
    except ImageNotFound:
        return False
    return True


def test_export_then_plan_gives_no_changes(
    namespace: str,
    image_factory: ImageFactory,
    run_cli: CliRun,
    tmp_path: Path,
    engine: Engine,
) -> None:
    api, docker = engine.api, engine.docker
    lib = engine.local(image_factory, "lib:1.10")
    for tag in ("on", "010"):
        docker("tag", lib, f"{namespace}/lib:{tag}")
    engine.local(image_factory, "untagged:1")
    docker("image", "rm", f"{namespace}/untagged:1")  # removes it whole: nothing to list
    pin = image_factory("pin:1")
    docker("pull", pin)
    digest_ref = next(d for d in api.inspect_image(pin)["RepoDigests"] if d.startswith(f"{namespace}/pin@"))
    docker("image", "rm", pin)
    docker("pull", digest_ref)  # on the host by digest only, with no tag

    exported = tmp_path / "exported.yaml"
    result = run_cli("export", "--out", exported)
    assert result.code == 0, result.stdout + result.stderr
    text = exported.read_text()
    assert text.startswith("# Images on ")
    assert f'  - name: "{namespace}/lib"\n    tags: ["010", "1.10", "on"]\n' in text
    assert f'  - name: "{namespace}/pin"\n    digest: "{digest_ref.split("@", 1)[1]}"\n' in text
    assert f"{namespace}/untagged" not in text
    as_json = run_cli("export", "-o", "json")
    assert as_json.code == 0, as_json.stderr
    assert json.loads(as_json.stdout)["version"] == 1
    to_stdout = run_cli("export")
    assert to_stdout.code == 0 and to_stdout.stdout.startswith("# Images on ")
    assert f'  - name: "{namespace}/lib"\n    tags: ["010", "1.10", "on"]\n' in to_stdout.stdout
    assert run_cli("validate", exported).code == 0

    planned = run_cli("plan", exported, "-o", "json")
    assert planned.code == 0, planned.stdout + planned.stderr
    steps = json.loads(planned.stdout)["steps"]
    # The sandbox is shared: an image another test removed since the export would be planned
    # as a pull. Anything else (a tag, an untag, a pull of what is on the host) is a real difference.
    unexpected = [s for s in steps if s["action"] != "pull" or on_host(api, s["ref"])]
    assert unexpected == []
    assert not [s for s in steps if s["ref"].startswith(namespace)]
