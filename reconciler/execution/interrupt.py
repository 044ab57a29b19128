"""Stopping an apply on SIGINT or SIGTERM: running pulls are cancelled, no further step starts.

The CLI's signal handler calls :meth:`Interrupt.fire`; the executor asks :attr:`Interrupt.fired`
before each step and hands the daemon sessions it pulls on to :meth:`watch`, so that firing
closes their streams at once instead of waiting for the pulls to end.
"""

from __future__ import annotations

import threading

from reconciler.daemon.host import DockerHost


class Interrupt:
    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._hosts: list[DockerHost] = []
        self.signal: int | None = None  # the signal that fired it

    @property
    def fired(self) -> bool:
        return self._event.is_set()

    def fire(self, signal: int) -> None:
        """Stop: no new step, and every watched session's running requests are cut."""
        if self.signal is None:
            self.signal = signal
        self._event.set()
        with self._lock:
            hosts = list(self._hosts)
        for host in hosts:
            host.interrupt()

    def watch(self, host: DockerHost) -> None:
        with self._lock:
            self._hosts.append(host)
        if self.fired:
            host.interrupt()

    def forget(self, host: DockerHost) -> None:
        with self._lock:
            if host in self._hosts:
                self._hosts.remove(host)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less when it fires meanwhile (retry back-off)."""
        self._event.wait(seconds)
