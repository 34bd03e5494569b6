"""Format HAProxy 3.2's `<OCSP-UPDATE>` log line and update status texts.

Both are described in docs/explanation/logging.md and docs/reference/runtime-api.md.

The line is the message part after the syslog header::

    <OCSP-UPDATE> <path> <code> "<text>[ (<detail>)]" <failures> <successes>

The quotes inside status 3's text are not escaped (HAProxy doesn't), counters are the
entry's cumulative ones *after* counting this update, failures first. Pure formatting: the
logger that sends it (level notice, global log targets) lives in `observe/`.
"""

from __future__ import annotations

import enum


class UpdateStatus(enum.IntEnum):
    """HAProxy's last-update status codes, identical in 2.8 to 3.2."""

    UNKNOWN = 0
    SUCCESS = 1
    HTTP_ERROR = 2
    MISSING_CONTENT_TYPE = 3
    CHECK_FAILURE = 4
    INSERTION_ERROR = 5

    @property
    def text(self) -> str:
        return _TEXTS[self]


_TEXTS: dict[UpdateStatus, str] = {
    UpdateStatus.UNKNOWN: "Unknown",
    UpdateStatus.SUCCESS: "Update successful",
    UpdateStatus.HTTP_ERROR: "HTTP error",
    UpdateStatus.MISSING_CONTENT_TYPE: 'Missing "ocsp-response" header',
    UpdateStatus.CHECK_FAILURE: "OCSP response check failure",
    UpdateStatus.INSERTION_ERROR: "Error during insertion",
}


def status_text(status: UpdateStatus, detail: str | None = None) -> str:
    """`<text>[ (<detail>)]`, as in the log line and `show ssl ocsp-updates`."""
    return status.text if not detail else f"{status.text} ({detail})"


def format_update_line(
    *,
    path: str,
    status: UpdateStatus,
    detail: str | None,
    failures: int,
    successes: int,
) -> str:
    """One `<OCSP-UPDATE>` line (message part), HAProxy 3.2 layout."""
    return (
        f'<OCSP-UPDATE> {path} {int(status)} "{status_text(status, detail)}" {failures} {successes}'
    )
