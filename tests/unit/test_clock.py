"""The clock: the environment's test offset, the system clock, and the manual clock."""

from __future__ import annotations

import datetime as dt

import pytest

from staplegate.clock import (
    CLOCK_OFFSET_VARIABLE,
    ClockOffsetError,
    ManualClock,
    SystemClock,
    clock_offset_seconds,
)

START = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_the_offset_is_zero_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CLOCK_OFFSET_VARIABLE, raising=False)
    assert clock_offset_seconds() == 0.0
    monkeypatch.setenv(CLOCK_OFFSET_VARIABLE, "  ")
    assert clock_offset_seconds() == 0.0
    monkeypatch.setenv(CLOCK_OFFSET_VARIABLE, "-90.5")
    assert clock_offset_seconds() == -90.5


@pytest.mark.parametrize("raw", ["soon", "nan", "inf", "1e12"])
def test_an_offset_that_is_not_a_sane_number_is_refused(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CLOCK_OFFSET_VARIABLE, raw)
    with pytest.raises(ClockOffsetError, match="unset it outside tests"):
        clock_offset_seconds()


def test_the_system_clock_is_aware_utc_and_shifted_by_the_offset_read_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CLOCK_OFFSET_VARIABLE, "86400")
    clock = SystemClock()
    monkeypatch.delenv(CLOCK_OFFSET_VARIABLE)  # read at construction only
    shifted = clock.now()
    assert shifted.tzinfo is dt.UTC
    ahead = shifted - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=23) < ahead <= dt.timedelta(days=1)
    assert SystemClock.monotonic() <= SystemClock.monotonic()


def test_the_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(START)
    assert clock.now() == START
    clock.advance(90)
    assert clock.now() == START + dt.timedelta(seconds=90)
    clock.set(START)
    assert clock.now() == START
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(dt.datetime(2026, 1, 1))  # naive: refused
