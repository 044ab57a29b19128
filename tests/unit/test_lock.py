"""The per-daemon apply lock: flock on a file keyed on the daemon's identity, in a directory all users share."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from reconciler.daemon.docker_engine import DockerEngine
from reconciler.errors import ExitCode, LockHeld, StateDirError
from reconciler.state.lock import LockHolder, daemon_lock, lock_path, read_holder
from reconciler.state.lock_dir import daemon_identity, lock_directory, unix_socket_path
from reconciler.state.state_dir import daemon_key, default_state_dir, ensure_state_dir

IDENTITY = "engine ID 63FM:LL6P:4UCV"


class FakeApi:
    """A client whose ``GET /info`` answers ``info``; counts the calls."""

    def __init__(self, info: Any) -> None:
        self._info = info
        self.calls = 0

    def version(self) -> Any:
        return {"Components": [{"Name": "Engine", "Version": "20.10.24"}]}  # Docker's: /info's ID counts

    def info(self) -> Any:
        self.calls += 1
        return self._info


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
    """Take and release the lock of IDENTITY; raises LockHeld when another holds it."""
    clock = clock or FakeClock()
    with daemon_lock(state, IDENTITY, timeout, clock=clock, sleep=clock.sleep):
        pass


def test_the_daemon_id_name_and_data_root_are_the_identity_whatever_the_address() -> None:
    api = FakeApi({"ID": "63FM:LL6P:4UCV", "Name": "box", "DockerRootDir": "/var/lib/docker"})
    spellings = ["unix:///var/run/docker.sock", "unix:///run/docker.sock", "tcp://localhost:2375",
                 "tcp://127.0.0.1:2375", "ssh://me@box"]
    identities = {daemon_identity(DockerEngine(address, api)) for address in spellings}
    assert identities == {"engine ID 63FM:LL6P:4UCV, name box, data root /var/lib/docker"}
    assert api.calls == len(spellings)  # one GET /info each


def test_daemons_sharing_a_key_file_are_told_apart_by_name_or_data_root() -> None:
    # Machines cloned from one image, or dockerds on one machine without key files of their own.
    one = {"ID": "63FM:LL6P:4UCV", "Name": "box", "DockerRootDir": "/var/lib/docker"}
    clones = [one, {**one, "Name": "box-2"}, {**one, "DockerRootDir": "/srv/docker"}]
    identities = [daemon_identity(DockerEngine("unix:///run/docker.sock", FakeApi(info))) for info in clones]
    assert len(set(identities)) == 3
    assert len({lock_path(Path("/run/lock"), identity) for identity in identities}) == 3
    # A daemon that tells only its ID is known by it alone.
    assert daemon_identity(DockerEngine("unix:///d.sock", FakeApi({"ID": "X"}))) == "engine ID X"


def test_without_an_id_a_unix_socket_is_known_by_its_real_path(tmp_path: Path) -> None:
    socket = tmp_path / "run" / "docker.sock"
    socket.parent.mkdir()
    socket.touch()
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "run").symlink_to(tmp_path / "run")  # as /var/run -> /run
    (tmp_path / "link.sock").symlink_to(socket)
    no_id = FakeApi({"ID": ""})
    expected = f"socket {os.path.realpath(socket)}"
    for spelling in (f"unix://{socket}", f"unix://{tmp_path}/var/run/docker.sock", f"unix://{tmp_path}/link.sock",
                     f"unix://{tmp_path}/run//./docker.sock"):
        assert daemon_identity(DockerEngine(spelling, no_id)) == expected
    assert daemon_identity(DockerEngine("TCP://Host:2375/", FakeApi({}))) == "address tcp://host:2375"
    assert daemon_identity(DockerEngine("tcp://host:2375", FakeApi(None))) != daemon_identity(
        DockerEngine("tcp://host:2376", FakeApi(None))
    )


def test_unix_socket_paths_as_docker_py_reads_them() -> None:
    assert unix_socket_path("unix:///run/docker.sock") == "/run/docker.sock"
    assert unix_socket_path("unix://docker.sock") == "docker.sock"
    assert unix_socket_path("tcp://host:2375") is None
    assert unix_socket_path("tcp://[::1") is None


def test_the_lock_file_is_named_from_a_hash_of_the_identity(tmp_path: Path) -> None:
    path = lock_path(tmp_path, IDENTITY)
    assert path.parent == tmp_path
    assert path.name.startswith("reconcile-") and path.name.endswith(".lock")
    assert len(path.name) == len("reconcile-.lock") + 64  # the whole sha256, not the identity
    assert lock_path(tmp_path, "engine ID other") != path


def test_lock_directory_is_the_configured_one_then_run_lock_then_the_state_dir(tmp_path: Path) -> None:
    state, shared, system = tmp_path / "state", tmp_path / "shared", tmp_path / "run-lock"
    shared.mkdir()
    system.mkdir()
    env = {"RECONCILE_LOCK_DIR": str(shared)}
    assert lock_directory(state, env, system) == shared
    assert lock_directory(state, {}, system) == system
    # Root's cron and a user's shell have other state directories, but one lock directory.
    assert lock_directory(tmp_path / "other-state", {}, system) == system
    assert lock_directory(state, {}, tmp_path / "absent") == state
    assert state.is_dir()  # the fallback is created as the state directory is
    with pytest.raises(StateDirError, match=r"\$RECONCILE_LOCK_DIR\) does not exist .* Create it"):
        lock_directory(state, {"RECONCILE_LOCK_DIR": str(tmp_path / "missing")}, system)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_run_lock_is_passed_over(tmp_path: Path) -> None:
    system = tmp_path / "run-lock"
    system.mkdir(mode=0o555)
    assert lock_directory(tmp_path / "state", {}, system) == tmp_path / "state"


def test_the_lock_file_is_open_to_every_user_despite_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        with daemon_lock(tmp_path, IDENTITY) as path:
            assert stat.S_IMODE(path.stat().st_mode) == 0o666
    finally:
        os.umask(old)


def test_a_file_this_user_may_only_read_still_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = lock_path(tmp_path, IDENTITY)
    path.write_text("")
    real_open = os.open

    def no_write(file: Any, flags: int, *args: Any) -> int:
        if Path(file) == path and flags & os.O_RDWR:
            raise PermissionError(13, "Permission denied")
        return real_open(file, flags, *args)

    monkeypatch.setattr(os, "open", no_write)
    with daemon_lock(tmp_path, IDENTITY) as locked:
        assert locked == path
        assert read_holder(path) == LockHolder(pid=None, started="", command="")  # not written, not fatal
        monkeypatch.undo()
        with pytest.raises(LockHeld, match="another process"):
            take(tmp_path)


def test_a_link_in_place_of_the_lock_file_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    lock_path(tmp_path, IDENTITY).symlink_to(victim)
    with pytest.raises(StateDirError, match="Cannot open the lock file"):
        take(tmp_path)
    assert victim.read_text() == "precious"
    lock_path(tmp_path, IDENTITY).unlink()
    os.link(victim, lock_path(tmp_path, IDENTITY))
    with pytest.raises(StateDirError, match="not a plain file of its own"):
        take(tmp_path)
    assert victim.read_text() == "precious"


def test_daemon_key_normalises_only_spelling() -> None:
    assert daemon_key("unix:///var/run/../run/docker.sock") == "unix:///var/run/docker.sock"
    assert daemon_key("ssh://User@Box") == "ssh://user@box"
    assert daemon_key("tcp://[::1") == "tcp://[::1"  # not an address: matched only as spelt


def test_holder_is_written_while_held_and_cleared_after(tmp_path: Path) -> None:
    with daemon_lock(tmp_path, IDENTITY) as path:
        holder = read_holder(path)
        assert holder.pid == os.getpid()
        assert holder.started.endswith("+00:00")
        assert holder.command.startswith("reconcile")
    assert read_holder(path) == LockHolder(pid=None, started="", command="")


def test_second_taker_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    clock = FakeClock()
    with daemon_lock(tmp_path, IDENTITY), pytest.raises(LockHeld) as caught:
        take(tmp_path, 0, clock)
    assert caught.value.exit_code is ExitCode.TEMPORARY_FAILURE
    assert f"Another apply on this Docker daemon ({IDENTITY}) is running" in str(caught.value)
    assert f"process {os.getpid()}, started " in str(caught.value)
    assert "--lock-timeout" in str(caught.value)
    assert clock.sleeps == []


def test_waits_up_to_the_timeout_polling(tmp_path: Path) -> None:
    clock = FakeClock()
    with daemon_lock(tmp_path, IDENTITY), pytest.raises(LockHeld, match="did not release it within 1s"):
        take(tmp_path, 1.0, clock)
    assert clock.now == pytest.approx(1.0)
    assert len(clock.sleeps) == 5


def test_other_daemons_do_not_wait(tmp_path: Path) -> None:
    with daemon_lock(tmp_path, IDENTITY), daemon_lock(tmp_path, "engine ID elsewhere"):
        pass


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from reconciler.state.lock import daemon_lock
        with daemon_lock(Path({str(tmp_path)!r}), {IDENTITY!r}):
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
        with daemon_lock(tmp_path, IDENTITY) as path:
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
