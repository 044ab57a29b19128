"""Registry digest lookups over kept connections, against a small registry on loopback; and which
daemons have their ``pull: always`` digests asked of the registry directly."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from reconciler.daemon.docker_engine import DockerEngine
from reconciler.daemon.registry_api import RegistryLookups, on_this_machine

DIGEST = "sha256:" + "d" * 64
OTHER = "sha256:" + "e" * 64


class Registry(ThreadingHTTPServer):
    """A v2 registry's manifest HEAD and token endpoint: ``tags`` maps path:tag to a digest."""

    daemon_threads = True

    def __init__(self, auth: str | None = None, close_after_each: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.auth = auth  # None, "basic" or "bearer"
        self.close_after_each = close_after_each
        self.tags = {"team/app:1": DIGEST, "team/app:2": OTHER}
        self.connections = 0
        self.tokens_given = 0
        self.valid_tokens: set[str] = set()  # bearer tokens the registry takes (emptied: they expired)
        self.requests: list[tuple[str, str, str]] = []  # (method, path, Authorization)
        self.lock = threading.Lock()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: Registry
    TOKEN: ClassVar[str] = "token-for-"

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        registry = self.server
        given = self.headers.get("Authorization", "")
        with registry.lock:
            registry.requests.append(("HEAD", self.path, given))
        path, _, tag = self.path.removeprefix("/v2/").partition("/manifests/")
        if registry.auth == "basic" and given != _basic("user", "secret"):
            return self._answer(401, {"WWW-Authenticate": 'Basic realm="registry"'})
        if registry.auth == "bearer" and given.removeprefix("Bearer ") not in registry.valid_tokens:
            challenge = (
                f'Bearer realm="http://{registry.host}/token",service="registry.test",'
                f'scope="repository:{path}:pull"'
            )
            return self._answer(401, {"WWW-Authenticate": challenge})
        digest = registry.tags.get(f"{path}:{tag}")
        if digest is None:
            return self._answer(404, {})
        self._answer(200, {"Docker-Content-Digest": digest})

    def do_GET(self) -> None:
        registry = self.server
        given = self.headers.get("Authorization", "")
        with registry.lock:
            registry.requests.append(("GET", self.path, given))
        scope = self.path.partition("scope=")[2].replace("%3A", ":").replace("%2F", "/")
        if not self.path.startswith("/token") or given != _basic("user", "secret"):
            return self._answer(401, {}, b"{}")
        with registry.lock:
            registry.tokens_given += 1
            token = f"{self.TOKEN}{scope}-{registry.tokens_given}"
            registry.valid_tokens.add(token)
        self._answer(200, {"Content-Type": "application/json"}, json.dumps({"token": token}).encode())

    def _answer(self, status: int, headers: Mapping[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.server.close_after_each:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _auth_header(user: str, password: str) -> str:
    found = {"username": user, "password": password, "serveraddress": "r"}
    return base64.urlsafe_b64encode(json.dumps(found).encode()).decode()


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[Registry] = []

    def start(**settings: Any) -> Registry:
        registry = Registry(**settings)
        threading.Thread(target=registry.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append(registry)
        return registry

    yield start
    for registry in started:
        registry.shutdown()
        registry.server_close()


def test_lookups_of_one_registry_share_a_kept_connection_and_learn_its_scheme_once(serve: Any) -> None:
    registry = serve()
    lookups = RegistryLookups()
    try:
        found = [lookups.digest(f"{registry.host}/team/app:{tag}", None, 5) for tag in ("1", "2", "1", "3")]
    finally:
        lookups.close()
    assert found == [DIGEST, OTHER, DIGEST, None]  # an unknown tag: the registry cannot say
    # The first lookup tried HTTPS (a loopback registry may speak plain HTTP) and was refused: one
    # connection for that, one kept for all four HEADs.
    assert registry.connections == 2
    assert [method for method, _, _ in registry.requests].count("HEAD") == 4


def test_a_connection_the_registry_closed_is_opened_again(serve: Any) -> None:
    registry = serve(close_after_each=True)
    lookups = RegistryLookups()
    try:
        found = [lookups.digest(f"{registry.host}/team/app:1", None, 5) for _ in range(3)]
    finally:
        lookups.close()
    assert found == [DIGEST] * 3


def test_a_bearer_token_is_asked_once_per_repository_with_the_pulls_credentials(serve: Any) -> None:
    registry = serve(auth="bearer")
    lookups = RegistryLookups()
    header = _auth_header("user", "secret")
    try:
        found = [lookups.digest(f"{registry.host}/team/app:{tag}", header, 5) for tag in ("1", "2")]
        anonymous = RegistryLookups().digest(f"{registry.host}/team/app:1", None, 5)
    finally:
        lookups.close()
    assert found == [DIGEST, OTHER]
    assert anonymous is None  # the token endpoint refuses anonymous asks: the caller asks the daemon
    token_asks = [r for r in registry.requests if r[0] == "GET" and r[2] == _basic("user", "secret")]
    assert len(token_asks) == 1, registry.requests


def test_a_bearer_token_that_expired_is_asked_again(serve: Any) -> None:
    registry = serve(auth="bearer")
    lookups = RegistryLookups()
    header = _auth_header("user", "secret")
    try:
        assert lookups.digest(f"{registry.host}/team/app:1", header, 5) == DIGEST
        registry.valid_tokens.clear()  # tokens last minutes: a long run outlives them
        assert lookups.digest(f"{registry.host}/team/app:2", header, 5) == OTHER
    finally:
        lookups.close()
    assert registry.tokens_given == 2


def test_a_registry_asking_for_basic_credentials_gets_them_from_the_first_ask_on(serve: Any) -> None:
    registry = serve(auth="basic")
    lookups = RegistryLookups()
    header = _auth_header("user", "secret")
    try:
        found = [lookups.digest(f"{registry.host}/team/app:{tag}", header, 5) for tag in ("1", "2")]
    finally:
        lookups.close()
    assert found == [DIGEST, OTHER]
    # The first HEAD met the challenge, the second was answered; the next went with credentials at once.
    assert [auth for _, _, auth in registry.requests] == ["", _basic("user", "secret"), _basic("user", "secret")]


def test_a_registry_that_cannot_be_reached_is_not_tried_again_in_the_run() -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lookups = RegistryLookups()
    assert lookups.digest(f"127.0.0.1:{port}/team/app:1", None, 5) is None
    assert lookups.unreachable(f"127.0.0.1:{port}")
    assert lookups.digest(f"127.0.0.1:{port}/team/app:2", None, 5) is None
    assert not lookups.unreachable("127.0.0.1:1")


# --- which daemons: asked directly, or through /distribution ------------------------------


class _Reads:
    """The engine reads a digest lookup touches: /version, /info and /distribution."""

    timeout = 5.0

    def __init__(self, name: str, distribution: str | None) -> None:
        self.name = name
        self.distribution = distribution
        self.asked: list[str] = []

    def version(self) -> Any:
        return {"ApiVersion": "1.41", "Components": [{"Name": "Engine", "Version": "20.10.24"}]}

    def info(self) -> Any:
        return {"ID": "X", "Name": self.name, "DockerRootDir": "/var/lib/docker"}

    def get_json(self, path: str, headers: Mapping[str, str] | None = None, *, versioned: bool = True) -> Any:
        self.asked.append(path)
        return {"Descriptor": {"digest": self.distribution}}

    def close(self) -> None:
        pass


def _engine(address: str, reads: _Reads) -> DockerEngine:
    return DockerEngine(address, None, reads=reads, api_version="1.41")  # type: ignore[arg-type]


def test_a_daemon_on_this_machine_has_its_digests_asked_of_the_registry(serve: Any) -> None:
    registry = serve()
    reads = _Reads(socket.gethostname(), OTHER)
    engine = _engine("unix:///run/docker.sock", reads)
    try:
        assert engine.registry_digest(f"{registry.host}/team/app:1", None) == DIGEST
        assert reads.asked == []
        # What the registry will not say here (an unknown tag), the daemon is asked.
        assert engine.registry_digest(f"{registry.host}/team/app:9", None) == OTHER
        assert reads.asked == [f"/distribution/{registry.host}/team/app:9/json"]
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("address", "same_name"),
    [("unix:///run/docker.sock", False), ("tcp://10.0.0.5:2376", True), ("ssh://box", True)],
    ids=["socket-of-another-host", "remote-tcp", "ssh"],
)
def test_a_daemon_elsewhere_is_asked_itself(serve: Any, address: str, same_name: bool) -> None:
    registry = serve()
    # A forwarded socket (or this process in a container) names another host: its loopback is not ours.
    reads = _Reads(socket.gethostname() if same_name else "elsewhere", OTHER)
    engine = _engine(address, reads)
    try:
        assert engine.registry_digest(f"{registry.host}/team/app:1", None) == OTHER
    finally:
        engine.close()
    assert registry.requests == []
    assert reads.asked == [f"/distribution/{registry.host}/team/app:1/json"]


@pytest.mark.parametrize(
    ("address", "ours", "expected"),
    [
        ("unix:///var/run/docker.sock", True, True),
        ("tcp://127.0.0.1:2375", True, True),
        ("tcp://localhost:2376", True, True),
        ("tcp://[::1]:2375", True, True),
        ("unix:///var/run/docker.sock", False, False),  # a forwarded socket, or we run in a container
        ("tcp://10.1.2.3:2376", True, False),
        ("tcp://localhost.example.com:2376", True, False),
        ("ssh://root@box", True, False),
    ],
)
def test_which_daemons_run_on_this_machine(address: str, ours: bool, expected: bool) -> None:
    assert on_this_machine(address, socket.gethostname() if ours else "another-host") is expected
