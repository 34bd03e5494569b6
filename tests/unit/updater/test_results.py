"""The answers' own properties: `UpdateOutcome.text` and `.ok`."""

from __future__ import annotations

from staplegate.ocsp.certid import CertId
from staplegate.ocsp.logline import UpdateStatus
from staplegate.updater.results import UpdateOutcome, UpdateResult

CERT = CertId("sha1", b"\x01" * 20, b"\x02" * 20, 7)


def test_a_completed_update_reads_as_its_log_status() -> None:
    ok = UpdateOutcome(UpdateResult.COMPLETED, CERT, "/c/a.pem", UpdateStatus.SUCCESS, None)
    assert (ok.text, ok.ok) == ("Update successful", True)
    failed = UpdateOutcome(
        UpdateResult.COMPLETED, CERT, "/c/a.pem", UpdateStatus.HTTP_ERROR, "HTTP 500"
    )
    assert (failed.text, failed.ok) == ("HTTP error (HTTP 500)", False)


def test_an_update_without_an_attempt_reads_as_its_detail_or_result() -> None:
    timed_out = UpdateOutcome(UpdateResult.TIMED_OUT, CERT, None, UpdateStatus.UNKNOWN, "late")
    assert (timed_out.text, timed_out.ok) == ("late", False)
    stopped = UpdateOutcome(UpdateResult.STOPPED, CERT, None, UpdateStatus.UNKNOWN, None)
    assert stopped.text == "stopped"
