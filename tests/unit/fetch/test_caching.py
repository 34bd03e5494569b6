"""fresh_for: the responder's caching hints, RFC 9111's precedence, hostile values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from staplegate.fetch.caching import fresh_for

DATE = "Mon, 07 Dec 2026 08:00:00 GMT"


def hint(
    cache_control: str | None = None,
    expires: str | None = None,
    date: str | None = DATE,
    age: str | None = None,
) -> float | None:
    return fresh_for(cache_control=cache_control, expires=expires, date=date, age=age)


def test_max_age_is_the_lifetime() -> None:
    assert hint("max-age=300, public, no-transform, must-revalidate") == 300


def test_max_age_wins_over_expires() -> None:
    assert hint("public, max-age=60", expires="Mon, 07 Dec 2026 09:00:00 GMT") == 60


def test_expires_counts_from_the_date_header() -> None:
    assert hint(expires="Mon, 07 Dec 2026 09:00:00 GMT") == 3600


def test_age_from_a_cache_in_between_is_subtracted() -> None:
    assert hint("max-age=600", age="100") == 500
    assert hint("max-age=600", age="900") == 0


@pytest.mark.parametrize("directive", ["no-cache", "no-store", "max-age=60, no-cache"])
def test_no_cache_means_fresh_for_nothing(directive: str) -> None:
    assert hint(directive) == 0


@pytest.mark.parametrize(
    ("cache_control", "expires", "date"),
    [
        (None, None, DATE),
        ("public", None, DATE),
        ("max-age=-5", None, DATE),
        ("max-age=abc", None, DATE),
        (None, "tomorrow", DATE),
        (None, "Mon, 07 Dec 2026 09:00:00 GMT", None),
        (None, "Mon, 07 Dec 2026 09:00:00", "garbage"),
    ],
)
def test_malformed_or_absent_hints_are_no_hint(
    cache_control: str | None, expires: str | None, date: str | None
) -> None:
    assert hint(cache_control, expires, date) is None


@given(st.text(), st.text(), st.text(), st.text())
def test_never_raises_on_hostile_headers(cc: str, expires: str, date: str, age: str) -> None:
    result = hint(cc, expires, date, age)
    assert result is None or result >= 0
