"""At a terminal: apply asks before it takes anything away, and is cancelled without Ctrl-C."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CliRun, DockerRun, ImageFactory, Sandbox, cli_env
from terminal import run_on_terminal

WriteManifest = Callable[..., Path]
QUESTION = "[y/N] "


@pytest.fixture
def doomed(image_factory: ImageFactory, tmp_manifest: WriteManifest, namespace: str) -> tuple[str, Path]:
    """An image on the host and a manifest that declares its repository absent."""
    ref = image_factory("doomed:1", push=False, keep_local=True)
    return ref, tmp_manifest(f"version: 1\nimages:\n  - name: {namespace}/doomed\n    state: absent\n")


def present(docker: DockerRun, ref: str) -> bool:
    return docker("image", "inspect", ref, check=False).returncode == 0


@pytest.mark.parametrize(("answer", "why"), [(b"n\r", "no"), (b"\r", "the default"), (b"\x04", "end of input")])
def test_apply_asks_on_a_terminal_and_anything_but_yes_changes_nothing(
    answer: bytes, why: str, doomed: tuple[str, Path], sandbox: Sandbox, docker: DockerRun, tmp_path: Path
) -> None:
    ref, manifest = doomed
    run = run_on_terminal(
        ["apply", manifest, "--state-dir", tmp_path], cli_env(sandbox), replies=[(QUESTION, answer)]
    )
    assert run.code == 0, run.screen
    assert "- remove" in run.screen and ref in run.screen  # the plan is shown before the question
    assert f"Apply this plan and remove 1 image on {sandbox.docker_host}? [y/N]" in run.screen
    assert "Apply cancelled: nothing was changed." in run.screen, why
    assert "Applying:" not in run.screen
    assert present(docker, ref)


def test_yes_at_the_question_applies(doomed: tuple[str, Path], sandbox: Sandbox, docker: DockerRun, tmp_path: Path) -> None:
    ref, manifest = doomed
    run = run_on_terminal(["apply", manifest, "--state-dir", tmp_path], cli_env(sandbox), replies=[(QUESTION, b"yes\r")])
    assert run.code == 0, run.screen
    assert run.screen.count("Plan for") == 1  # shown once, before the question
    assert "Apply complete: 1 done" in run.screen
    assert not present(docker, ref)


@pytest.mark.parametrize("flag", ["--yes", "-y", "--auto-approve"])
def test_yes_flags_do_not_ask(
    flag: str, doomed: tuple[str, Path], sandbox: Sandbox, docker: DockerRun, tmp_path: Path
) -> None:
    ref, manifest = doomed
    run = run_on_terminal(["apply", manifest, flag, "--state-dir", tmp_path], cli_env(sandbox))
    assert run.code == 0 and QUESTION not in run.screen, run.screen
    assert not present(docker, ref)


def test_ctrl_c_at_the_question_stops_the_run(
    doomed: tuple[str, Path], sandbox: Sandbox, docker: DockerRun, tmp_path: Path
) -> None:
    ref, manifest = doomed
    run = run_on_terminal(["apply", manifest, "--state-dir", tmp_path], cli_env(sandbox), replies=[(QUESTION, b"\x03")])
    assert run.code == 130, run.screen
    assert "cancelled at the confirmation question; nothing was changed" in run.screen
    assert present(docker, ref)


def test_no_question_without_a_terminal_or_for_pulls_only(
    doomed: tuple[str, Path], run_cli: CliRun, docker: DockerRun, image_factory: ImageFactory,
    tmp_manifest: WriteManifest, namespace: str, sandbox: Sandbox, tmp_path: Path,
) -> None:
    image_factory("wanted:1")
    wanted = tmp_manifest(f"version: 1\nimages:\n  - name: {namespace}/wanted\n    tags: ['1']\n", name="wanted.yaml")
    pulls = run_on_terminal(["apply", wanted, "--state-dir", tmp_path], cli_env(sandbox))
    assert pulls.code == 0 and QUESTION not in pulls.screen, pulls.screen
    ref, manifest = doomed
    piped = run_cli("apply", manifest, input="")  # stdin is a pipe: cron and pipelines are never asked
    assert piped.code == 0, piped.stderr
    assert QUESTION not in piped.stdout + piped.stderr
    assert not present(docker, ref)


def test_a_failed_pull_is_told_once_above_the_bars_and_the_others_finish(
    image_factory: ImageFactory, tmp_manifest: WriteManifest, namespace: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    for name in ("big-a", "big-b"):
        image_factory(f"{name}:1", size_kb=20_000)
    manifest = tmp_manifest(
        "version: 1\nimages:\n"
        f"  - name: {namespace}/never-pushed\n    tags: ['1']\n"
        f"  - name: {namespace}/big-a\n    tags: ['1']\n"
        f"  - name: {namespace}/big-b\n    tags: ['1']\n"
    )
    run = run_on_terminal(["apply", manifest, "--parallelism", "1", "--state-dir", tmp_path], cli_env(sandbox))
    assert run.code == 3, run.screen
    failure = f"pull of {namespace}/never-pushed:1 failed after"
    # Printed once, above the live display; a bar's description is redrawn on every refresh.
    assert run.screen.count(failure) == 1, run.screen
    assert run.screen.count("not found: manifest unknown") == 2, run.screen  # the line above, and the step result
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", run.screen)
    assert f"done    pull   {namespace}/big-a:1" in plain and f"done    pull   {namespace}/big-b:1" in plain
