"""The only place that reads the wall clock; everything else takes a `Clock` or a `now`."""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current time as a timezone-aware UTC datetime."""

    def now(self) -> dt.datetime: ...


class SystemClock:
    """Wall-clock time, shifted by `STAPLEGATE_CLOCK_OFFSET` seconds when set.

    The offset exists so end-to-end tests can run the CLI "in the future" (expiry, withdrawal)
    without sleeping for minutes; it is read once, at construction.
    """

    def __init__(self) -> None:
        raw = os.environ.get("STAPLEGATE_CLOCK_OFFSET", "")
        self._offset = dt.timedelta(seconds=float(raw)) if raw else dt.timedelta(0)

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
