"""Keep-alive HTTP(S) connections to registries, one per thread and host, over the standard library.

A digest lookup is one small request; over a fresh connection it costs a TCP (and TLS)
handshake more than the request itself, so each thread keeps its connection to a host open
for its next lookup there. Certificates are checked against the system's store (where the
Docker daemon looks too); ``https_proxy`` and ``no_proxy`` are honoured as curl honours them.
Plain HTTP is spoken only to loopback registries, never through a proxy.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
import urllib.parse
import urllib.request
from collections.abc import Mapping

CONNECT_TIMEOUT = 5.0  # seconds to reach a registry: past it, the caller asks the daemon instead
# A kept connection the registry closed while idle fails on its next request: it is opened again, once.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class Answer:
    """A response read whole: status, headers and body."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class RegistryConnections:
    """Connections by (scheme, host) for each thread; :meth:`close` ends all of them."""

    def __init__(self, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self._connect_timeout = connect_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[http.client.HTTPConnection] = []
        self._context: ssl.SSLContext | None = None

    def request(self, method: str, url: str, headers: Mapping[str, str], timeout: float) -> Answer:
        """``method url`` on this thread's connection to its host, read whole. Raises OSError
        (ssl errors and timeouts among them) or http.client.HTTPException when the host
        cannot be spoken to."""
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        key = (parts.scheme, parts.netloc)
        for attempt in (1, 2):
            connection, kept = self._connection(key)
            try:
                if connection.sock is None:  # reaching the host (and its TLS) under the shorter bound
                    connection.timeout = min(self._connect_timeout, timeout)
                    connection.connect()
                assert connection.sock is not None
                connection.sock.settimeout(timeout)
                connection.request(method, target, headers=dict(headers))
                response = connection.getresponse()
                return Answer(response.status, response.headers, response.read())
            except _STALE:
                self._drop(key)
                if not kept or attempt == 2:
                    raise
            except BaseException:
                self._drop(key)
                raise
        raise AssertionError("not reached")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for connection in connections:
            connection.close()

    def _mine(self) -> dict[tuple[str, str], http.client.HTTPConnection]:
        mine: dict[tuple[str, str], http.client.HTTPConnection] = self._local.__dict__.setdefault("by_host", {})
        return mine

    def _connection(self, key: tuple[str, str]) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection for ``key``, and whether it served a request before."""
        found = self._mine().get(key)
        if found is not None:
            return found, True
        connection = self._open(*key)
        self._mine()[key] = connection
        with self._lock:
            self._all.append(connection)
        return connection, False

    def _drop(self, key: tuple[str, str]) -> None:
        connection = self._mine().pop(key, None)
        if connection is not None:
            connection.close()

    def _open(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        if scheme != "https":
            return http.client.HTTPConnection(netloc)
        proxy = _proxy_for(netloc)
        if proxy is None:
            return http.client.HTTPSConnection(netloc, context=self._ssl_context())
        address, headers = proxy
        connection = http.client.HTTPSConnection(address, context=self._ssl_context())
        connection.set_tunnel(netloc, headers=headers)
        return connection

    def _ssl_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._context is None:
                self._context = ssl.create_default_context()
            return self._context


def _proxy_for(netloc: str) -> tuple[str, dict[str, str]] | None:
    """The proxy (address, headers) the environment names for HTTPS to ``netloc``; None when
    there is none or ``no_proxy`` exempts the host."""
    url = urllib.request.getproxies().get("https")
    hostname = urllib.parse.urlsplit(f"//{netloc}").hostname or netloc
    if not url or urllib.request.proxy_bypass(hostname):
        return None
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.hostname is None:
        return None
    address = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    headers = {}
    if parts.username:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers["Proxy-Authorization"] = f"Basic {token}"
    return address, headers
