"""The ``reconcile`` command as installed: a plan's daemon reads begin before the command line is parsed.

The daemon answers ``/images/json`` in its own time (0.4 s on a host of 11,000 images); click
and the command modules take 0.03 s to import before the command could start the reads.
Only for ``plan`` without an option that picks the daemon or its deadline (``-H``, ``-c``,
``-i``, ``--host-timeout``) or asks for help: then the daemon is the environment's, as the
parsed command will find. The guess only saves time; :func:`prefetch.start_prefetch` takes
the early reads only when the parsed command line asks for exactly what they were started for.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

# Long options that pick the daemon, its deadline or the hosts, or ask for help; short ones by letter.
_LONG_OPTIONS = ("--host", "--context", "--inventory", "--limit", "--help")
_SHORT_LETTERS = frozenset("Hcilh")


def reads_early(args: Sequence[str]) -> bool:
    """Whether ``args`` (the command line after the program's name) is a plan of the environment's daemon."""
    if not args or args[0] != "plan":
        return False
    for arg in args[1:]:
        if arg == "--":
            break
        if arg.startswith("--"):
            if arg.startswith(_LONG_OPTIONS):
                return False
        elif arg.startswith("-") and _SHORT_LETTERS.intersection(arg[1:]):
            return False
    return True


def main() -> None:
    from reconciler.cli.collector import tune_collector

    tune_collector()  # before the imports: they make thousands of objects the collector need not walk
    if reads_early(sys.argv[1:]):
        from reconciler.execution.defaults import DEFAULT_HOST_TIMEOUT
        from reconciler.flows.prefetch import start_early

        start_early(DEFAULT_HOST_TIMEOUT)
    from reconciler.cli.commands import main as run

    run()
