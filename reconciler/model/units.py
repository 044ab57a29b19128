"""Durations, sizes and percentages as images.yaml writes them.

- Duration: a whole number and one unit, ``s m h d w`` (``90m``, ``14d``, ``2w``).
  Combined forms such as ``1h30m`` are refused: write ``90m``.
- Size: a number (decimals allowed) and a unit. ``B``, ``kB``, ``MB``, ``GB``, ``TB``
  are powers of 1000, as ``docker image ls`` prints sizes; ``KiB``, ``MiB``,
  ``GiB``, ``TiB`` are powers of 1024. Unit letters are read case-insensitively.
- Percentage: a number from 0 to 100 followed by ``%`` (``85%``, ``62.5%``).

Each parser returns plain numbers and raises :class:`UnitError` with a sentence.
"""

from __future__ import annotations

import re

_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_SIZE_BYTES = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
# re.ASCII: Python's \d accepts non-ASCII digits otherwise.
_DURATION = re.compile(r"([0-9]{1,9})([smhdw])", re.ASCII)
_SIZE = re.compile(r"([0-9]{1,15}(?:\.[0-9]{1,9})?) ?([A-Za-z]{1,3})", re.ASCII)
_PERCENT = re.compile(r"([0-9]{1,3}(?:\.[0-9]{1,6})?)%", re.ASCII)


class UnitError(ValueError):
    """Text that is not a duration, size or percentage; the message says how to write one."""


def parse_duration(text: str) -> int:
    """``14d`` -> seconds."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise UnitError(
            f"{text!r} is not a duration; write a whole number and one unit of s, m, h, d or w,"
            " such as 90m, 14d or 2w."
        )
    return int(match[1]) * _DURATION_SECONDS[match[2]]


def format_duration(seconds: float) -> str:
    """Seconds in the largest unit that keeps a whole number, for messages: ``3d``, ``90m``."""
    whole = int(seconds)
    if whole != seconds or whole <= 0:
        return f"{seconds:g}s"
    for unit in ("w", "d", "h", "m"):
        if whole % _DURATION_SECONDS[unit] == 0:
            return f"{whole // _DURATION_SECONDS[unit]}{unit}"
    return f"{whole}s"


def format_age(seconds: float) -> str:
    """An elapsed time, rounded down to its largest whole unit, for messages: ``41d``, ``5h``, ``0s``."""
    whole = max(int(seconds), 0)
    for unit in ("d", "h", "m"):
        if whole >= _DURATION_SECONDS[unit]:
            return f"{whole // _DURATION_SECONDS[unit]}{unit}"
    return f"{whole}s"


def parse_size(text: str) -> int:
    """``20GB`` -> bytes (rounded down to a whole byte)."""
    match = _SIZE.fullmatch(text)
    factor: int | None = _SIZE_BYTES.get(match[2].lower()) if match else None
    if match is None or factor is None:
        raise UnitError(
            f"{text!r} is not a size; write a number and a unit of B, kB, MB, GB, TB"
            " (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), such as 20GB."
        )
    whole, _, fraction = match[1].partition(".")
    # Exact integer arithmetic: 0.1GB is 100000000 bytes, not a float's approximation.
    divisor: int = 10 ** len(fraction)
    return int(whole + fraction) * factor // divisor


def parse_percent(text: str) -> float:
    """``85%`` -> 85.0; between 0 and 100."""
    match = _PERCENT.fullmatch(text)
    value = float(match[1]) if match else -1.0
    if match is None or value > 100:
        raise UnitError(
            f"{text!r} is not a percentage; write a number from 0 to 100 followed by %, such as 85%."
        )
    return value


def format_size(count: int | None) -> str:
    """Decimal units, as ``docker image ls`` prints them: ``205 kB``, ``1.2 GB``."""
    if count is None:
        return "unknown"
    size = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.3g} {unit}"
        size /= 1000
    raise AssertionError("unreachable")
