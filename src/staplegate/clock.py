"""The only place that reads the wall clock; everything else takes a `Clock` or a `now`."""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from typing import Protocol

_MAX_OFFSET_S = 100 * 365 * 86400  # beyond a century the datetime arithmetic overflows


class Clock(Protocol):
    """Something that tells the current time as a timezone-aware UTC datetime."""

    def now(self) -> dt.datetime: ...


CLOCK_OFFSET_VARIABLE = "STAPLEGATE_CLOCK_OFFSET"


class ClockOffsetError(ValueError):
    """`STAPLEGATE_CLOCK_OFFSET` is set to something that is not a finite number of seconds."""


def clock_offset_seconds() -> float:
    """The test-only clock shift from the environment (0 when unset); raises ClockOffsetError."""
    raw = os.environ.get(CLOCK_OFFSET_VARIABLE, "").strip()
    if not raw:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or abs(seconds) > _MAX_OFFSET_S:
        raise ClockOffsetError(
            f"{CLOCK_OFFSET_VARIABLE}={raw!r} is not a number of seconds (e.g. 3600 or -90); "
            "unset it outside tests"
        )
    return seconds


class SystemClock:
    """Wall-clock time, shifted by `STAPLEGATE_CLOCK_OFFSET` seconds when set.

    The offset exists so end-to-end tests can run the CLI "in the future" (expiry, withdrawal)
    without sleeping for minutes; it is read once, at construction.
    """

    def __init__(self) -> None:
        self._offset = dt.timedelta(seconds=clock_offset_seconds())

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self._offset

    @staticmethod
    def monotonic() -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to, for tests of the pure core."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware datetime")
        self._now = start

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += dt.timedelta(seconds=seconds)

    def set(self, when: dt.datetime) -> None:
        self._now = when
