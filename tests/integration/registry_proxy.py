"""A small HTTP proxy in front of a registry, for tests and benchmarks: loopback only.

It can answer the first N manifest requests, or all of them, with an error (503, 429,
...) before forwarding (a 429 carries the ``TOOMANYREQUESTS`` code Docker Hub's rate
limit sends), and add a delay to every connection and request to emulate a distant
registry (these kernels have no netem). It can also hold the first N version checks
(``GET /v2/``, dockerd's ping before every pull) for a while and then drop them unanswered:
a registry too slow to answer, which dockerd gives up on after 15 s ("context deadline
exceeded"). dockerd treats 127.0.0.1:PORT registries as insecure, so plain HTTP to the
proxy works.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

_MANIFEST_PATH = re.compile(r"^/v2/.+/manifests/[^/]+$")
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
_CHUNK = 256 * 1024
# The error code a failure's body carries, by HTTP status (distribution's errcode names): dockerd
# reports the code, not the status ("toomanyrequests: ...").
_ERROR_CODES = {429: "TOOMANYREQUESTS"}


class RegistryProxy:
    """``with RegistryProxy("127.0.0.1:5000", fail_manifests=2) as proxy: proxy.address``.

    ``fail_manifests=None`` fails every manifest request (a registry that never recovers).
    """

    def __init__(
        self,
        upstream: str,
        *,
        fail_manifests: int | None = 0,
        fail_status: int = 503,
        retry_after: int | None = None,
        delay: float = 0.0,
        hold_pings: int = 0,
        hold_seconds: float = 0.0,
        port: int = 0,
    ) -> None:
        self.upstream = upstream
        self.holds_left = hold_pings  # the first N GET /v2/ wait hold_seconds (or until closed), then are dropped
        self.hold_seconds = hold_seconds
        self.held = 0
        self._closing = threading.Event()
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.delay = delay  # seconds added to each new connection and to each request
        self.failures_left = fail_manifests  # None: no end
        self.failures_served = 0
        self.requests = 0
        self.peak_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="registry-proxy", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RegistryProxy:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closing.set()  # held pings let go
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _take_failure(self) -> bool:
        with self._lock:
            if self.failures_left is not None:
                if self.failures_left <= 0:
                    return False
                self.failures_left -= 1
            self.failures_served += 1
            return True

    def _take_hold(self) -> bool:
        with self._lock:
            if self.holds_left <= 0:
                return False
            self.holds_left -= 1
            self.held += 1
            return True

    def _enter(self) -> None:
        with self._lock:
            self.requests += 1
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as dockerd expects of a registry

            def setup(self) -> None:
                if proxy.delay:
                    time.sleep(proxy.delay)  # the TCP handshake of a distant registry
                super().setup()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: test output stays readable."""

            def do_GET(self) -> None:
                self._forward()

            def do_HEAD(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def do_PUT(self) -> None:
                self._forward()

            def do_PATCH(self) -> None:
                self._forward()

            def do_DELETE(self) -> None:
                self._forward()

            def _forward(self) -> None:
                proxy._enter()
                try:
                    if proxy.delay:
                        time.sleep(proxy.delay)
                    if self.path.split("?")[0] == "/v2/" and proxy._take_hold():
                        proxy._closing.wait(proxy.hold_seconds)
                        self.close_connection = True  # never answered; the client has long given up
                        return
                    if _MANIFEST_PATH.match(self.path.split("?")[0]) and proxy._take_failure():
                        self._fail()
                    else:
                        self._relay()
                finally:
                    proxy._leave()

            def _fail(self) -> None:
                code = _ERROR_CODES.get(proxy.fail_status, "UNAVAILABLE")
                body = json.dumps({"errors": [{"code": code, "message": "injected by the test proxy"}]}).encode()
                self.send_response(proxy.fail_status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if proxy.retry_after is not None:
                    self.send_header("Retry-After", str(proxy.retry_after))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                # A header the client sent several times (dockerd sends one Accept per media type) goes on
                # as one, its values joined: a dict of the last alone loses the media types the registry needs.
                headers: dict[str, str] = {}
                for key, value in self.headers.items():
                    if key.lower() not in _HOP_BY_HOP:
                        headers[key] = f"{headers[key]}, {value}" if key in headers else value
                upstream = http.client.HTTPConnection(proxy.upstream, timeout=120)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    payload = None if answer.getheader("Content-Length") is not None else answer.read()
                    self.send_response(answer.status, answer.reason)
                    for key, value in answer.getheaders():
                        if key.lower() not in _HOP_BY_HOP and not (payload is not None and key.lower() == "content-length"):
                            self.send_header(key, value)
                    if payload is not None:
                        self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command == "HEAD":
                        return
                    if payload is not None:
                        self.wfile.write(payload)
                        return
                    while chunk := answer.read(_CHUNK):
                        self.wfile.write(chunk)
                finally:
                    upstream.close()

        return Handler


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
