"""Images built and loaded on the sandbox daemon (``source: build`` on the legacy builder and
on BuildKit through the docker CLI, ``source: load`` of `docker save` archives): apply makes and
tags them, plans again only when their inputs changed and say why, and a failed build tags
nothing while the other entries converge."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CliRun, DockerRun, Engine, ImageFactory, _docker_cli
from docker import APIClient
from docker.errors import NotFound

LABEL = "io.reconciler.build-inputs"
# BuildKit runs through the docker CLI on PATH: Debian's, which speaks to the sandbox's dockerd
# without the buildx plugin (a newer client elsewhere on PATH may want it).
CLI_FIRST = {"PATH": f"{os.path.dirname(_docker_cli())}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture
def made(api: APIClient, request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Ids of the images a test built or loaded (on its ``engine``, when it takes one): a rebuilt tag
    leaves its old image untagged, which the namespace's clean-up cannot find by name; they go at
    teardown, newest first."""
    if "engine" in request.fixturenames:
        api = request.getfixturevalue("engine").api
    ids: list[str] = []
    yield ids
    for image in reversed(ids):
        # One still tagged is the namespace's, which image_factory removes after this.
        with contextlib.suppress(NotFound):
            if not api.inspect_image(image).get("RepoTags"):
                api.remove_image(image)


def _no_leftover_containers(api: APIClient, before: set[str]) -> None:
    """A build, failed or not, leaves no container behind."""
    assert {c["Id"] for c in api.containers(all=True)} - before == set()


def _steps(run_cli: CliRun, command: str, manifest: Path) -> tuple[int, list[dict[str, Any]]]:
    result = run_cli(command, manifest, "-o", "json", env=CLI_FIRST)
    assert result.stdout, result.stderr
    return result.code, json.loads(result.stdout)["steps"]


def _app(root: Path, dockerfile: str = "FROM scratch\nARG VERSION\nCOPY app/ /app/\n") -> Path:
    (root / "ctx" / "app").mkdir(parents=True)
    (root / "ctx" / "Dockerfile").write_text(dockerfile)
    (root / "ctx" / "app" / "main.txt").write_text("one\n")
    (root / "ctx" / ".dockerignore").write_text("*.log\n")
    (root / "ctx" / "debug.log").write_text("not sent\n")
    return root / "ctx"


# Podman's compat POST /build (buildah) takes the legacy builder's request as dockerd does.
@pytest.mark.parametrize(
    ("engine", "builder"), [("docker", "legacy"), ("docker", "buildkit"), ("podman", "legacy")], indirect=["engine"]
)
def test_apply_builds_and_tags_and_builds_again_only_when_a_file_or_an_arg_changed(
    engine: Engine, builder: str, run_cli: CliRun, image_factory: ImageFactory, tmp_path: Path,
    tmp_manifest: Callable[..., Path], made: list[str],
) -> None:
    api = engine.api
    ref = image_factory.qualify("built:1")
    alias = image_factory.qualify("built:latest")
    context = _app(tmp_path)
    entry = f"  - name: {ref.rsplit(':', 1)[0]}\n    tags: ['1']\n    aliases: ['{alias}']\n    source: build\n"
    entry += f"    context: {context.name}\n    builder: {builder}\n"
    manifest = tmp_manifest("version: 1\nimages:\n" + entry + "    args: {VERSION: '1'}\n")

    code, planned = _steps(run_cli, "plan", manifest)
    assert [(s["action"], s["reason"]) for s in planned] == [("build", "not built yet"), ("tag", f"alias of {ref}; not on the host")]
    code, applied = _steps(run_cli, "apply", manifest)
    assert code == 0 and all(s["outcome"] == "done" for s in applied), applied
    first = api.inspect_image(ref)
    made.append(first["Id"])
    assert first["Config"]["Labels"][LABEL] == planned[0]["inputs"]
    assert api.inspect_image(alias)["Id"] == first["Id"]
    assert _steps(run_cli, "plan", manifest)[1] == []

    (context / "debug.log").write_text("ignored, so no rebuild\n")
    assert _steps(run_cli, "plan", manifest)[1] == []
    (context / "app" / "main.txt").write_text("two\n")
    planned = _steps(run_cli, "plan", manifest)[1]
    assert [(s["action"], s["reason"]) for s in planned if s["action"] == "build"] == [
        ("build", "context file app/main.txt changed")
    ]
    text = run_cli("plan", manifest, "--explain", env=CLI_FIRST).stdout
    assert "context file app/main.txt changed" in text
    code, applied = _steps(run_cli, "apply", manifest)
    assert code == 0, applied
    second = api.inspect_image(ref)["Id"]
    made.append(second)
    assert second != first["Id"] and api.inspect_image(alias)["Id"] == second

    manifest.write_text(manifest.read_text().replace("VERSION: '1'", "VERSION: '2'"))
    planned = _steps(run_cli, "plan", manifest)[1]
    assert [s["reason"] for s in planned if s["action"] == "build"] == ["build arg VERSION changed"]
    assert _steps(run_cli, "apply", manifest)[0] == 0
    made.append(api.inspect_image(ref)["Id"])
    assert made[-1] != second
    assert _steps(run_cli, "plan", manifest)[1] == []


