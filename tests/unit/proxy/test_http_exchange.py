"""An exchange's bookkeeping (`http_exchange`): status classes for the counters, and what a
new exchange starts with."""

from __future__ import annotations

from staplegate.proxy.http_exchange import Exchange, count_status
from staplegate.proxy.http_request import RequestHead
from staplegate.proxy.records import HttpStats


def test_statuses_are_counted_by_class() -> None:
    stats = HttpStats()
    for status in (101, 200, 204, 301, 404, 503, 0, -1, 600):
        count_status(stats, status)
    assert stats.responses_by_class == {
        "1xx": 1,
        "2xx": 2,
        "3xx": 1,
        "4xx": 1,
        "5xx": 1,
        "other": 3,
    }


def test_a_new_exchange_closes_the_client_only_without_keep_alive() -> None:
    head = RequestHead("GET", b"/", "1.1", [(b"Host", b"a.test")], keep_alive=True)
    exchange = Exchange(head, 10.0, None)
    assert not exchange.close_client
    assert (exchange.started, exchange.head_at, exchange.server_activity) == (10.0, 10.0, 10.0)
    assert exchange.conn is None
    assert exchange.status == 0
    assert not exchange.request_done
    closing = RequestHead("GET", b"/", "1.0", [], keep_alive=False)
    assert Exchange(closing, 0.0, None).close_client
