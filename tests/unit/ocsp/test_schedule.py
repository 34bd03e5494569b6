"""schedule: HAProxy's numbers (spec §4.3-4.4) and the invariants of our jitter."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from staplegate.ocsp.schedule import (
    UpdateSettings,
    backoff_delay,
    base_refresh_at,
    fetched_at,
    jitter,
    refresh_at_after_failure,
    refresh_at_after_success,
    refresh_at_start,
)

NOW = dt.datetime(2026, 11, 24, 13, 22, 35, tzinfo=dt.UTC)
DEFAULT = UpdateSettings()


def s(seconds: float) -> dt.timedelta:
    return dt.timedelta(seconds=seconds)


def expire_for_validity(valid_for: float) -> dt.datetime:
    """expire of a response whose nextUpdate is `valid_for` seconds from NOW."""
    return NOW + s(valid_for) - s(300)


# --- the spec's worked examples (§4.3 table) ---


def test_no_staple_is_due_immediately() -> None:
    assert base_refresh_at(now=NOW, expire=None, settings=DEFAULT) == NOW


@pytest.mark.parametrize(
    ("valid_for", "settings", "expected"),
    [
        (7 * 86400, DEFAULT, 3600),  # .ocsp or fetched response valid 7 days
        (400, DEFAULT, 300),  # min delay wins over now+40
        (200, DEFAULT, 300),  # 3.2: rejected-but-stored response; we hold nothing such
        (7 * 86400, UpdateSettings(mindelay=3600, maxdelay=86400), 86400),
        (3600, DEFAULT, 3600 - 360),  # nextUpdate - 300 - 60 when that is sooner
    ],
)
def test_refresh_at_after_success_matches_the_spec_table(
    valid_for: int, settings: UpdateSettings, expected: int
) -> None:
    expire = expire_for_validity(valid_for)
    assert refresh_at_after_success(now=NOW, expire=expire, settings=settings) == NOW + s(expected)


def test_failure_backoff_sequence_without_a_staple() -> None:
    delays = [
        refresh_at_after_failure(now=NOW, expire=None, consecutive_failures=n, settings=DEFAULT)
        - NOW
        for n in range(1, 9)
    ]
    assert delays == [s(x) for x in (120, 240, 480, 960, 1920, 3600, 3600, 3600)]


def test_failure_with_a_seven_day_staple_waits_maxdelay() -> None:
    expire = expire_for_validity(7 * 86400)
    for n in (1, 2, 10):
        attempt = refresh_at_after_failure(
            now=NOW, expire=expire, consecutive_failures=n, settings=DEFAULT
        )
        assert attempt == NOW + s(3600)


def test_failure_with_an_expiring_staple_waits_max_of_mindelay_and_replay() -> None:
    expire = expire_for_validity(100)  # already withdrawn
    first = refresh_at_after_failure(
        now=NOW, expire=expire, consecutive_failures=1, settings=DEFAULT
    )
    third = refresh_at_after_failure(
        now=NOW, expire=expire, consecutive_failures=3, settings=DEFAULT
    )
    assert (first - NOW, third - NOW) == (s(300), s(480))


def test_zero_delays_cannot_spin() -> None:
    zero = UpdateSettings(mindelay=0, maxdelay=0)
    assert refresh_at_after_failure(
        now=NOW, expire=None, consecutive_failures=1, settings=zero
    ) == NOW + s(1)
    assert refresh_at_after_success(now=NOW, expire=NOW, settings=zero) == NOW + s(1)


def test_backoff_needs_a_counted_failure() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        backoff_delay(0, DEFAULT)
    assert backoff_delay(10_000, DEFAULT) == s(3600)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mindelay": -1},
        {"maxdelay": -1, "mindelay": 0},
        {"mindelay": 7200},  # above the default maxdelay, as HAProxy refuses
        {"margin": -5},
        {"jitter": 1.0},
        {"jitter": -0.1},
    ],
)
def test_settings_refuse_impossible_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        UpdateSettings(**kwargs)


def test_equal_min_and_max_are_accepted() -> None:
    assert UpdateSettings(mindelay=600, maxdelay=600).maxdelay == 600


# --- property tests ---

settings_strategy = st.builds(
    lambda lo, extra, margin, j: UpdateSettings(
        mindelay=lo, maxdelay=lo + extra, margin=margin, jitter=j
    ),
    st.integers(0, 7200),
    st.integers(0, 86400),
    st.integers(0, 600),
    st.floats(0, 0.5),
)
offsets = st.integers(-10 * 86400, 30 * 86400)  # expire relative to now, seconds


@given(settings_strategy, offsets)
def test_success_lands_between_mindelay_and_expire_minus_margin(
    settings: UpdateSettings, expire_offset: int
) -> None:
    expire = NOW + s(expire_offset)
    attempt = base_refresh_at(now=NOW, expire=expire, settings=settings)
    low = NOW + s(settings.mindelay)
    high = max(low, expire - s(settings.margin))
    assert low <= attempt <= high
    assert attempt <= NOW + s(settings.maxdelay)
    # nextUpdate = expire + 300: the looser bound holds as well
    assert attempt <= max(low, expire + s(300) - s(settings.margin))


@given(settings_strategy, st.integers(1, 40), st.none() | offsets)
def test_failure_follows_backoff_or_the_held_staple(
    settings: UpdateSettings, streak: int, expire_offset: int | None
) -> None:
    expire = None if expire_offset is None else NOW + s(expire_offset)
    attempt = refresh_at_after_failure(
        now=NOW, expire=expire, consecutive_failures=streak, settings=settings
    )
    replay = s(min(60 * 2 ** min(streak, 32), settings.maxdelay))
    base = base_refresh_at(now=NOW, expire=expire, settings=settings)
    assert attempt == max(base, NOW + replay, NOW + s(1))
    if expire is None:
        assert attempt - NOW == max(replay, s(1))
    elif expire - s(settings.margin) >= NOW + s(settings.maxdelay):
        # a staple valid beyond maxdelay is held: retry after exactly maxdelay
        assert attempt == NOW + max(s(settings.maxdelay), s(1))
    assert attempt <= NOW + max(s(settings.maxdelay), s(1))


@given(settings_strategy, st.none() | offsets, st.integers(0, 200_000), st.integers())
def test_jitter_only_pulls_earlier_and_respects_floor_and_withdrawal(
    settings: UpdateSettings, expire_offset: int | None, delay: int, seed: int
) -> None:
    expire = None if expire_offset is None else NOW + s(expire_offset)
    attempt = NOW + s(delay)
    moved = jitter(attempt, now=NOW, expire=expire, settings=settings, rng=random.Random(seed))
    assert moved <= attempt
    assert moved >= attempt - s(delay * settings.jitter) - s(1e-6)
    if expire is not None and attempt <= expire:
        assert moved <= expire  # never past the staple's withdrawal time
    assert moved >= min(attempt, NOW + s(1))
    if expire is not None:
        assert moved >= min(attempt, NOW + s(settings.mindelay))


def test_jitter_is_deterministic_per_seed_and_spreads_a_herd() -> None:
    attempt = NOW + s(3600)
    rng_a, rng_b = random.Random(7), random.Random(7)
    a = jitter(attempt, now=NOW, expire=None, settings=DEFAULT, rng=rng_a)
    assert a == jitter(attempt, now=NOW, expire=None, settings=DEFAULT, rng=rng_b)
    rng = random.Random(1)
    herd = {jitter(attempt, now=NOW, expire=None, settings=DEFAULT, rng=rng) for _ in range(100)}
    assert len(herd) > 90
    assert min(herd) >= NOW + s(3240)


def test_due_now_is_not_delayed_by_jitter() -> None:
    assert jitter(NOW, now=NOW, expire=None, settings=DEFAULT, rng=random.Random(0)) == NOW


# --- a staple loaded at start (issue 19 item 7) ---


def test_fetched_at_is_the_later_past_time_of_produced_at_and_this_update() -> None:
    assert fetched_at(produced_at=NOW - s(10), this_update=NOW - s(60), now=NOW) == NOW - s(10)
    assert fetched_at(produced_at=NOW + s(10), this_update=NOW - s(60), now=NOW) == NOW - s(60)
    assert fetched_at(produced_at=NOW + s(1), this_update=NOW + s(5), now=NOW) == NOW


@given(
    age=st.integers(min_value=0, max_value=30 * 86400),
    valid_for=st.integers(min_value=400, max_value=30 * 86400),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_a_restart_never_stretches_the_gap_beyond_maxdelay(
    age: int, valid_for: int, seed: int
) -> None:
    fetched = NOW - s(age)
    expire = expire_for_validity(valid_for)
    when = refresh_at_start(
        now=NOW, fetched=fetched, expire=expire, settings=DEFAULT, rng=random.Random(seed)
    )
    assert when >= NOW
    # never later than maxdelay after the fetch, unless overdue: then within the spread
    assert when <= max(fetched + s(DEFAULT.maxdelay), NOW + s(DEFAULT.jitter * DEFAULT.maxdelay))
    # and never after the withdrawal time less the margin, except where HAProxy's mindelay
    # floor (counted from the fetch) puts it later, as after any success
    assert when <= max(expire - s(DEFAULT.margin), fetched + s(DEFAULT.mindelay), NOW)


# --- the responder's caching hint (issue 19 item 5) ---


def test_a_hint_within_maxdelay_delays_a_short_staples_refresh() -> None:
    expire = expire_for_validity(600)  # now + 300
    settings = UpdateSettings(mindelay=0)
    plain = refresh_at_after_success(now=NOW, expire=expire, settings=settings)
    assert plain == NOW + s(240)
    hinted = refresh_at_after_success(
        now=NOW, expire=expire, settings=settings, fresh_until=NOW + s(250)
    )
    assert hinted == NOW + s(250)


def test_a_hint_never_goes_past_maxdelay_nor_near_the_withdrawal() -> None:
    week = expire_for_validity(7 * 86400)
    assert refresh_at_after_success(
        now=NOW, expire=week, settings=DEFAULT, fresh_until=NOW + s(86400)
    ) == NOW + s(3600)
    short = expire_for_validity(600)
    assert refresh_at_after_success(
        now=NOW, expire=short, settings=UpdateSettings(mindelay=0), fresh_until=NOW + s(9999)
    ) == short - s(30)


def test_a_hint_sooner_than_the_formula_changes_nothing() -> None:
    week = expire_for_validity(7 * 86400)
    assert refresh_at_after_success(
        now=NOW, expire=week, settings=DEFAULT, fresh_until=NOW + s(10)
    ) == NOW + s(3600)


@given(seed=st.integers(min_value=0, max_value=2**32), hint=st.integers(0, 7200))
def test_jitter_never_pulls_an_attempt_before_the_hint(seed: int, hint: int) -> None:
    attempt = NOW + s(3600)
    jittered = jitter(
        attempt,
        now=NOW,
        expire=expire_for_validity(7 * 86400),
        settings=DEFAULT,
        rng=random.Random(seed),
        not_before=NOW + s(hint),
    )
    assert min(attempt, NOW + s(hint)) <= jittered <= attempt
