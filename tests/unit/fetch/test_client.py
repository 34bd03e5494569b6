"""FetchSettings checks its values when built, so a bad config fails at load, not at 3 a.m."""

from __future__ import annotations

from typing import Any

import pytest

from staplegate.fetch import FetchSettings


def test_defaults_follow_haproxy_and_add_a_total_timeout() -> None:
    settings = FetchSettings()
    assert settings.connect_timeout == 5.0  # httpclient.timeout.connect
    assert settings.connect_retries == 3  # httpclient.retries
    assert settings.total_timeout == 15.0  # HAProxy has none (spec §4.8)
    assert settings.max_body == 64 * 1024
    assert settings.proxy is None
    assert settings.proxy_url is None


def test_proxy_url_is_plain_http_to_the_proxy() -> None:
    assert FetchSettings(proxy="192.0.2.10:3128").proxy_url == "http://192.0.2.10:3128"
    assert FetchSettings(proxy="proxy.internal:8080").proxy_url == "http://proxy.internal:8080"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"connect_timeout": 0.0},
        {"total_timeout": -1.0},
        {"max_body": 0},
        {"connect_retries": -1},
        {"connect_retry_delay": -0.5},
    ],
)
def test_nonsense_values_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"timeouts|max_body|connect_retr"):
        FetchSettings(**kwargs)
