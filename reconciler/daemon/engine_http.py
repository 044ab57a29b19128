"""HTTP/1.1 to one Engine API endpoint with the standard library: a unix socket, or TCP with TLS.

The read path of a plan needs a handful of GETs; docker-py (with requests and urllib3) costs a
third of a second to import, more than the reads themselves. This client keeps one connection
open (one client per thread, as the engine's sessions are), gives every request its own timeout
(each socket read waits at most that long), and raises only :class:`EngineHttpError`: an
:class:`HttpRefused` for an answer with an error status, an :class:`HttpUnreachable` for a
socket that cannot be reached, a read that timed out, or an answer that is not HTTP.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

HOST_HEADER = "localhost"  # what docker-py sends over a unix socket; the daemon ignores it


@dataclass(frozen=True)
class ClientTls:
    """TLS towards a tcp:// daemon, as docker-py's ``TLSConfig`` holds it: ``cert`` is the client's
    (certificate, key) pair or None, ``ca_cert`` the CA file, ``verify`` whether the daemon's
    certificate (and its host name) is checked."""

    cert: tuple[str, str] | None = None
    ca_cert: str | None = None
    verify: bool = False

    def context(self) -> ssl.SSLContext:
        """The ``ssl`` context requests would use for these settings."""
        if self.verify:
            context = ssl.create_default_context(cafile=self.ca_cert)
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert:
            context.load_cert_chain(*self.cert)
        return context


@dataclass(frozen=True)
class Endpoint:
    """Where a daemon listens: a unix socket path, or a TCP host and port (with ``tls``, HTTPS)."""

    socket_path: str = ""
    host: str = ""
    port: int = 0
    tls: ClientTls | None = None


def endpoint_for(address: str, options: Mapping[str, Any]) -> Endpoint | None:
    """Where the standard library's client reaches ``address``: ``unix:///PATH``, or ``tcp://HOST:PORT``
    (``http://``, ``https://``) with the TLS of ``options``; None for ssh:// and every other form,
    which docker-py reaches."""
    if address.startswith("unix:///") and not any(c in address for c in "?#"):
        return Endpoint(socket_path=address.removeprefix("unix://"))
    scheme = address.partition("://")[0].lower()
    if scheme not in ("tcp", "http", "https"):
        return None
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or not port or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    tls = options.get("tls")
    if scheme == "http":
        tls = None
    elif scheme == "https" and not isinstance(tls, ClientTls):
        tls = ClientTls(verify=True)  # as requests: the system's CAs
    return Endpoint(host=parts.hostname, port=port, tls=tls if isinstance(tls, ClientTls) else None)


class EngineHttpError(Exception):
    """A request that got no usable answer, or an error answer."""


class HttpRefused(EngineHttpError):
    """An answer with an error status; ``explanation`` is the daemon's ``message`` (or its text)."""

    def __init__(self, status: int, explanation: str) -> None:
        super().__init__(f"{status}: {explanation}")
        self.status = status
        self.explanation = explanation


class HttpUnreachable(EngineHttpError):
    """No answer: the socket could not be reached or broke, a read timed out, or it was not HTTP.

    ``cause`` is the OS or parser error; ``timed_out`` says a read or connect ran out of time."""

    def __init__(self, detail: str, cause: BaseException | None = None, *, timed_out: bool = False) -> None:
        super().__init__(detail)
        self.cause = cause
        self.timed_out = timed_out


class _NotSent(Exception):
    """The connection was found closed while the request was written: the daemon did not read it."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(HOST_HEADER, timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class EngineHttp:
    """One keep-alive connection to ``endpoint``; not for several threads at once (but :meth:`cut` is)."""

    def __init__(self, endpoint: Endpoint, connect_timeout: float) -> None:
        self._endpoint = endpoint
        self._connect_timeout = connect_timeout
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()  # guards _connection against cut() from another thread

    def get_json(self, path: str, timeout: float, params: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None) -> Any:
        """``GET path``'s answer decoded; HttpUnreachable when the body is not JSON (a proxy's garbage)."""
        body = self.get(path, timeout, params, headers)
        try:
            return json.loads(body)
        except ValueError as exc:
            raise HttpUnreachable(f"the answer to GET {path} is not JSON ({exc})", exc) from None

    def get_json_lines(self, path: str, timeout: float, params: Mapping[str, str] | None = None) -> Iterator[Any]:
        """A streamed answer of one JSON document per line (``/events`` with ``until``), read to its end."""
        body = self.get(path, timeout, params)
        try:
            return iter([json.loads(line) for line in body.splitlines() if line.strip()])
        except ValueError as exc:
            raise HttpUnreachable(f"a line of the answer to GET {path} is not JSON ({exc})", exc) from None

    def get(self, path: str, timeout: float, params: Mapping[str, str] | None = None,
            headers: Mapping[str, str] | None = None) -> bytes:
        """The body of a 2xx answer to ``GET path``; each socket read waits at most ``timeout``.

        A kept-alive connection the daemon closed meanwhile is opened again once: a GET is safe to repeat."""
        return self._request("GET", path, timeout, params, headers)

    def delete_json(self, path: str, timeout: float, params: Mapping[str, str]) -> Any:
        """``DELETE path``'s answer decoded. Sent again on a new connection only when the kept-alive
        one was found closed while the request was written: a delete the daemon may have read is
        not repeated (the reference could point elsewhere by then)."""
        body = self._request("DELETE", path, timeout, params)
        try:
            return json.loads(body) if body.strip() else None
        except ValueError as exc:
            raise HttpUnreachable(f"the answer to DELETE {path} is not JSON ({exc})", exc) from None

    def _request(self, method: str, path: str, timeout: float, params: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None) -> bytes:
        target = quote(path, safe="/:@") + (f"?{urlencode(params)}" if params else "")
        for attempt in (1, 2):
            reused = self._connection is not None
            try:
                status, body = self._exchange(method, target, timeout, dict(headers or {}))
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, _NotSent) as exc:
                self.close()
                if reused and attempt == 1 and (method == "GET" or isinstance(exc, _NotSent)):
                    continue
                cause = exc.cause if isinstance(exc, _NotSent) else exc
                raise HttpUnreachable(f"the connection closed before an answer ({cause or type(cause).__name__})",
                                      cause) from None
            except TimeoutError as exc:
                self.close()
                raise HttpUnreachable(f"no answer within {timeout:g}s (read timed out)", exc, timed_out=True) from None
            except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
                self.close()
                raise HttpUnreachable(_describe(exc), exc) from None
            if status >= 400:
                raise HttpRefused(status, _explanation(body))
            return body
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _exchange(self, method: str, target: str, timeout: float, headers: dict[str, str]) -> tuple[int, bytes]:
        connection = self._open(timeout)
        if connection.sock is None:
            try:
                connection.connect()  # within the connect timeout; the answer gets the call's own
            except TimeoutError:
                self.close()
                raise HttpUnreachable(f"no connection within {connection.timeout:g}s", timed_out=True) from None
        assert connection.sock is not None
        connection.sock.settimeout(timeout)
        try:
            connection.request(method, target, headers=headers)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _NotSent(exc) from exc
        response = connection.getresponse()
        body = response.read()
        if response.will_close:
            self.close()
        return response.status, body

    def _open(self, timeout: float) -> http.client.HTTPConnection:
        with self._lock:
            if self._connection is None:
                endpoint = self._endpoint
                connect_timeout = min(self._connect_timeout, timeout)
                if endpoint.socket_path:
                    self._connection = _UnixConnection(endpoint.socket_path, connect_timeout)
                elif endpoint.tls is not None:
                    self._connection = http.client.HTTPSConnection(
                        endpoint.host, endpoint.port, timeout=connect_timeout, context=endpoint.tls.context()
                    )
                else:
                    self._connection = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=connect_timeout)
            return self._connection

    def cut(self) -> None:
        """End the request under way now, from any thread: a read blocked on the socket returns at once."""
        with self._lock:
            sock = self._connection.sock if self._connection is not None else None
        if isinstance(sock, socket.socket):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _explanation(body: bytes) -> str:
    """The daemon's ``{"message": ...}`` of an error answer, else its text (as docker-py reads it)."""
    text = body.decode("utf-8", "replace")
    with suppress(ValueError, TypeError, AttributeError):
        message = json.loads(text)["message"]
        if isinstance(message, str):
            return message.strip()
    return text.strip()


def _describe(exc: BaseException) -> str:
    """Words for a transport failure, the OS's own when there are some (``[Errno 111] Connection refused``)."""
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text and not text.startswith(name) else text or name
