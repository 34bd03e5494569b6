"""The per-responder fetch-duration histogram the driver fills and /metrics shows."""

from __future__ import annotations

import math

import pytest

from staplegate.updater.timing import FETCH_DURATION_BUCKETS, FetchDurations


def test_each_fetch_lands_in_its_bucket_per_responder_with_cumulative_counts() -> None:
    durations = FetchDurations(bounds=(0.1, 1.0, math.inf))
    durations.observe("http://a", 0.05)
    durations.observe("http://a", 0.1)  # a bound is inclusive, as Prometheus' `le`
    durations.observe("http://a", 0.5)
    durations.observe("http://a", 20.0)  # past every finite bound: +Inf only
    durations.observe("http://b", -0.001)  # a clock step backwards counts as 0
    found = durations.snapshot()
    assert found["http://a"].cumulative == (2, 3, 4)
    assert found["http://a"].count == 4
    assert found["http://a"].sum_s == pytest.approx(20.65)
    assert found["http://b"].cumulative == (1, 1, 1)
    assert found["http://b"].sum_s == 0.0
    assert set(found) == {"http://a", "http://b"}


def test_the_default_buckets_reach_the_fetch_timeout_and_bounds_are_checked() -> None:
    assert FETCH_DURATION_BUCKETS[-2] == 15.0  # the default total fetch timeout
    assert FetchDurations().snapshot() == {}
    for bad in ((), (1.0, 0.5, math.inf), (0.5, 1.0)):
        with pytest.raises(ValueError, match="increasing and end with"):
            FetchDurations(bounds=bad)
