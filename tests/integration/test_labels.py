"""Label selectors on the sandbox daemon: labels read from the image list decide retention, and
--explain names the label that decided."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

from docker import APIClient

from tests.integration.conftest import CliRun, DockerRun


def _import(docker: DockerRun, directory: Path, ref: str, *labels: str) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = os.urandom(4096)
        info = tarfile.TarInfo("data.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    tarball = directory / f"{abs(hash(ref))}.tar"
    tarball.write_bytes(buffer.getvalue())
    changes = [arg for label in labels for arg in ("--change", f"LABEL {label}")]
    docker("import", *changes, tarball, ref)
    return ref


def test_labels_protect_and_select_images_and_explain_names_them(
    run_cli: CliRun, docker: DockerRun, api: APIClient, namespace: str, tmp_path: Path,
    tmp_manifest: Callable[..., Path],
) -> None:
    keep = _import(docker, tmp_path, f"{namespace}/app:keep", "com.example.keep=true", "ci.job=1")
    scratch = _import(docker, tmp_path, f"{namespace}/app:pr-1", "ci.job=2")
    plain = _import(docker, tmp_path, f"{namespace}/app:plain")
    try:
        path = tmp_manifest(f"""\
            version: 1
            images: []
            retention:
              min_age: 0s
              max_removal_percent: 100
              protect: [{{labels: {{"com.example.keep": "true"}}}}]
              rules:
                - name: ci-scratch
                  select: {{repositories: ["{namespace}/**"], labels: {{ci.job: true}}}}
            """)
        explained = run_cli("plan", path, "--explain", "-o", "json")
        assert explained.code == 0, explained.stderr
        images = {e["tags"][0]: e for e in json.loads(explained.stdout)["images"] if e["tags"] and e["tags"][0].startswith(namespace)}
        assert images[keep]["verdict"] == "keep"
        assert images[keep]["decisions"][0]["pattern"] == "label com.example.keep=true"
        assert images[scratch]["verdict"] == "remove"
        assert images[scratch]["decisions"][0]["pattern"] == "label ci.job"
        assert images[plain]["verdict"] == "keep"
        text = run_cli("plan", path, "--explain").stdout
        assert "matches protect labels" in text and "selected by its label ci.job" in text

        assert run_cli("apply", path).code == 0
        tags = {t for image in api.images() for t in image.get("RepoTags") or ()}
        assert keep in tags and plain in tags and scratch not in tags
    finally:
        for ref in (keep, scratch, plain):
            docker("image", "rm", ref, check=False)
