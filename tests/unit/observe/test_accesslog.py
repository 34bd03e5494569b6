"""HAProxy's httplog and tcplog line formats."""

from __future__ import annotations

import datetime as dt

from staplegate.clock import ManualClock
from staplegate.observe.accesslog import HttpLogRecord, LogCounters, haproxy_date, tcplog_writer
from staplegate.proxy.records import ConnectionRecord, Termination


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


def _record(*, tls_bind: bool) -> ConnectionRecord:
    return ConnectionRecord(
        frontend="raw", bind="bind :25", client_address=("10.0.1.2", 33317), server_name=None,
        certificate=None, tls=None, tls_error=None, backend="mail", server="mx1",
        bytes_from_client=10, bytes_to_client=20, termination=Termination.NORMAL,
        duration_s=1.5, connect_s=0.002, queue_s=0.0, tls_bind=tls_bind,
    )  # fmt: skip


def test_tcplog_marks_only_tls_binds_with_a_tilde() -> None:
    """HAProxy's `%ft`: the frontend's name, with `~` when the connection came over SSL."""
    lines: list[str] = []
    write = tcplog_writer(ManualClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)), lines.append)
    write(_record(tls_bind=False))
    write(_record(tls_bind=True))
    assert " raw mail/mx1 0/2/1500 20 -- " in lines[0]
    assert " raw~ mail/mx1 0/2/1500 20 -- " in lines[1]
