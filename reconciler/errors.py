"""The one error hierarchy of reconciler, and the exit codes it maps to.

Every message is a whole sentence a user can act on. The CLI catches these
once and turns them into an exit code; nothing else prints them.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, in the spirit of Terraform and sysexits.h."""

    OK = 0
    UNEXPECTED = 1
    CHANGES_PENDING = 2  # only for `plan --detailed-exitcode`
    INCOMPLETE = 3  # apply finished, but some steps failed or were skipped for safety
    STALE_PLAN = 4  # a saved plan no longer matches the host
    USAGE = 64  # EX_USAGE
    INVALID_MANIFEST = 65  # EX_DATAERR
    DAEMON_UNAVAILABLE = 69  # EX_UNAVAILABLE
    TEMPORARY_FAILURE = 75  # EX_TEMPFAIL: lock held, registry rate limit
    INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
    TERMINATED = 143  # 128 + SIGTERM


class ReconcilerError(Exception):
    """Base of every error reconciler reports to a user."""

    exit_code: ExitCode = ExitCode.UNEXPECTED


class UsageError(ReconcilerError):
    exit_code = ExitCode.USAGE


class PlanFileError(ReconcilerError):
    """A saved plan file cannot be read: corrupt, edited, or of an unknown format version."""

    exit_code = ExitCode.INVALID_MANIFEST  # EX_DATAERR, as for a manifest that cannot be used


class StalePlanError(ReconcilerError):
    """A saved plan as a whole no longer fits: another daemon, or its manifest changed."""

    exit_code = ExitCode.STALE_PLAN


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a manifest, located as precisely as the YAML allows."""

    file: str
    path: str  # YAML path such as ``images[2].tags[0]``; empty for the document
    line: int  # 1-based; 0 when unknown
    column: int  # 1-based; 0 when unknown
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ManifestError(ReconcilerError):
    """The manifest cannot be used; carries every problem found, not just the first."""

    exit_code = ExitCode.INVALID_MANIFEST

    def __init__(self, diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]) -> None:
        self.diagnostics = tuple(diagnostics)
        count = len(self.diagnostics)
        noun = "problem" if count == 1 else "problems"
        lines = [str(d) for d in self.diagnostics]
        super().__init__("\n".join([*lines, f"{count} {noun} found; nothing was changed."]))


class DaemonUnavailable(ReconcilerError):
    """The Docker daemon could not be reached or stopped answering."""

    exit_code = ExitCode.DAEMON_UNAVAILABLE


class HostTimedOut(DaemonUnavailable):
    """A host's turn ran out of its deadline (``--host-timeout``): what was not done by then is not done."""


class DaemonError(ReconcilerError):
    """The daemon answered with an error we cannot attribute to a single step."""

    exit_code = ExitCode.UNEXPECTED


class StateDirError(ReconcilerError):
    """The state directory (locks, run history) cannot be created or used: the user picks another."""

    exit_code = ExitCode.USAGE


class LockHeld(ReconcilerError):
    """Another apply holds the lock of this daemon; trying again later may succeed."""

    exit_code = ExitCode.TEMPORARY_FAILURE


class HistoryError(ReconcilerError):
    """The run history cannot be read or written."""

    exit_code = ExitCode.UNEXPECTED


class UsageStateError(ReconcilerError):
    """The usage state (last use of each image, where tags pointed) cannot be read or written."""

    exit_code = ExitCode.UNEXPECTED


class DiskUsageError(ReconcilerError):
    """The disk usage a ``retention.disk`` budget needs cannot be read."""

    exit_code = ExitCode.USAGE


class Interrupted(ReconcilerError):
    """The run was stopped by SIGINT or SIGTERM before this daemon's turn."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.exit_code = ExitCode.TERMINATED if signal_number == signal.SIGTERM else ExitCode.INTERRUPTED


class LargeRemovalRefused(ReconcilerError):
    """A plan would remove more images than the guards allow; nothing was done."""

    exit_code = ExitCode.INCOMPLETE
