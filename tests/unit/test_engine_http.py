"""The standard library's read path against a unix socket that answers as a daemon (or a broken
proxy) would: error answers and garbage become our errors naming the daemon, a kept-alive
connection the daemon closed is opened again, addresses reach the right endpoint."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from reconciler.daemon.docker_engine import DockerEngine
from reconciler.daemon.engine_http import ClientTls, Endpoint, endpoint_for
from reconciler.daemon.host import DaemonRefused, ImageConflict
from reconciler.errors import DaemonUnavailable, ExitCode

VERSION = {"ApiVersion": "1.41", "Components": [{"Name": "Engine", "Version": "20.10.24"}]}
Answer = Callable[[BaseHTTPRequestHandler, str], None]


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    block_on_close = False


def send(handler: BaseHTTPRequestHandler, status: int, answer: object, *, close: bool = False) -> None:
    body = json.dumps(answer).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    if close:
        handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[[Answer], str]]:
    """Start a unix socket whose every GET and DELETE ``answer`` handles; its address."""
    servers: list[_Server] = []

    def start(answer: Answer) -> str:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def address_string(self) -> str:
                return "unix"

            def do_GET(self) -> None:
                answer(self, self.path.partition("?")[0])

            do_DELETE = do_GET  # the answer tells them apart by handler.command

        path = tmp_path / f"d{len(servers)}.sock"
        server = _Server(str(path), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"unix://{path}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_daemon_refusing_the_version_handshake_is_unavailable_with_its_words(
    daemon: Callable[[Answer], str],
) -> None:
    address = daemon(lambda handler, path: send(handler, 500, {"message": "injected"}))
    with pytest.raises(DaemonUnavailable) as caught:
        DockerEngine.connect(address, {"base_url": address})
    assert caught.value.exit_code is ExitCode.DAEMON_UNAVAILABLE
    assert f"Cannot reach the Docker daemon at {address}" in str(caught.value)
    assert "500 Server Error: injected" in str(caught.value)


def test_a_proxy_answering_garbage_is_unavailable_naming_the_daemon(daemon: Callable[[Answer], str]) -> None:
    def garbage(handler: BaseHTTPRequestHandler, path: str) -> None:
        handler.wfile.write(b"this is not HTTP\r\n\r\n")
        handler.close_connection = True

    address = daemon(garbage)
    with pytest.raises(DaemonUnavailable, match=f"Cannot reach the Docker daemon at {address}"):
        DockerEngine.connect(address, {"base_url": address})


def test_an_answer_that_is_not_json_is_unavailable_not_a_crash(daemon: Callable[[Answer], str]) -> None:
    def answer(handler: BaseHTTPRequestHandler, path: str) -> None:
        if path == "/version":
            send(handler, 200, VERSION)
            return
        handler.send_response(200)
        handler.send_header("Content-Length", "5")
        handler.end_headers()
        handler.wfile.write(b"<html")

    address = daemon(answer)
    engine = DockerEngine.connect(address, {"base_url": address})
    with pytest.raises(DaemonUnavailable, match=r"GET /v1\.41/images/json is not JSON"):
        engine.list_images()


def test_error_answers_are_our_kinds_with_the_daemons_explanation(daemon: Callable[[Answer], str]) -> None:
    def answer(handler: BaseHTTPRequestHandler, path: str) -> None:
        if path == "/version":
            send(handler, 200, VERSION)
        elif path.startswith("/v1.41/images/gone"):
            send(handler, 404, {"message": "No such image: gone"})
        elif path == "/v1.41/containers/json":
            send(handler, 409, {"message": "conflict"})
        else:
            send(handler, 500, {"message": "boom"})

    address = daemon(answer)
    engine = DockerEngine.connect(address, {"base_url": address})
    assert engine.inspect_image("gone") is None
    with pytest.raises(ImageConflict):
        engine.list_containers()
    with pytest.raises(DaemonRefused) as caught:
        engine.list_images()
    assert str(caught.value) == f"The Docker daemon at {address} refused GET /images/json: boom"
    assert caught.value.status == 500 and caught.value.explanation == "boom"


def test_a_connection_the_daemon_closed_is_opened_again_and_calls_are_few(daemon: Callable[[Answer], str]) -> None:
    asked: list[str] = []

    def answer(handler: BaseHTTPRequestHandler, path: str) -> None:
        asked.append(path)
        if path == "/version":
            send(handler, 200, VERSION)
        elif path == "/v1.41/images/json":
            send(handler, 200, [{"Id": "sha256:" + "b" * 64, "RepoTags": ["<none>:<none>"]}], close=True)
        else:
            send(handler, 200, [])

    address = daemon(answer)
    engine = DockerEngine.connect(address, {"base_url": address})
    assert engine.engine().is_podman is False  # from the handshake: no second GET /version
    assert [image.tags for image in engine.list_images()] == [()]
    assert engine.list_containers() == ()
    assert engine.list_images()[0].id == "sha256:" + "b" * 64
    assert asked == ["/version", "/v1.41/images/json", "/v1.41/containers/json", "/v1.41/images/json"]


def test_a_delete_is_unforced_on_the_reads_connection_and_its_answer_is_the_deleted_ids(
    daemon: Callable[[Answer], str],
) -> None:
    asked: list[str] = []

    def answer(handler: BaseHTTPRequestHandler, path: str) -> None:
        asked.append(f"{handler.command} {handler.path}")
        if path == "/version":
            send(handler, 200, VERSION)
        elif path == "/v1.41/images/reg.local:5000/app:busy":
            send(handler, 409, {"message": "conflict: image is being used by running container c1"})
        else:
            send(handler, 200, [{"Untagged": "reg.local:5000/app:1"}, {"Deleted": "sha256:" + "c" * 64}])

    address = daemon(answer)
    engine = DockerEngine.connect(address, {"base_url": address})
    assert engine.delete("reg.local:5000/app:1") == ("sha256:" + "c" * 64,)
    with pytest.raises(ImageConflict, match="being used by running container"):
        engine.delete("reg.local:5000/app:busy")
    assert asked[1] == "DELETE /v1.41/images/reg.local:5000/app:1?force=false&noprune=false"


def test_a_delete_the_daemon_may_have_read_is_not_sent_again(daemon: Callable[[Answer], str]) -> None:
    asked: list[str] = []

    def answer(handler: BaseHTTPRequestHandler, path: str) -> None:
        asked.append(f"{handler.command} {path}")
        if handler.command == "DELETE":
            handler.close_connection = True  # read it, then went away without an answer
        elif path == "/version":
            send(handler, 200, VERSION)
        else:
            send(handler, 200, [])

    address = daemon(answer)
    engine = DockerEngine.connect(address, {"base_url": address})
    assert engine.list_containers() == ()  # the connection is a kept-alive one now
    with pytest.raises(DaemonUnavailable, match="closed before an answer"):
        engine.delete("reg.local/app:1")
    assert asked.count("DELETE /v1.41/images/reg.local/app:1") == 1
    assert engine.list_containers() == ()  # a GET still finds a new connection


def test_addresses_reach_the_endpoint_docker_py_would() -> None:
    tls = ClientTls(ca_cert="/certs/ca.pem", verify=True)
    assert endpoint_for("unix:///run/docker.sock", {}) == Endpoint(socket_path="/run/docker.sock")
    assert endpoint_for("tcp://box:2375", {}) == Endpoint(host="box", port=2375)
    assert endpoint_for("tcp://Box:2376/", {"tls": tls}) == Endpoint(host="box", port=2376, tls=tls)
    assert endpoint_for("tcp://[::1]:2375", {}) == Endpoint(host="::1", port=2375)
    assert endpoint_for("https://box:2376", {}) == Endpoint(host="box", port=2376, tls=ClientTls(verify=True))
    assert endpoint_for("http://box:2375", {"tls": tls}) == Endpoint(host="box", port=2375)
    # docker-py's own forms and ssh:// stay with docker-py.
    for address in ("ssh://me@box", "unix://docker.sock", "tcp://box", "tcp://box:2375/path", "npipe:////./pipe/x"):
        assert endpoint_for(address, {}) is None, address


def test_a_first_answer_slower_than_the_connect_timeout_is_waited_for_up_to_the_calls_timeout(
    daemon: Callable[[Answer], str],
) -> None:
    """Opening the connection is bounded by the connect timeout; the answer by the call's own timeout
    (a new connection once read its answer under the connect timeout, and said the call's)."""
    import time

    from reconciler.daemon.engine_http import EngineHttp

    def slow(handler: BaseHTTPRequestHandler, path: str) -> None:
        time.sleep(0.5)
        send(handler, 200, VERSION)

    address = daemon(slow)
    http = EngineHttp(endpoint_for(address, {}), connect_timeout=0.1)
    assert json.loads(http.get("/version", timeout=30.0)) == VERSION


def test_a_daemon_that_takes_the_connection_and_never_answers_is_called_hung_with_the_calls_timeout(
    daemon: Callable[[Answer], str],
) -> None:
    import time

    address = daemon(lambda handler, path: time.sleep(5))
    with pytest.raises(DaemonUnavailable) as caught:
        DockerEngine.connect(address, {"base_url": address}, timeout=0.5)
    assert caught.value.exit_code is ExitCode.DAEMON_UNAVAILABLE
    assert f"The Docker daemon at {address} took the connection but gave no answer within 0.5s" in str(caught.value)
    assert "it may be hung or overloaded" in str(caught.value)
