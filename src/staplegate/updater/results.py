"""What the updater answers: the runtime API's result and snapshot types.

Plain frozen values, so the runtime API (runtime/handlers.py) and its unit tests can use them
without an updater, and a fake of the service can build them (runtime/contract.py's
`OcspService` protocol is the interface they travel through).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from staplegate.ocsp.certid import CertId
from staplegate.ocsp.logline import UpdateStatus, status_text
from staplegate.ocsp.machine import State
from staplegate.ocsp.verify import CertStatus, FailureReason

#: HAProxy's `set ssl ocsp-response` success answer, as scripts match it.
RESPONSE_UPDATED = "OCSP Response updated!"
#: HAProxy's refusal when no entry has the response's CertId, as scripts match it.
NO_MATCHING_CERTIFICATE = (
    "OCSP single response: Certificate ID does not match any certificate or issuer"
)


class UpdateResult(enum.Enum):
    """How an `update_now` request ended."""

    COMPLETED = "completed"
    """An attempt ran; `status` says how it went (1 = success)."""
    TIMED_OUT = "timed-out"
    """No result within the timeout; the attempt goes on and will be logged."""
    CANNOT_FETCH = "cannot-fetch"
    """The certificate has no usable OCSP URI; nothing was sent."""
    UNKNOWN_CERTIFICATE = "unknown-certificate"
    """No managed certificate has this CertId."""
    STOPPED = "stopped"
    """The updater stopped before the attempt finished."""


@dataclass(frozen=True)
class UpdateOutcome:
    """The answer to `update ssl ocsp-response`: unlike HAProxy we wait and report."""

    result: UpdateResult
    cert_id: CertId
    path: str | None
    status: UpdateStatus
    detail: str | None
    successes: int = 0
    failures: int = 0

    @property
    def text(self) -> str:
        """`<text>[ (<detail>)]`, as in the log line and `show ssl ocsp-updates`."""
        if self.result is UpdateResult.COMPLETED:
            return status_text(self.status, self.detail)
        return self.detail or self.result.value

    @property
    def ok(self) -> bool:
        return self.result is UpdateResult.COMPLETED and self.status is UpdateStatus.SUCCESS


class SetRefusal(enum.Enum):
    """Why `set_response` did not install a response."""

    UNREADABLE = "unreadable"
    """Not a successful DER OCSPResponse; `failure` says which (UNPARSABLE, NOT_SUCCESSFUL...)."""
    NO_MATCHING_CERTIFICATE = "no-matching-certificate"
    """Its CertId names no certificate this updater manages."""
    VERIFICATION_FAILED = "verification-failed"
    """The certificate's checks refused it; `failure` says which."""
    UNSUPPORTED_HASH = "unsupported-hash"
    """Its CertId uses a hash algorithm we cannot compute (e.g. MD5): it names nothing."""


@dataclass(frozen=True)
class SetOutcome:
    """The answer to `set ssl ocsp-response`; `message` is HAProxy's text (no final period)."""

    accepted: bool
    message: str
    cert_id: CertId | None = None
    path: str | None = None
    refusal: SetRefusal | None = None
    failure: FailureReason | None = None
    hint: str | None = None
    """What the operator can do about a refusal."""


@dataclass(frozen=True)
class StapleSummary:
    """What the held staple says (`show ssl ocsp-response` fields)."""

    status: CertStatus
    this_update: dt.datetime
    next_update: dt.datetime
    produced_at: dt.datetime
    revocation_time: dt.datetime | None
    served: bool
    """True while it is in the staple table (verified and not withdrawn)."""


@dataclass(frozen=True)
class EntrySnapshot:
    """One OCSP entry (one CertId) for the runtime API and metrics."""

    path: str
    paths: tuple[str, ...]
    """Every configured file holding this certificate, the first being `path`."""
    cert_id: CertId
    cert_id_hex: str
    uri: str | None
    auto_update: bool
    state: State
    next_attempt: dt.datetime | None
    successes: int
    failures: int
    last_status: UpdateStatus
    last_status_text: str
    """With the 3.2 detail, e.g. `HTTP error (HTTP 500 from http://...)`."""
    last_success: dt.datetime | None
    revocations: int
    staple: StapleSummary | None
    failures_by_status: Mapping[UpdateStatus, int] = field(default_factory=dict)
    """Failed attempts by `<OCSP-UPDATE>` status code (their sum is `failures`)."""


class UpdaterNotRunning(RuntimeError):
    """A runtime hook was called before `run()` set `started` or after it ended."""


@dataclass(frozen=True)
class SharedStoreState:
    """The fleet's shared store as the metrics show it (`ocsp-update.shared-store`)."""

    url: str
    """Scheme, host, port and database; never a password."""
    up: bool
    leases_held: int
    fallbacks: int
    """Fetches made on our own because Redis was down or a peer's lease wait ran out."""
    outages: int
    peer_staples: int
    """Fetches answered by another instance's staple (no request of ours)."""
    published: int
