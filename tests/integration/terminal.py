"""The CLI on a real pseudo-terminal (stdin, stdout and stderr, as its controlling terminal),
answering what it asks: what a user at a terminal sees and types."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import sys
import termios
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class TerminalRun:
    code: int
    screen: str  # everything written to the terminal, escape codes included


def _take_terminal() -> None:
    """In the child, after setsid: make the pty its controlling terminal, so ^C sends SIGINT."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_on_terminal(
    args: Sequence[str | os.PathLike[str]],
    env: Mapping[str, str],
    replies: Sequence[tuple[str, bytes]] = (),
    timeout: float = 180,
    columns: int = 100,
) -> TerminalRun:
    """Run ``reconcile ARGS`` on a pty; for each (text, keys) in ``replies``, type ``keys`` once
    ``text`` has appeared on the screen (after the previous reply's text)."""
    child_env = {k: v for k, v in env.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")}
    child_env.update({"TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": "40"})
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, bytes([40, 0, columns, 0, 0, 0, 0, 0]))
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *(os.fspath(a) for a in args)],
        stdin=follower, stdout=follower, stderr=follower, env=child_env,
        start_new_session=True, preexec_fn=_take_terminal,
    )
    os.close(follower)
    chunks: list[bytes] = []
    pending = list(replies)
    searched_from = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            screen = b"".join(chunks).decode("utf-8", "replace")
            if pending and pending[0][0] in screen[searched_from:]:
                searched_from = screen.index(pending[0][0], searched_from) + len(pending[0][0])
                os.write(leader, pending.pop(0)[1])
            if process.poll() is not None and not ready:
                break
        else:
            process.kill()
            raise AssertionError(f"the CLI did not finish in {timeout}s on the terminal:\n" + b"".join(chunks).decode())
        code = process.wait(30)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
    return TerminalRun(code, b"".join(chunks).decode("utf-8", "replace"))
