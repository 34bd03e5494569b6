"""How long OCSP fetches take, per responder: the histogram behind
`staplegate_ocsp_fetch_duration_seconds`.

The driver (updater/driver.py) records each fetch's own elapsed time (`FetchResult.elapsed`,
from the request's start to its answer or failure, not the time spent waiting for a fetch
slot); the metrics collector (observe/metrics.py) reads `snapshot()` through
`runtime.contract.OcspService`. Counts only grow while the master lives: the updater and this
object survive reloads, so the histogram's counters never go backwards except across a
restart, like Prometheus expects of counters.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: Upper bounds in seconds. A local responder answers in milliseconds, a CA's over the Internet
#: in 50 ms-1 s; the fetch gives up after `ocsp-update` timeouts (15 s by default), so the
#: buckets reach that far and no further.
FETCH_DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, math.inf,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DurationHistogram:
    """One responder's fetch durations: cumulative counts per upper bound, count, sum."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    count: int
    sum_s: float


class _Counts:
    __slots__ = ("per_bucket", "sum_s")

    def __init__(self, buckets: int) -> None:
        self.per_bucket = [0] * buckets
        self.sum_s = 0.0


class FetchDurations:
    """Per-responder histogram of fetch durations (observe on the updater's loop)."""

    def __init__(self, bounds: Sequence[float] = FETCH_DURATION_BUCKETS) -> None:
        if list(bounds) != sorted(bounds) or not bounds or bounds[-1] != math.inf:
            raise ValueError("bounds must be increasing and end with +Inf")
        self._bounds = tuple(bounds)
        self._by_responder: dict[str, _Counts] = {}

    def observe(self, responder: str, seconds: float) -> None:
        """Count one fetch to `responder` (its OCSP URL) that took `seconds`."""
        counts = self._by_responder.get(responder)
        if counts is None:
            counts = self._by_responder[responder] = _Counts(len(self._bounds))
        seconds = max(seconds, 0.0)
        counts.per_bucket[bisect.bisect_left(self._bounds, seconds)] += 1
        counts.sum_s += seconds

    def snapshot(self) -> Mapping[str, DurationHistogram]:
        """Every responder fetched so far, with its cumulative bucket counts."""
        found = {}
        for responder, counts in self._by_responder.items():
            cumulative = []
            total = 0
            for count in counts.per_bucket:
                total += count
                cumulative.append(total)
            found[responder] = DurationHistogram(
                bounds=self._bounds, cumulative=tuple(cumulative), count=total, sum_s=counts.sum_s
            )
        return found
