"""The reads every plan makes whatever its manifest, started before the manifest is loaded.

The daemon takes its own time to answer ``/images/json`` on a large host; started on its own
connection while this process loads the manifest and imports the planner, that wait overlaps
our own start-up instead of following it. Nothing is decided earlier: the same reads, in the
same order (the ``/version`` handshake, the containers, the images), only sooner.
Each read's answer, or its error, is handed over where the read happens today, so what a user
sees (and in which order) is unchanged; a manifest that is refused leaves them unseen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from reconciler.daemon.address import client_options, resolve_target
from reconciler.daemon.docker_engine import DEFAULT_TIMEOUT, DockerEngine
from reconciler.daemon.engine_http import endpoint_for
from reconciler.daemon.host import DockerHost
from reconciler.model.deadline import Deadline
from reconciler.model.inventory import ContainerRecord, ImageRecord

if TYPE_CHECKING:
    from reconciler.model.fleet import TlsSettings

T = TypeVar("T")


class _Read(Generic[T]):
    """One read's answer or error, given out once: a second ask reads the daemon again."""

    def __init__(self) -> None:
        self.done = False
        self.value: T | None = None
        self.error: BaseException | None = None

    def run(self, read: Callable[[], T]) -> bool:
        """Do ``read`` and keep what it gave; False when it failed (the reads after it are not made)."""
        try:
            self.value = read()
        except Exception as exc:  # kept to be raised where the read happens today
            self.error = exc
        self.done = True
        return self.error is None

    def take(self, read: Callable[[], T]) -> T:
        if not self.done:
            return read()
        self.done = False
        error, value, self.error, self.value = self.error, self.value, None, None
        if error is not None:
            raise error
        assert value is not None
        return value


class Prefetch:
    """Connect to one daemon and read its lists on a thread of its own; see :func:`start_prefetch`."""

    def __init__(self, connect: Callable[[], DockerEngine]) -> None:
        self._connect = connect
        self._host: _Read[DockerEngine] = _Read()
        self._containers: _Read[tuple[ContainerRecord, ...]] = _Read()
        self._images: _Read[tuple[ImageRecord, ...]] = _Read()
        self._connected = threading.Event()  # the connection is made (or failed); the lists may follow
        self._thread = threading.Thread(target=self._read, name="reconcile-prefetch", daemon=True)

    def start(self) -> Prefetch:
        self._thread.start()
        return self

    def _read(self) -> None:
        try:
            connected = self._host.run(self._connect)
        finally:
            self._connected.set()
        if not connected:
            return
        host = self._host.value
        assert host is not None
        if self._containers.run(host.list_containers):
            self._images.run(host.list_images)

    def connected_engine(self) -> DockerEngine | None:
        """The engine as soon as it is connected, while the lists are still read, for a read of its
        own on another session; None when the connection failed (:meth:`host` raises why)."""
        self._connected.wait()
        return self._host.value

    def host(self, connect: Callable[[], DockerEngine]) -> DockerEngine:
        """The connected engine (the thread's reads done), or the connection's error raised here."""
        self._thread.join()
        return self._host.take(connect)

    def list_containers(self, host: DockerHost) -> tuple[ContainerRecord, ...]:
        return self._containers.take(host.list_containers)

    def list_images(self, host: DockerHost) -> tuple[ImageRecord, ...]:
        return self._images.take(host.list_images)


# The reads started as the process started (cli/entry), under what they were started for: the
# address, host timeout, TLS settings and context of a command line without daemon options.
_early: dict[tuple[str | None, float | None, TlsSettings | None, str | None], Prefetch | None] = {}
_early_lock = threading.Lock()


def start_prefetch(
    address: str | None, host_timeout: float | None, tls: TlsSettings | None = None, context: str | None = None
) -> Prefetch | None:
    """The reads of the daemon ``address`` names (as :func:`connect` resolves it), started now,
    or the ones started early for exactly these settings (the command line did not change them).

    None, and today's path, when the address or its TLS settings are refused (that error is then
    raised after the manifest's, as before) or the daemon is reached through docker-py (ssh://).
    """
    with _early_lock:
        key = (address, host_timeout, tls, context)
        if key in _early:
            return _early.pop(key)
        _early.clear()  # started for other settings: left unread, its thread ends with the process
    return _started(address, host_timeout, tls, context)


def start_early(host_timeout: float) -> None:
    """Start the reads a ``plan`` without daemon options will ask for (the environment's daemon),
    before click and the planner are imported: the daemon's wait then begins with the process."""
    prefetch = _started(None, host_timeout)
    with _early_lock:
        _early[(None, host_timeout, None, None)] = prefetch


def _started(
    address: str | None, host_timeout: float | None, tls: TlsSettings | None = None, context: str | None = None
) -> Prefetch | None:
    try:
        target, endpoint = resolve_target(address, context)
        options = client_options(target, tls, endpoint)
    except Exception:  # raised again, in its place, by the connect of today's path
        return None
    if endpoint_for(target, options) is None:
        return None
    deadline = Deadline.after(host_timeout)
    return Prefetch(lambda: DockerEngine.connect(target, options, DEFAULT_TIMEOUT, deadline)).start()
