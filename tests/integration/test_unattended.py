"""Running unattended against the sandbox: the per-daemon lock, run history, metrics, quiet
and colourless output, and JSON from every command."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Engine
from docker import APIClient
from docker_state import image_id
from extra_daemons import ExtraDaemon

from reconciler.state.lock_dir import SYSTEM_LOCK_DIR, unix_socket_path
from reconciler.state.metrics import LAST_SUCCESS, parse_metrics

ImageFactory = Callable[..., str]
CliRun = Callable[..., Any]
WriteManifest = Callable[..., Path]

REPO_ROOT = Path(__file__).resolve().parents[2]
ESCAPE = "\x1b["



@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture(autouse=True)
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lock directory of this test's own, shared by the CLI runs and the holders it starts."""
    path = tmp_path / "locks"
    path.mkdir()
    monkeypatch.setenv("RECONCILE_LOCK_DIR", str(path))
    return path


@pytest.fixture
def web_manifest(namespace: str, image_factory: ImageFactory, tmp_manifest: WriteManifest) -> Path:
    """A manifest that pulls one small image from the sandbox registry."""
    image_factory("web:1.0")
    return tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/web
            tags: ["1.0"]
    """)


class LockHolder:
    """A separate process holding the daemon's lock through the same module apply uses."""

    def __init__(self, state_dir: Path, address: str) -> None:
        script = textwrap.dedent(f"""
            import sys
            from pathlib import Path
            from reconciler.daemon.address import connect
            from reconciler.state.lock import daemon_lock
            from reconciler.state.lock_dir import daemon_identity, lock_directory
            identity = daemon_identity(connect({address!r}))
            with daemon_lock(lock_directory(Path({str(state_dir)!r})), identity):
                print("locked", flush=True)
                sys.stdin.readline()
        """)
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.released_at = 0.0
        self.process = subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline() == "locked\n", "the helper could not take the lock"

    def release(self) -> None:
        self.released_at = time.time()
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write("\n")
            self.process.stdin.flush()
        self.process.wait(10)

    def close(self) -> None:
        self.process.kill()
        self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream:
                stream.close()


@pytest.fixture
def hold_lock(state_dir: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[], LockHolder]]:
    """``hold()`` takes the lock of the sandbox daemon (of the test's ``engine``, when it takes one)."""
    holders: list[LockHolder] = []
    engine: Engine | None = request.getfixturevalue("engine") if "engine" in request.fixturenames else None

    def hold() -> LockHolder:
        holders.append(LockHolder(state_dir, engine.address if engine else os.environ["DOCKER_HOST"]))
        return holders[-1]

    yield hold
    for holder in holders:
        holder.close()


# --- lock -----------------------------------------------------------------------


def test_apply_fails_with_75_while_another_holds_the_lock_and_plan_does_not_wait(
    namespace: str, web_manifest: Path, run_cli: CliRun, state_dir: Path, hold_lock: Callable[[], LockHolder],
    engine: Engine,
) -> None:
    # On Podman the lock is keyed on its libpod store, since its /info ID changes per call.
    api = engine.api
    holder = hold_lock()
    blocked = run_cli("apply", web_manifest, "--state-dir", state_dir)
    assert blocked.code == 75, blocked.stdout + blocked.stderr
    assert f"process {holder.process.pid}, started 20" in blocked.stderr
    assert "--lock-timeout" in blocked.stderr
    assert image_id(api, f"{namespace}/web:1.0") is None  # nothing was done

    planned = run_cli("plan", web_manifest, "--detailed-exitcode")
    assert planned.code == 2, planned.stdout + planned.stderr


