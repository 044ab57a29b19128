"""Deadlines on a daemon that stops answering, against a unix socket that behaves like a stopped dockerd."""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import docker
import pytest

from reconciler.daemon.docker_engine import DockerEngine
from reconciler.daemon.host import PullStreamFailed
from reconciler.errors import HostTimedOut
from reconciler.model.deadline import Deadline


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    block_on_close = False


class SlowDaemon:
    """``hang``: every request is read and never answered (a daemon under SIGSTOP still accepts
    connections); otherwise a pull's stream sends a progress line every 0.2 s for 15 s, or with
    ``silent`` one line and then nothing (a daemon stopped mid-pull)."""

    def __init__(self, path: Path, hang: bool, silent: bool = False) -> None:
        self.closed = threading.Event()
        closed = self.closed

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def address_string(self) -> str:
                return "unix"

            def do_GET(self) -> None:
                if hang:
                    closed.wait(30)
                    return
                body = b"OK"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                if hang:
                    closed.wait(30)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for _ in range(75):
                    if closed.wait(0.2):
                        return
                    line = b'{"status":"Downloading","id":"abc","progressDetail":{"current":1,"total":9}}\r\n'
                    self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                    self.wfile.flush()
                    if silent:
                        closed.wait(30)
                        return
                self.wfile.write(b"0\r\n\r\n")

        self.server = _Server(str(path), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stopped(tmp_path: Path) -> Iterator[str]:
    daemon = SlowDaemon(tmp_path / "stopped.sock", hang=True)
    yield f"unix://{tmp_path}/stopped.sock"
    daemon.close()


@pytest.fixture
def trickling(tmp_path: Path) -> Iterator[str]:
    daemon = SlowDaemon(tmp_path / "slow.sock", hang=False)
    yield f"unix://{tmp_path}/slow.sock"
    daemon.close()


def test_the_version_handshake_of_a_stopped_daemon_ends_at_the_host_deadline(stopped: str) -> None:
    started = time.monotonic()
    with pytest.raises(HostTimedOut, match=r"--host-timeout 1s"):
        DockerEngine.connect(stopped, {"base_url": stopped}, deadline=Deadline.after(1.0))
    assert time.monotonic() - started < 5  # docker-py's own timeout is 60 s


def test_every_call_after_the_host_deadline_fails_at_once(stopped: str) -> None:
    client = docker.APIClient(base_url=stopped, version="1.41", timeout=60)
    engine = DockerEngine(stopped, client, {"base_url": stopped}, deadline=Deadline.after(0.5))
    started = time.monotonic()
    with pytest.raises(HostTimedOut):
        engine.list_images()
    with pytest.raises(HostTimedOut, match="was not sent"):
        engine.list_containers()
    assert time.monotonic() - started < 4


def test_a_pull_whose_stream_keeps_trickling_still_ends_at_its_deadline(trickling: str) -> None:
    client = docker.APIClient(base_url=trickling, version="1.41", timeout=60)
    engine = DockerEngine(trickling, client, {"base_url": trickling})
    started = time.monotonic()
    with pytest.raises(PullStreamFailed) as failed:
        engine.pull("example/app", "1", None, None, 1.0, lambda chunk: None)
    assert time.monotonic() - started < 4
    assert failed.value.timed_out and not failed.value.lost  # the daemon still answers its ping


def test_a_pull_on_a_stopped_daemon_reads_as_the_daemon_lost(stopped: str) -> None:
    client = docker.APIClient(base_url=stopped, version="1.41", timeout=60)
    engine = DockerEngine(stopped, client, {"base_url": stopped})
    started = time.monotonic()
    with pytest.raises(PullStreamFailed) as failed:
        engine.pull("example/app", "1", None, None, 1.0, lambda chunk: None)
    assert failed.value.lost  # so no further step waits on it
    assert time.monotonic() - started < 10


def test_an_interrupt_cuts_a_pull_whose_daemon_went_silent_at_once(tmp_path: Path) -> None:
    """Closing the response (as the interrupt did) does not wake a read blocked in another thread:
    the pull went on waiting for its whole deadline; shutting the socket down ends it now."""
    daemon = SlowDaemon(tmp_path / "silent.sock", hang=False, silent=True)
    address = f"unix://{tmp_path}/silent.sock"
    try:
        engine = DockerEngine(address, docker.APIClient(base_url=address, version="1.41", timeout=60), {"base_url": address})
        failures: list[PullStreamFailed] = []

        def pull() -> None:
            try:
                engine.pull("example/app", "1", None, None, 20.0, lambda chunk: None)
            except PullStreamFailed as exc:
                failures.append(exc)

        worker = threading.Thread(target=pull, daemon=True)
        worker.start()
        time.sleep(0.5)
        started = time.monotonic()
        engine.interrupt()
        worker.join(10)
        assert time.monotonic() - started < 3
        assert failures and failures[0].broken
    finally:
        daemon.close()
