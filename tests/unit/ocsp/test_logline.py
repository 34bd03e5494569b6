"""The <OCSP-UPDATE> line, byte for byte as HAProxy 3.2 writes it (spec §7.2)."""

from __future__ import annotations

import pytest

from staplegate.ocsp.logline import UpdateStatus, format_update_line, status_text

PATH = "/etc/haproxy/certs/www.pem"


@pytest.mark.parametrize(
    ("status", "detail", "failures", "successes", "expected"),
    [
        (UpdateStatus.HTTP_ERROR, None, 1, 0, '2 "HTTP error" 1 0'),
        (UpdateStatus.SUCCESS, None, 1, 1, '1 "Update successful" 1 1'),
        (
            UpdateStatus.CHECK_FAILURE,
            "OCSP_basic_verify() failed",
            2,
            1,
            '4 "OCSP response check failure (OCSP_basic_verify() failed)" 2 1',
        ),
        (
            UpdateStatus.CHECK_FAILURE,
            "OCSP response not successful (3: trylater)",
            1,
            0,
            '4 "OCSP response check failure (OCSP response not successful (3: trylater))" 1 0',
        ),
        (
            UpdateStatus.INSERTION_ERROR,
            "OCSP single response: no longer valid. Must be valid during at least 300s.",
            1,
            0,
            '5 "Error during insertion (OCSP single response: no longer valid. '
            'Must be valid during at least 300s.)" 1 0',
        ),
        # status 3's inner quotes are not escaped
        (UpdateStatus.MISSING_CONTENT_TYPE, None, 1, 1, '3 "Missing "ocsp-response" header" 1 1'),
    ],
)
def test_lines_match_haproxy_32(
    status: UpdateStatus, detail: str | None, failures: int, successes: int, expected: str
) -> None:
    line = format_update_line(
        path=PATH, status=status, detail=detail, failures=failures, successes=successes
    )
    assert line == f"<OCSP-UPDATE> {PATH} {expected}"


def test_status_texts_are_haproxys() -> None:
    assert [s.text for s in UpdateStatus] == [
        "Unknown",
        "Update successful",
        "HTTP error",
        'Missing "ocsp-response" header',
        "OCSP response check failure",
        "Error during insertion",
    ]
    assert [int(s) for s in UpdateStatus] == [0, 1, 2, 3, 4, 5]


def test_unknown_keeps_the_previous_detail_as_32_shows_it() -> None:
    detail = "OCSP single response: no longer valid. Must be valid during at least 300s."
    assert status_text(UpdateStatus.UNKNOWN, detail) == f"Unknown ({detail})"
    assert status_text(UpdateStatus.UNKNOWN, None) == "Unknown"
    assert status_text(UpdateStatus.SUCCESS, "") == "Update successful"