@pytest.mark.parametrize("shared", ["RECONCILE_LOCK_DIR", "default"])
def test_one_lock_per_daemon_whatever_the_spelling_of_its_address_or_the_state_dir(
    shared: str, namespace: str, web_manifest: Path, run_cli: CliRun, tmp_path: Path, api: APIClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if shared == "default":
        if not (SYSTEM_LOCK_DIR.is_dir() and os.access(SYSTEM_LOCK_DIR, os.W_OK | os.X_OK)):
            pytest.skip(f"{SYSTEM_LOCK_DIR} is not writable here")
        monkeypatch.delenv("RECONCILE_LOCK_DIR")
    address = os.environ["DOCKER_HOST"]
    socket = unix_socket_path(address)
    assert socket is not None, "the sandbox daemon listens on a unix socket"
    link = tmp_path / "docker.sock"
    link.symlink_to(socket)
    # As root's cron job would: its own state directory, the socket by its real path.
    holder = LockHolder(tmp_path / "root-state", address)
    try:
        # A user's shell: another state directory, the socket through a symlink.
        through_link = run_cli(
            "apply", web_manifest, "-H", f"unix://{link}", "--state-dir", tmp_path / "user-state"
        )
        assert through_link.code == 75, through_link.stdout + through_link.stderr
        assert f"process {holder.process.pid}, started 20" in through_link.stderr
        # Another HOME and state directory, the socket's path spelt through "..".
        roundabout = f"unix://{Path(socket).parent}/../{Path(socket).parent.name}/{Path(socket).name}"
        other_home = run_cli(
            "apply", web_manifest, "-H", roundabout,
            env={"HOME": str(tmp_path / "home"), "RECONCILE_STATE_DIR": str(tmp_path / "home-state")},
        )
        assert other_home.code == 75, other_home.stdout + other_home.stderr
        assert image_id(api, f"{namespace}/web:1.0") is None  # nothing was done
    finally:
        holder.close()
    applied = run_cli("apply", web_manifest, "-H", f"unix://{link}", "--state-dir", tmp_path / "user-state")
    assert applied.code == 0, applied.stdout + applied.stderr


def test_two_daemons_with_one_key_file_have_two_locks(
    namespace: str, web_manifest: Path, run_cli: CliRun, state_dir: Path,
    twin_daemons: tuple[ExtraDaemon, ExtraDaemon],
) -> None:
    first, second = twin_daemons
    # The setup is what cloned machines give: one engine ID, two daemons.
    assert first.info["ID"] == second.info["ID"]
    assert first.info["DockerRootDir"] != second.info["DockerRootDir"]
    holder = LockHolder(state_dir, second.docker_host)
    try:
        applied = run_cli("apply", web_manifest, "-H", first.docker_host, "--state-dir", state_dir)
        assert applied.code == 0, applied.stdout + applied.stderr  # it did not wait for the other daemon's lock
        blocked = run_cli("apply", web_manifest, "-H", second.docker_host, "--state-dir", state_dir)
        assert blocked.code == 75, blocked.stdout + blocked.stderr  # the holder's own daemon still waits
    finally:
        holder.close()
    with closing(APIClient(base_url=first.docker_host)) as on_first, closing(
        APIClient(base_url=second.docker_host)
    ) as on_second:
        assert image_id(on_first, f"{namespace}/web:1.0") is not None
        assert image_id(on_second, f"{namespace}/web:1.0") is None


def test_apply_waits_with_lock_timeout_then_succeeds(
    namespace: str, web_manifest: Path, run_cli: CliRun, state_dir: Path, hold_lock: Callable[[], LockHolder],
    api: APIClient,
) -> None:
    holder = hold_lock()
    releaser = threading.Timer(3, holder.release)
    releaser.start()
    try:
        applied = run_cli("apply", web_manifest, "--state-dir", state_dir, "--lock-timeout", "60", "-o", "json")
    finally:
        releaser.join()
    assert applied.code == 0, applied.stdout + applied.stderr
    assert image_id(api, f"{namespace}/web:1.0") is not None
    # The pull ran only once the holder had let go.
    history = json.loads(run_cli("history", "--state-dir", state_dir, "-o", "json").stdout)
    assert [h["action"] for h in history] == ["pull"]
    assert datetime.fromisoformat(history[0]["time"]).timestamp() >= holder.released_at


def test_a_killed_holder_does_not_block_the_next_apply(
    namespace: str, web_manifest: Path, run_cli: CliRun, state_dir: Path, hold_lock: Callable[[], LockHolder],
    api: APIClient,
) -> None:
    hold_lock().process.kill()
    time.sleep(0.2)
    applied = run_cli("apply", web_manifest, "--state-dir", state_dir)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert image_id(api, f"{namespace}/web:1.0") is not None


def test_two_concurrent_applies_plan_one_after_the_other(
    namespace: str, web_manifest: Path, run_cli: CliRun, state_dir: Path, api: APIClient,
) -> None:
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(
            lambda _: run_cli("apply", web_manifest, "--state-dir", state_dir, "--lock-timeout", "120", "-o", "json"),
            range(2),
        ))
    assert [r.code for r in runs] == [0, 0], [r.stderr for r in runs]
    # The second planned under the lock, after the first had pulled: it had nothing to do.
    assert sorted(len(json.loads(r.stdout)["steps"]) for r in runs) == [0, 1]
    assert image_id(api, f"{namespace}/web:1.0") is not None
    history = json.loads(run_cli("history", "--state-dir", state_dir, "--image", f"{namespace}/web", "-o", "json").stdout)
    assert [(h["action"], h["outcome"]) for h in history] == [("pull", "done")]


