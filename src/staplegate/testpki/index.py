"""openssl `ca`'s index.txt database: read and write it exactly as `openssl ca` does.

Each line has six tab-separated fields: status (`V` valid, `R` revoked, `E` expired),
expiry time, revocation time with an optional `,reason`, serial in uppercase hex (an even
number of digits), file name (`unknown`) and the subject in openssl's one-line `/K=V/...`
form. Times are UTCTime `YYMMDDHHMMSSZ` before 2050 and GeneralizedTime after, as openssl
writes them.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from cryptography import x509


class IndexFileError(ValueError):
    """A malformed line in index.txt; carries the file and line number."""

    def __init__(self, path: Path, line_number: int, message: str) -> None:
        super().__init__(f"{path}:{line_number}: {message}")
        self.path = path
        self.line_number = line_number


class EntryStatus(enum.Enum):
    VALID = "V"
    REVOKED = "R"
    EXPIRED = "E"


# RFC 5280 CRLReason names as openssl writes them in index.txt, and the reason each stands for.
_REASON_FLAGS: Final = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "CACompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "certificateHold": x509.ReasonFlags.certificate_hold,
    "removeFromCRL": x509.ReasonFlags.remove_from_crl,
}
REVOCATION_REASONS: Final = tuple(_REASON_FLAGS)
# openssl's pseudo reasons (`-crl_compromise`, `-crl_CA_compromise`) and what they mean.
_PSEUDO_REASONS: Final = {
    "keyTime": x509.ReasonFlags.key_compromise,
    "CAkeyTime": x509.ReasonFlags.ca_compromise,
}


def crl_reason(index_reason: str | None) -> x509.ReasonFlags | None:
    """The CRLReason of an index.txt reason field (`certificateHold,holdInstr` -> hold).

    The reason field may carry `,extra` after the name; openssl's pseudo reasons map to key or
    CA compromise; an unknown name has no reason. The CA's CRLs and the responder's answers
    both read reasons here, so they agree.
    """
    if not index_reason:
        return None
    head = index_reason.split(",", 1)[0]
    return _REASON_FLAGS.get(head) or _PSEUDO_REASONS.get(head)


def format_time(when: dt.datetime) -> str:
    when = when.astimezone(dt.UTC)
    if when.year < 2050:
        return when.strftime("%y%m%d%H%M%SZ")
    return when.strftime("%Y%m%d%H%M%SZ")


def parse_time(text: str) -> dt.datetime:
    if len(text) == 13:
        parsed = dt.datetime.strptime(text, "%y%m%d%H%M%SZ")
        # UTCTime: YY >= 50 means 19YY (RFC 5280 §4.1.2.5.1).
        if parsed.year >= 2050:
            parsed = parsed.replace(year=parsed.year - 100)
    elif len(text) == 15:
        parsed = dt.datetime.strptime(text, "%Y%m%d%H%M%SZ")
    else:
        raise ValueError(f"bad time {text!r}")
    return parsed.replace(tzinfo=dt.UTC)


def format_serial(serial: int) -> str:
    text = f"{serial:X}"
    return text if len(text) % 2 == 0 else "0" + text


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One certificate known to the CA."""

    status: EntryStatus
    expires: dt.datetime
    serial: int
    subject: str
    revoked_at: dt.datetime | None = None
    revocation_reason: str | None = None
    filename: str = "unknown"

    def to_line(self) -> str:
        revocation = ""
        if self.revoked_at is not None:
            revocation = format_time(self.revoked_at)
            if self.revocation_reason:
                revocation += "," + self.revocation_reason
        return "\t".join(
            (
                self.status.value,
                format_time(self.expires),
                revocation,
                format_serial(self.serial),
                self.filename,
                self.subject,
            )
        )

    def revoked(self, when: dt.datetime, reason: str | None) -> IndexEntry:
        if reason is not None and reason not in REVOCATION_REASONS:
            raise ValueError(
                f"unknown revocation reason {reason!r}; use one of {', '.join(REVOCATION_REASONS)}"
            )
        return replace(self, status=EntryStatus.REVOKED, revoked_at=when, revocation_reason=reason)


def parse_line(line: str) -> IndexEntry:
    fields = line.rstrip("\n").split("\t")
    if len(fields) != 6:
        raise ValueError(f"expected 6 tab-separated fields, found {len(fields)}")
    status_text, expires_text, revocation_text, serial_text, filename, subject = fields
    try:
        status = EntryStatus(status_text)
    except ValueError:
        raise ValueError(f"unknown status {status_text!r} (expected V, R or E)") from None
    revoked_at = None
    reason = None
    if revocation_text:
        time_text, _, reason_text = revocation_text.partition(",")
        revoked_at = parse_time(time_text)
        reason = reason_text or None
    return IndexEntry(
        status=status,
        expires=parse_time(expires_text),
        serial=int(serial_text, 16),
        subject=subject,
        revoked_at=revoked_at,
        revocation_reason=reason,
        filename=filename,
    )


def read_index(path: Path) -> list[IndexEntry]:
    entries = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                entries.append(parse_line(line))
            except ValueError as error:
                raise IndexFileError(path, number, str(error)) from None
    return entries


def write_index(path: Path, entries: Iterable[IndexEntry]) -> None:
    """Replace index.txt atomically, keeping openssl's `.old` backup convention."""
    text = "".join(entry.to_line() + "\n" for entry in entries)
    if path.exists():
        old = path.with_name(path.name + ".old")
        old.write_bytes(path.read_bytes())
    # mkstemp creates 0600; keep the mode openssl would leave (existing mode, else 0644-umask)
    # so other users that may read the CA (an OCSP responder) still can.
    if path.exists():
        mode = path.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o644 & ~umask
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".index.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp_name, path)
    except BaseException:
        os.unlink(temp_name)
        raise
