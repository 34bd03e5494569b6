"""index.txt, openssl's CA database: lines, times, serials and the atomic rewrite."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from staplegate.testpki.index import (
    EntryStatus,
    IndexEntry,
    IndexFileError,
    format_serial,
    format_time,
    parse_line,
    parse_time,
    read_index,
    write_index,
)

EXPIRES = dt.datetime(2030, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
REVOKED_AT = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_times_use_utctime_before_2050_and_generalizedtime_after() -> None:
    assert format_time(EXPIRES) == "300506070809Z"
    late = dt.datetime(2051, 1, 1, tzinfo=dt.UTC)
    assert format_time(late) == "20510101000000Z"
    assert parse_time("300506070809Z") == EXPIRES
    assert parse_time("20510101000000Z") == late
    assert parse_time("991231235959Z").year == 1999  # YY >= 50 is 19YY (RFC 5280)
    with pytest.raises(ValueError, match="bad time"):
        parse_time("2030")


def test_serials_are_uppercase_hex_in_whole_bytes() -> None:
    assert format_serial(0xABC) == "0ABC"
    assert format_serial(0x1A2B) == "1A2B"


def test_a_revoked_line_round_trips() -> None:
    valid = IndexEntry(EntryStatus.VALID, EXPIRES, 0x1F, "/CN=www.example.test")
    assert valid.to_line() == "V\t300506070809Z\t\t1F\tunknown\t/CN=www.example.test"
    revoked = valid.revoked(REVOKED_AT, "keyCompromise")
    line = revoked.to_line()
    assert line.split("\t")[:3] == ["R", "300506070809Z", "260102030405Z,keyCompromise"]
    assert parse_line(line + "\n") == revoked
    with pytest.raises(ValueError, match="unknown revocation reason"):
        valid.revoked(REVOKED_AT, "lostIt")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("V\t300506070809Z\t1F", "expected 6"),
        ("X\t300506070809Z\t\t1F\tunknown\t/CN=a", "V, R or E"),
    ],
)
def test_bad_lines_say_why(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_line(line)


def test_the_file_is_rewritten_whole_with_a_backup_and_errors_name_the_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "index.txt"
    first = IndexEntry(EntryStatus.VALID, EXPIRES, 1, "/CN=a")
    write_index(path, [first])
    path.chmod(0o640)
    second = first.revoked(REVOKED_AT, None)
    write_index(path, [second, IndexEntry(EntryStatus.EXPIRED, EXPIRES, 2, "/CN=b")])
    assert read_index(path)[0] == second
    assert read_index(path.with_name("index.txt.old")) == [first]  # openssl's backup name
    assert path.stat().st_mode & 0o777 == 0o640  # the mode is kept
    path.write_text(first.to_line() + "\n\nnot an entry\n", encoding="utf-8")
    with pytest.raises(IndexFileError) as caught:
        read_index(path)
    assert caught.value.line_number == 3
    assert str(caught.value).startswith(f"{path}:3: ")
