"""The per-daemon apply lock: flock on a file in the state directory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.errors import ExitCode, LockHeld
from reconciler.lock import LockHolder, daemon_lock, lock_path, read_holder
from reconciler.state_dir import daemon_key, default_state_dir, ensure_state_dir

ADDRESS = "unix:///run/docker.sock"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def take(state: Path, timeout: float = 0, clock: FakeClock | None = None) -> None:
    """Take and release the lock of ADDRESS; raises LockHeld when another holds it."""
    clock = clock or FakeClock()
    with daemon_lock(state, ADDRESS, timeout, clock=clock, sleep=clock.sleep):
        pass


def test_one_address_one_file_whatever_the_spelling(tmp_path: Path) -> None:
    assert lock_path(tmp_path, "unix:///run//docker.sock/") == lock_path(tmp_path, ADDRESS)
    assert lock_path(tmp_path, "TCP://Host:2375/") == lock_path(tmp_path, "tcp://host:2375")
    assert lock_path(tmp_path, "tcp://host:2375") != lock_path(tmp_path, "tcp://host:2376")
    assert lock_path(tmp_path, ADDRESS).parent == tmp_path
    assert "docker" not in lock_path(tmp_path, ADDRESS).name  # a hash, not the address


def test_daemon_key_normalises_only_spelling() -> None:
    assert daemon_key("unix:///var/run/../run/docker.sock") == "unix:///var/run/docker.sock"
    assert daemon_key("ssh://User@Box") == "ssh://user@box"


def test_holder_is_written_while_held_and_cleared_after(tmp_path: Path) -> None:
    with daemon_lock(tmp_path, ADDRESS) as path:
        holder = read_holder(path)
        assert holder.pid == os.getpid()
        assert holder.started.endswith("+00:00")
        assert holder.command.startswith("reconcile")
    assert read_holder(path) == LockHolder(pid=None, started="", command="")


def test_second_taker_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    clock = FakeClock()
    with daemon_lock(tmp_path, ADDRESS), pytest.raises(LockHeld) as caught:
        take(tmp_path, 0, clock)
    assert caught.value.exit_code is ExitCode.TEMPORARY_FAILURE
    assert f"process {os.getpid()}, started " in str(caught.value)
    assert "--lock-timeout" in str(caught.value)
    assert clock.sleeps == []


def test_waits_up_to_the_timeout_polling(tmp_path: Path) -> None:
    clock = FakeClock()
    with daemon_lock(tmp_path, ADDRESS), pytest.raises(LockHeld, match="did not release it within 1s"):
        take(tmp_path, 1.0, clock)
    assert clock.now == pytest.approx(1.0)
    assert len(clock.sleeps) == 5


def test_other_daemons_do_not_wait(tmp_path: Path) -> None:
    with daemon_lock(tmp_path, ADDRESS), daemon_lock(tmp_path, "tcp://elsewhere:2375"):
        pass


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from reconciler.lock import daemon_lock
        with daemon_lock(Path({str(tmp_path)!r}), {ADDRESS!r}):
            print("locked", flush=True)
            time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "locked\n"
        with pytest.raises(LockHeld, match=f"process {child.pid}"):
            take(tmp_path)
        child.kill()
        child.wait(10)
        # The kernel dropped the dead holder's lock; its stale pid in the file does not matter.
        with daemon_lock(tmp_path, ADDRESS) as path:
            assert read_holder(path).pid == os.getpid()
    finally:
        child.kill()
        child.wait(10)
        if child.stdout:
            child.stdout.close()


def test_state_dir_defaults_and_mode(tmp_path: Path) -> None:
    assert default_state_dir({"XDG_STATE_HOME": "/x/state", "HOME": "/h"}) == Path("/x/state/reconciler")
    assert default_state_dir({"XDG_STATE_HOME": "relative", "HOME": "/h"}) == Path("/h/.local/state/reconciler")
    assert default_state_dir({"HOME": "/h"}) == Path("/h/.local/state/reconciler")
    made = ensure_state_dir(tmp_path / "a" / "state")
    assert made.stat().st_mode & 0o777 == 0o700
