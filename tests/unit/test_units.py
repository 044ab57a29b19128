"""Durations, sizes and percentages as images.yaml writes them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.model.units import (
    UnitError,
    format_duration,
    parse_duration,
    parse_percent,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0s", 0), ("45s", 45), ("90m", 5400), ("1h", 3600), ("14d", 1_209_600), ("2w", 1_209_600)],
)
def test_duration_units(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["1h30m", "14", "d", "1.5h", "-1d", "1D", " 1d", "1d\n", "1y", "\u0661d", ""]
)
def test_invalid_durations_are_refused_with_a_hint(text: str) -> None:
    with pytest.raises(UnitError, match="write a whole number and one unit"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**8), st.sampled_from("smhdw"))
def test_format_duration_reads_back_to_the_same_seconds(count: int, unit: str) -> None:
    seconds = parse_duration(f"{count}{unit}")
    assert parse_duration(format_duration(seconds)) == seconds


def test_format_duration_picks_the_largest_whole_unit() -> None:
    assert [format_duration(s) for s in (60, 5400, 86_400, 1_209_600, 61, 2.5)] == [
        "1m",
        "90m",
        "1d",
        "2w",
        "61s",
        "2.5s",
    ]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0B", 0),
        ("500MB", 500_000_000),
        ("20GB", 20_000_000_000),
        ("2GiB", 2 * 1024**3),
        ("1.5kB", 1500),
        ("1.5KB", 1500),
        ("0.1GB", 100_000_000),
        ("1 TiB", 1024**4),
        ("3mib", 3 * 1024**2),
        ("1.0000005kB", 1000),  # rounded down to a whole byte
    ],
)
def test_size_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text", ["20", "GB", "20 G", "20XB", "1,5GB", "-1GB", "1e3MB", "20GB ", ""]
)
def test_invalid_sizes_are_refused_with_a_hint(text: str) -> None:
    with pytest.raises(UnitError, match="is not a size; write a number and a unit"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "value"), [("85%", 85.0), ("0%", 0.0), ("100%", 100.0), ("62.5%", 62.5)]
)
def test_percentages(text: str, value: float) -> None:
    assert parse_percent(text) == value


@pytest.mark.parametrize("text", ["85", "101%", "100.5%", "-5%", "%", "85 %", "0.85"])
def test_invalid_percentages_are_refused(text: str) -> None:
    with pytest.raises(UnitError, match="from 0 to 100"):
        parse_percent(text)


def test_ages_are_rounded_down_to_their_largest_unit() -> None:
    from reconciler.model.units import format_age

    assert [format_age(s) for s in (-3, 0, 59.9, 60, 3599, 3600, 86399, 86400, 3.7152e6, 13 * 86400, 15 * 86400)] == [
        "0s",
        "0s",
        "59s",
        "1m",
        "59m",
        "1h",
        "23h",
        "1d",
        "43d",
        "13d",
        "15d",
    ]