# --- history --------------------------------------------------------------------


def test_history_answers_what_removed_my_image_and_why(
    namespace: str, image_factory: ImageFactory, run_cli: CliRun, tmp_manifest: WriteManifest,
    state_dir: Path, api: APIClient,
) -> None:
    tool = image_factory("tool:2.0", keep_local=True, push=False)
    removed_id = image_id(api, tool)
    assert removed_id is not None
    manifest = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/tool
            state: absent
    """)
    applied = run_cli("apply", manifest, "--state-dir", state_dir)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert image_id(api, tool) is None

    def history(*args: str) -> list[dict[str, Any]]:
        found = run_cli("history", "--state-dir", state_dir, "-o", "json", *args)
        assert found.code == 0, found.stderr
        return list(json.loads(found.stdout))

    by_repository = history("--image", f"{namespace}/tool")
    assert len(by_repository) == 1
    record = by_repository[0]
    assert (record["action"], record["ref"], record["outcome"]) == ("remove", tool, "done")
    assert record["image_id"] == removed_id
    assert "declared absent" in record["reason"]
    assert record["manifest"] == str(manifest.resolve())
    assert record["host"] == os.environ["DOCKER_HOST"]
    assert history("--image", tool) == by_repository
    assert history("--image", removed_id.removeprefix("sha256:")[:12]) == by_repository
    assert history("--image", f"{namespace}/tool", "--since", "1h") == by_repository
    assert history("--image", f"{namespace}/tool:other") == []
    assert history("--host", "tcp://127.0.0.1:1") == []

    text = run_cli("history", "--state-dir", state_dir, "--image", f"{namespace}/tool")
    assert text.code == 0
    header, row = text.stdout.splitlines()
    assert header.split()[:3] == ["TIME", "MANIFEST", "ACTION"]
    assert f"remove  {tool}" in row and ESCAPE not in text.stdout

    bad = run_cli("history", "--state-dir", state_dir, "--since", "yesterday")
    assert bad.code == 64 and "is not a duration" in bad.stderr


def test_an_unwritable_history_warns_and_the_apply_succeeds(
    namespace: str, web_manifest: Path, run_cli: CliRun, state_dir: Path, api: APIClient,
) -> None:
    (state_dir / "history.sqlite3").mkdir(parents=True)  # where the database file should be
    applied = run_cli("apply", web_manifest, "--state-dir", state_dir)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert "Warning: The run history could not be written" in applied.stderr
    assert image_id(api, f"{namespace}/web:1.0") is not None


# --- metrics --------------------------------------------------------------------


def test_metrics_file_after_a_success_and_after_a_failure(
    namespace: str, web_manifest: Path, run_cli: CliRun, tmp_manifest: WriteManifest,
    state_dir: Path, tmp_path: Path,
) -> None:
    metrics = tmp_path / "textfile" / "reconcile.prom"
    metrics.parent.mkdir()
    before = time.time()
    applied = run_cli("apply", web_manifest, "--state-dir", state_dir, "--metrics-file", metrics)
    assert applied.code == 0, applied.stdout + applied.stderr
    first = parse_metrics(metrics.read_text())
    assert first[("reconcile_last_run_steps", (("action", "pull"), ("outcome", "done")))] == 1
    assert first[("reconcile_last_run_pulled_bytes", ())] > 0
    assert first[("reconcile_last_run_freed_bytes", ())] == 0
    assert 0 < first[("reconcile_run_duration_seconds", ())] < 300
    assert before <= first[(LAST_SUCCESS, ())] == first[("reconcile_last_run_timestamp_seconds", ())]
    assert "# TYPE reconcile_last_run_steps gauge" in metrics.read_text()

    missing = tmp_manifest(f"""
        version: 1
        images:
          - name: {namespace}/never-pushed
            tags: ["1.0"]
    """, name="missing.yaml")
    failed = run_cli("apply", missing, "--state-dir", state_dir, "--metrics-file", metrics)
    assert failed.code == 3, failed.stdout + failed.stderr
    second = parse_metrics(metrics.read_text())
    assert second[("reconcile_last_run_steps", (("action", "pull"), ("outcome", "failed")))] == 1
    assert second[(LAST_SUCCESS, ())] == first[(LAST_SUCCESS, ())]
    assert second[("reconcile_last_run_timestamp_seconds", ())] > first[("reconcile_last_run_timestamp_seconds", ())]
    assert sorted(p.name for p in metrics.parent.iterdir()) == ["reconcile.prom"]


# --- quiet, colour, JSON --------------------------------------------------------


def test_quiet_prints_only_the_summary(web_manifest: Path, run_cli: CliRun, state_dir: Path) -> None:
    planned = run_cli("plan", web_manifest, "-q")
    assert planned.code == 0, planned.stderr
    assert planned.stdout.splitlines() == [
        "Plan: 1 to pull. To download: 1 image, size known once pulled. To free: nothing."
    ]
    applied = run_cli("apply", web_manifest, "--quiet", "--state-dir", state_dir)
    assert applied.code == 0, applied.stderr
    (summary,) = applied.stdout.splitlines()
    assert re.fullmatch(
        r"Apply complete: 1 done, 0 skipped, 0 failed\. Pulled 1 image \(65\.5 kB\): downloaded [0-9.]+ kB\.", summary
    ), summary
    again = run_cli("apply", web_manifest, "-q", "--state-dir", state_dir)
    assert again.stdout.startswith("No changes.") and len(again.stdout.splitlines()) == 1


def test_piped_output_has_no_escape_codes(
    web_manifest: Path, run_cli: CliRun, state_dir: Path, tmp_manifest: WriteManifest,
) -> None:
    invalid = tmp_manifest("version: 1\nimages:\n  - name: Bad/Name\n", name="invalid.yaml")
    runs = [
        run_cli("plan", web_manifest),
        run_cli("apply", web_manifest, "--state-dir", state_dir),
        run_cli("history", "--state-dir", state_dir),
        run_cli("validate", web_manifest),
        run_cli("validate", invalid),
    ]
    assert [r.code for r in runs] == [0, 0, 0, 0, 65]
    for result in runs:
        assert ESCAPE not in result.stdout + result.stderr


def _run_on_a_terminal(args: list[str], extra_env: dict[str, str]) -> str:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return what it wrote."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")}
    env.update({"TERM": "xterm-256color", "PYTHONPATH": str(REPO_ROOT), **extra_env})
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", *args], stdout=follower, stderr=follower, env=env
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(120)
    finally:
        os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_colour_on_a_terminal_unless_no_color(web_manifest: Path, run_cli: CliRun, state_dir: Path) -> None:
    env = {"REGISTRY": os.environ.get("RECONCILE_SANDBOX_REGISTRY", "")}
    coloured = _run_on_a_terminal(["plan", str(web_manifest)], env)
    assert "pull" in coloured and ESCAPE in coloured
    plain = _run_on_a_terminal(["plan", str(web_manifest)], {**env, "NO_COLOR": "1"})
    assert "pull" in plain and ESCAPE not in plain

    assert run_cli("apply", web_manifest, "--state-dir", state_dir).code == 0
    history = ["history", "--state-dir", str(state_dir)]
    table = _run_on_a_terminal(history, env)
    assert "RESULT" in table and ESCAPE in table  # a rich table, bold headers
    plain_table = _run_on_a_terminal(history, {**env, "NO_COLOR": "1"})
    assert "RESULT" in plain_table and ESCAPE not in plain_table  # not even bold


def test_validate_json(run_cli: CliRun, web_manifest: Path, tmp_manifest: WriteManifest) -> None:
    valid = run_cli("validate", web_manifest, "-o", "json")
    assert valid.code == 0, valid.stderr
    assert json.loads(valid.stdout) == {"valid": True, "file": str(web_manifest), "images": 1}

    invalid = tmp_manifest("""
        version: 1
        images:
          - name: web
            colour: red
          - name: app
            tags: [3]
    """, name="invalid.yaml")
    result = run_cli("validate", invalid, "-o", "json")
    assert result.code == 65
    data = json.loads(result.stdout)
    assert data["valid"] is False and data["file"] == str(invalid)
    assert len(data["diagnostics"]) == 2
    for diagnostic in data["diagnostics"]:
        assert set(diagnostic) == {"file", "line", "column", "path", "message"}
        assert diagnostic["file"] == str(invalid) and diagnostic["line"] >= 3
