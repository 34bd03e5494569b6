"""observe/log.py: HAProxy's log line formats, level rules, `len`, and never blocking.

Formats are checked byte for byte with a fixed datetime; delivery uses real sockets (a UDP
socket bound on 127.0.0.1, Unix datagram sockets in tmp_path) and a real pipe.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from staplegate.observe.log import (
    ALERT,
    FACILITIES,
    NOTICE,
    LogRouter,
    SyslogTarget,
    format_line,
    frame_line,
    severity_of,
)

WHEN = dt.datetime(2026, 11, 4, 13, 22, 35, 69000, tzinfo=dt.timezone(dt.timedelta(hours=1)))
LINE = '<OCSP-UPDATE> /etc/haproxy/certs/www.pem 1 "Update successful" 0 1'
HOST = "lb1"
PID = 4242
WAIT = 5.0


def target(fmt: str = "rfc3164", **options: Any) -> SyslogTarget:
    return SyslogTarget(kind="stdout", address=None, format=fmt, tag="haproxy", **options)


# --- formats ---


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("rfc3164", f"<133>Nov  4 13:22:35 lb1 haproxy[4242]: {LINE}"),
        ("local", f"<133>Nov  4 13:22:35 haproxy[4242]: {LINE}"),
        ("rfc5424", f"<133>1 2026-11-04T13:22:35.069000+01:00 lb1 haproxy 4242 - - {LINE}"),
        ("priority", f"<133>{LINE}"),
        ("short", f"<5>{LINE}"),
        ("timed", f"<5>2026-11-04T13:22:35.069000+01:00 {LINE}"),
        ("iso", f"2026-11-04T13:22:35.069000+01:00 {LINE}"),
        ("raw", LINE),
    ],
)
def test_each_format_byte_for_byte(fmt: str, expected: str) -> None:
    assert format_line(target(fmt), LINE, severity_of(NOTICE), WHEN, HOST, PID) == expected


def test_two_digit_days_are_not_padded() -> None:
    when = WHEN.replace(day=24)
    line = format_line(target(), "m", 5, when, HOST, PID)
    assert line == "<133>Nov 24 13:22:35 lb1 haproxy[4242]: m"


@pytest.mark.parametrize(
    ("facility", "levelno", "pri"),
    [
        ("local0", NOTICE, 133),  # HAProxy 3.x <OCSP-UPDATE> lines
        ("local0", logging.INFO, 134),  # 2.8's level
        ("local7", ALERT, 185),
        ("user", logging.WARNING, 12),
        ("daemon", logging.ERROR, 27),
        ("kern", logging.CRITICAL, 2),
        ("local1", logging.DEBUG, 143),
    ],
)
def test_pri_is_facility_times_8_plus_severity(facility: str, levelno: int, pri: int) -> None:
    line = format_line(
        target("priority", facility=facility), "m", severity_of(levelno), WHEN, "h", 1
    )
    assert line == f"<{pri}>m"
    assert FACILITIES.index(facility) * 8 + severity_of(levelno) == pri


def test_python_levels_map_to_syslog_severities() -> None:
    assert [severity_of(n) for n in (ALERT, 50, 40, 30, NOTICE, 20, 10)] == [1, 2, 3, 4, 5, 6, 7]


# --- levels ---


def test_max_level_filters_less_severe_records() -> None:
    warning_only = target(max_level="warning")
    assert warning_only.accepts(severity_of(logging.ERROR))
    assert warning_only.accepts(severity_of(logging.WARNING))
    assert not warning_only.accepts(severity_of(NOTICE))  # hides <OCSP-UPDATE> lines
    assert target(max_level="notice").accepts(severity_of(NOTICE))
    assert not target(max_level="notice").accepts(severity_of(logging.INFO))


def test_min_level_caps_severity_instead_of_filtering() -> None:
    capped = target("priority", min_level="err")
    assert capped.accepts(severity_of(ALERT))
    assert format_line(capped, "m", severity_of(ALERT), WHEN, HOST, PID) == "<131>m"  # 128+3
    assert format_line(capped, "m", severity_of(NOTICE), WHEN, HOST, PID) == "<133>m"
    assert format_line(target("short", min_level="crit"), "m", 1, WHEN, HOST, PID) == "<2>m"


def test_bad_target_values_are_refused() -> None:
    with pytest.raises(ValueError, match="facility"):
        target(facility="local8")
    with pytest.raises(ValueError, match="level"):
        target(max_level="verbose")
    with pytest.raises(ValueError, match="format"):
        target("json")


# --- len and framing ---


def test_len_counts_the_newline_and_cuts_bytes() -> None:
    long = target("raw", length=80)
    framed = frame_line(long, "x" * 200)
    assert framed == b"x" * 79 + b"\n"
    assert frame_line(long, "short") == b"short\n"
    assert frame_line(target("raw", length=10), "é" * 10) == ("é" * 4).encode() + b"\xc3\n"


def test_embedded_newlines_do_not_split_a_record() -> None:
    assert frame_line(target("raw"), "one\ntwo") == b"one two\n"


def test_unix_targets_accept_both_spellings() -> None:
    assert SyslogTarget(kind="unix", address="unix@/dev/log").socket_path == "/dev/log"
    assert SyslogTarget(kind="unix", address="/dev/log").socket_path == "/dev/log"


# --- delivery through LogRouter ---


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("staplegate.test-observe-log")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)


def recv_line(sock: socket.socket) -> bytes:
    sock.settimeout(WAIT)
    data, _ = sock.recvfrom(65536)
    return data


def test_udp_target_gets_rfc3164_lines_with_the_notice_pri(logger: logging.Logger) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        router = LogRouter(
            [SyslogTarget(kind="udp", address=("127.0.0.1", port), facility="local0", tag="sg")]
        )
        router.install(logger)
        try:
            logger.log(NOTICE, "%s", LINE)
            logger.debug("debug goes too: no max level")
            first, second = recv_line(server), recv_line(server)
        finally:
            router.close()
    pattern = rb"<133>[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \S+ sg\[\d+\]: "
    assert re.fullmatch(pattern + re.escape(LINE.encode()) + rb"\n", first)
    assert re.fullmatch(
        pattern.replace(b"133", b"135") + rb"debug goes too: no max level\n", second
    )
    assert router.dropped == 0
    assert router.sent == 2


def test_unix_target_levels_and_len(tmp_path: Path, logger: logging.Logger) -> None:
    path = tmp_path / "log.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        router = LogRouter(
            [
                SyslogTarget(
                    kind="unix",
                    address=f"unix@{path}",
                    facility="local1",
                    max_level="notice",
                    length=100,
                    format="short",
                )
            ]
        )
        router.install(logger)
        try:
            logger.info("not sent: info is above notice")
            logger.log(NOTICE, "n" * 300)
            logger.warning("w")
            lines = [recv_line(server), recv_line(server)]
        finally:
            router.close()
    assert lines == [b"<5>" + b"n" * 96 + b"\n", b"<4>w\n"]


def test_a_gone_target_counts_drops_and_does_not_raise(
    tmp_path: Path, logger: logging.Logger, capfd: pytest.CaptureFixture[str]
) -> None:
    router = LogRouter([SyslogTarget(kind="unix", address=str(tmp_path / "nobody.sock"))])
    router.install(logger)
    logger.warning("lost")
    logger.warning("lost too")
    router.close()
    assert router.dropped == 2
    assert router.sent == 0
    assert "[WARNING] staplegate: 2 log line(s) dropped" in capfd.readouterr().err


def test_a_reader_that_never_reads_never_blocks_the_caller(
    tmp_path: Path, logger: logging.Logger
) -> None:
    path = tmp_path / "stuck.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stuck:
        stuck.bind(str(path))
        router = LogRouter([SyslogTarget(kind="unix", address=str(path))], queue_size=100)
        router.install(logger)
        started = time.monotonic()
        for i in range(5000):
            logger.log(NOTICE, "line %d %s", i, "x" * 200)
        elapsed = time.monotonic() - started
        closing = time.monotonic()
        router.close()
        close_time = time.monotonic() - closing
        delivered = 0
        stuck.setblocking(False)
        while True:
            try:
                stuck.recv(65536)
            except BlockingIOError:
                break
            delivered += 1
    assert elapsed < 2.0  # 5000 non-blocking puts; a blocking send would hang here
    assert close_time < 2.0
    assert router.dropped > 0
    assert delivered >= 1
    assert router.dropped + delivered == 5000


def test_a_stdout_pipe_nobody_drains_drops_whole_lines(
    monkeypatch: pytest.MonkeyPatch, logger: logging.Logger
) -> None:
    read_end, write_end = os.pipe()
    stream = io.TextIOWrapper(os.fdopen(write_end, "wb"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", stream)
    try:
        router = LogRouter(
            [SyslogTarget(kind="stdout", address=None, format="raw")],
            queue_size=50,
            stream_wait=0.01,
        )
        router.install(logger)
        started = time.monotonic()
        for i in range(2000):  # ~2 MB: far beyond a 64 KiB pipe
            logger.log(NOTICE, "%05d %s", i, "y" * 1000)
        elapsed = time.monotonic() - started
        closing = time.monotonic()
        router.close()
        close_time = time.monotonic() - closing
        os.set_blocking(read_end, False)
        chunks = []
        while True:
            try:
                chunk = os.read(read_end, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        stream.close()
    assert elapsed < 2.0
    assert close_time < 2.0
    lines = b"".join(chunks).split(b"\n")
    assert lines[-1] == b""  # ends on a line boundary
    assert all(re.fullmatch(rb"\d{5} y{1000}", line) for line in lines[:-1])
    assert 0 < len(lines) - 1 < 2000
    assert router.dropped == 2000 - (len(lines) - 1)


def test_closed_router_refuses_install(logger: logging.Logger) -> None:
    router = LogRouter([SyslogTarget(kind="stderr", address=None)])
    router.close()
    with pytest.raises(RuntimeError, match="closed"):
        router.install(logger)