@pytest.mark.parametrize("builder", ["legacy", "buildkit"])
def test_a_failing_build_tags_nothing_and_the_other_entries_still_converge(
    builder: str, run_cli: CliRun, api: APIClient, image_factory: ImageFactory, tmp_path: Path,
    tmp_manifest: Callable[..., Path],
) -> None:
    containers = {c["Id"] for c in api.containers(all=True)}
    pulled = image_factory("pulled:1")  # in the registry only
    ref = image_factory.qualify("broken:1")
    _app(tmp_path, "FROM scratch\nRUN false\n")
    manifest = tmp_manifest(
        "version: 1\nimages:\n"
        f"  - name: {ref.rsplit(':', 1)[0]}\n    tags: ['1']\n    aliases: ['{ref}-alias']\n"
        f"    source: build\n    context: ctx\n    builder: {builder}\n"
        f"  - name: {pulled.rsplit(':', 1)[0]}\n    tags: ['1']\n",
    )
    code, applied = _steps(run_cli, "apply", manifest)
    assert code == 3, applied  # some steps failed
    outcomes = {s["ref"]: (s["outcome"], s["detail"]) for s in applied}
    assert outcomes[ref][0] == "failed" and outcomes[ref][1].startswith(f"the build failed, so {ref} was not tagged: ")
    assert outcomes[f"{ref}-alias"] == ("skipped", f"{ref} was not built, so nothing was tagged")
    assert outcomes[pulled][0] == "done"
    assert not [i for i in api.images() if any(t.startswith(ref.rsplit(":", 1)[0] + ":") for t in i.get("RepoTags") or ())]
    again = run_cli("apply", manifest, env=CLI_FIRST)  # as text, as cron would mail it
    assert again.code == 3
    failed = [line for line in again.stdout.splitlines() if line.strip().startswith("failed")]
    assert len(failed) == 1 and "build" in failed[0] and ref in failed[0] and "the build failed" in failed[0], again.stdout
    _no_leftover_containers(api, containers)


def test_source_load_loads_a_docker_save_archive_once_and_again_when_it_changed(
    run_cli: CliRun, docker: DockerRun, api: APIClient, image_factory: ImageFactory, tmp_path: Path,
    tmp_manifest: Callable[..., Path], made: list[str],
) -> None:
    archive = tmp_path / "tool.tar.gz"

    def save(repo_tag: str) -> str:
        source = image_factory(repo_tag, push=False, keep_local=True)
        plain = tmp_path / "saved.tar"
        docker("save", "-o", plain, source)
        archive.write_bytes(gzip.compress(plain.read_bytes()))
        image_id = str(api.inspect_image(source)["Id"])
        made.append(image_id)
        docker("image", "rm", source)  # the load must bring the image back itself
        return image_id

    first = save("source:1")
    ref = image_factory.qualify("tool:2")
    manifest = tmp_manifest(
        f"version: 1\nimages:\n  - name: {ref.rsplit(':', 1)[0]}\n    tags: ['2']\n    source: load\n    archive: tool.tar.gz\n",
    )
    assert [(s["action"], s["reason"]) for s in _steps(run_cli, "plan", manifest)[1]] == [("load", "not loaded yet")]
    code, applied = _steps(run_cli, "apply", manifest)
    assert code == 0, applied
    assert api.inspect_image(ref)["Id"] == first
    assert _steps(run_cli, "plan", manifest)[1] == []

    second = save("source:2")
    planned = _steps(run_cli, "plan", manifest)[1]
    assert [s["action"] for s in planned] == ["load"]
    assert planned[0]["reason"].startswith("the archive is new or changed since it was last loaded")
    assert _steps(run_cli, "apply", manifest)[0] == 0
    assert api.inspect_image(ref)["Id"] == second
    assert _steps(run_cli, "plan", manifest)[1] == []
