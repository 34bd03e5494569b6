"""The shared store URL check: accepted forms, and no message ever carries a password."""

from __future__ import annotations

import pytest

from staplegate.config.shared_store import shared_store_url_error


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://redis.example:6380", "redis://[::1]:6379/15"]
)
def test_good_urls(url: str) -> None:
    assert shared_store_url_error(url) is None


@pytest.mark.parametrize(
    "url",
    ["redis://:s3cret@h:6379/0", "redis://user:s3cret@h:bad/0", "ftp://u:s3cret@h/0"],
)
def test_a_password_is_refused_first_and_never_echoed(url: str) -> None:
    problem = shared_store_url_error(url)
    assert problem is not None
    assert "s3cret" not in problem
    assert "password" in problem
