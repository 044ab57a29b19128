"""A small HTTP proxy in front of a Docker daemon's unix socket, for tests: unix sockets only.

It listens on a unix socket of its own (``proxy.address`` is ``unix:///tmp/.../docker.sock``,
what ``-H`` takes) and forwards every request to the daemon, streaming the answer back as it
comes (a pull's progress is a chunked stream; each piece is passed on as soon as it is read).
Rules, matched on the method and the path without its query string (``re.fullmatch``), change
that for chosen requests:

- ``Rule("GET", r"/v[\\d.]+/images/json", status=500)`` answers with that status and a
  Docker-style body, ``{"message": "..."}``, without asking the daemon;
- ``Rule("POST", r".*/images/create")`` (no status) hangs: the request is read and never
  answered, until the proxy is closed (or ``max_hang`` seconds pass);
- ``Rule("GET", r"/v[\\d.]+/system/df", rewrite=f)`` asks the daemon, then answers with
  ``f(the JSON document it gave)`` instead (a 2xx answer only; others are passed on as they are).

Every thread is a daemon thread; closing the proxy releases the hung requests, stops the
server and removes its socket and directory.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
import shutil
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
}
_CHUNK = 64 * 1024
_UPSTREAM_TIMEOUT = 120.0  # seconds one read from the daemon may take (a pull's stream can pause)
_NO_BODY = {204, 304}
_OWN_HEADERS = {"server", "date"}  # send_response writes its own


@dataclasses.dataclass(frozen=True)
class Rule:
    """Requests of ``method`` whose path matches ``path``: answered with ``status``, or with the
    daemon's JSON answer passed through ``rewrite``, or hung when both are None."""

    method: str
    path: str
    status: int | None = None
    message: str = "injected by the test proxy"
    rewrite: Callable[[Any], Any] | None = None

    def matches(self, method: str, path: str) -> bool:
        return method.upper() == self.method.upper() and re.fullmatch(self.path, path) is not None


class _UnixConnection(http.client.HTTPConnection):
    """http.client over a unix socket (the daemon's)."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._socket_path)
        self.sock = sock


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    block_on_close = False


class DaemonProxy:
    """``with DaemonProxy(sandbox.docker_host, [Rule("GET", r".*/images/json", 500)]) as proxy: proxy.address``.

    ``seen`` lists ``(method, path)`` of every request, ``answered`` those a status rule
    answered, ``rewritten`` those whose answer a rewrite rule changed, ``hung`` those a hang rule holds.
    """

    def __init__(self, upstream: str, rules: Iterable[Rule] = (), *, max_hang: float = 300.0) -> None:
        self.upstream = upstream.removeprefix("unix://")
        self.rules = tuple(rules)
        self.max_hang = max_hang
        self.seen: list[tuple[str, str]] = []
        self.answered: list[tuple[str, str]] = []
        self.rewritten: list[tuple[str, str]] = []
        self.hung: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._dir = Path(tempfile.mkdtemp(prefix="daemon-proxy-"))  # short: unix socket paths are limited
        self.socket_path = self._dir / "docker.sock"
        self._server = _Server(str(self.socket_path), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, name="daemon-proxy", daemon=True)

    @property
    def address(self) -> str:
        return f"unix://{self.socket_path}"

    def __enter__(self) -> DaemonProxy:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()  # hung requests return, streams stop at their next piece
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        shutil.rmtree(self._dir, ignore_errors=True)

    def _note(self, where: list[tuple[str, str]], request: tuple[str, str]) -> None:
        with self._lock:
            where.append(request)

    def _rule_for(self, method: str, path: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.matches(method, path)), None)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as docker-py expects

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: test output stays readable (and a unix peer has no address to log)."""

            def address_string(self) -> str:
                return "unix"

            def do_GET(self) -> None:
                self._handle()

            def do_HEAD(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def do_PUT(self) -> None:
                self._handle()

            def do_DELETE(self) -> None:
                self._handle()

            def _handle(self) -> None:
                path = self.path.split("?", 1)[0]
                request = (self.command, path)
                proxy._note(proxy.seen, request)
                body = self._read_body()
                rule = proxy._rule_for(self.command, path)
                if rule is None or rule.rewrite is not None:
                    try:
                        if rule is None:
                            self._relay(body)
                        elif self._relay_rewritten(body, rule):
                            proxy._note(proxy.rewritten, request)
                    except OSError:  # the daemon or the client went away: end this connection
                        self.close_connection = True
                elif rule.status is None:
                    proxy._note(proxy.hung, request)
                    proxy._closed.wait(proxy.max_hang)
                    self.close_connection = True  # never answered: the connection just ends
                else:
                    proxy._note(proxy.answered, request)
                    self._answer(rule)

            def _read_body(self) -> bytes | None:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    pieces = []
                    for _ in range(1_000_000):  # bounded: no request body of ours comes near
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            break
                        pieces.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(pieces)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            def _answer(self, rule: Rule) -> None:
                assert rule.status is not None
                payload = json.dumps({"message": rule.message}).encode()
                self.send_response(rule.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _relay_rewritten(self, body: bytes | None, rule: Rule) -> bool:
                """The daemon's whole answer, its JSON passed through the rule; True when rewritten."""
                assert rule.rewrite is not None
                upstream = self._upstream(body)
                try:
                    answer = upstream.getresponse()
                    payload = answer.read()
                    rewritten = 200 <= answer.status < 300 and self.command != "HEAD"
                    if rewritten:
                        payload = json.dumps(rule.rewrite(json.loads(payload))).encode()
                    self.send_response(answer.status, answer.reason)
                    for key, value in answer.getheaders():
                        lowered = key.lower()
                        if lowered not in _HOP_BY_HOP and lowered not in _OWN_HEADERS and lowered != "content-length":
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return rewritten
                finally:
                    upstream.close()

            def _upstream(self, body: bytes | None) -> _UnixConnection:
                """A connection to the daemon that has sent it this request."""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                if body is not None:
                    headers["Content-Length"] = str(len(body))
                upstream = _UnixConnection(proxy.upstream, _UPSTREAM_TIMEOUT)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                except BaseException:
                    upstream.close()
                    raise
                return upstream

            def _relay(self, body: bytes | None) -> None:
                upstream = self._upstream(body)
                try:
                    answer = upstream.getresponse()
                    length = answer.getheader("Content-Length")
                    bodiless = self.command == "HEAD" or answer.status in _NO_BODY or answer.status < 200
                    chunked = not bodiless and length is None
                    self.send_response(answer.status, answer.reason)
                    for key, value in answer.getheaders():
                        if key.lower() not in _HOP_BY_HOP and key.lower() not in _OWN_HEADERS:
                            self.send_header(key, value)
                    if chunked:
                        self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    if bodiless:
                        return
                    # read1: whatever has arrived (one chunk of a stream), not a full buffer's worth.
                    while not proxy._closed.is_set() and (piece := answer.read1(_CHUNK)):
                        if chunked:
                            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                        else:
                            self.wfile.write(piece)
                        self.wfile.flush()
                    if proxy._closed.is_set():
                        self.close_connection = True
                    elif chunked:
                        self.wfile.write(b"0\r\n\r\n")
                finally:
                    upstream.close()

        return Handler
