"""HAProxy's httplog and tcplog line formats."""

from __future__ import annotations

import datetime as dt

from staplegate.observe.accesslog import HttpLogRecord, LogCounters, haproxy_date


def test_httplog_line_format() -> None:
    when = dt.datetime(2009, 2, 6, 12, 14, 14, 655000, tzinfo=dt.UTC).astimezone()
    record = HttpLogRecord(
        client=("10.0.1.2", 33317), received_at=when, frontend="http-in", tls=False,
        backend="static", server="srv1", request_s=0.010, queue_s=0.0, connect_s=0.030,
        response_s=0.069, active_s=0.109, status=200, bytes_out=2750, termination="----",
        counters=LogCounters(1, 1, 1, 1, 0), request_line="GET /index.html HTTP/1.1",
    )  # fmt: skip
    assert record.render() == (
        f"10.0.1.2:33317 [{haproxy_date(when)}] http-in static/srv1 10/0/30/69/109 200 2750 "
        '- - ---- 1/1/1/1/0 0/0 "GET /index.html HTTP/1.1"'
    )
    assert haproxy_date(dt.datetime(2009, 2, 6, 12, 14, 14, 655000)).endswith(":12:14:14.655")
