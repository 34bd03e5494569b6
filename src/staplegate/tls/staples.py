"""The worker's staple table and the OCSP status callback OpenSSL calls during a handshake.

Theory of operation (each point answers a pitfall of pyOpenSSL's OCSP callback):

- Every SSL.Context carries the same `ocsp_status_callback`, registered once when the context
  is built, with a `StapleSlot` as its data: the precomputed table key of that context's
  certificate. Contexts are immutable after first use, so the callback never changes; what
  changes is the mapping inside the worker's one `StapleTable`, which applies the master's
  messages in place (`apply`: staples added, replaced or withdrawn; `replace`: the whole table,
  when the worker's pipe opens). Edits run on the worker's event-loop thread between
  handshakes, so a callback never sees a message half applied.
- The callback finds the table through the connection's app data (a `StapleRecorder`: the TLS
  endpoint), so each worker's `FrontendRuntime` owns its table and tests can inject a broken one.
- The callback does one dict lookup and nothing else: no I/O, no logging, no locks. It never
  raises (an exception would abort the handshake with a fatal alert and be re-raised from a
  later, unrelated pyOpenSSL call): any error means "no staple", and it is recorded.
- It only records what happened on the connection; the endpoint counts it in `StapleStats`
  when the handshake ends, because a HelloRetryRequest runs the callback twice.
- The table holds only staples the master found servable (verified, before nextUpdate minus
  the margin): the callback does not look at time. Withdrawing one is an `apply` that removes it.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from OpenSSL import SSL

from staplegate.ocsp.certid import CertId

log = logging.getLogger("staplegate.tls.staples")


class StapleOutcome(enum.Enum):
    """What the OCSP callback did for one handshake."""

    NOT_REQUESTED = "not requested"  # the client sent no status_request (or resumed)
    STAPLED = "stapled"
    NO_STAPLE = "no staple"
    MUST_STAPLE_MISSING = "must-staple certificate without a staple"
    CALLBACK_ERROR = "callback error"


@dataclass(frozen=True, slots=True)
class StapleSlot:
    """A context's callback data: its certificate's table key, computed once."""

    key: bytes | None  # CertId DER; None when the certificate has no CertId (no issuer)
    certificate: str  # the certificate's name, for the log line
    must_staple: bool
    generation: int


class StapleRecorder(Protocol):
    """What the callback expects as the connection's app data."""

    staples: StapleLookup
    staple_outcome: StapleOutcome
    staple_error: BaseException | None


class StapleLookup(Protocol):
    def lookup(self, key: bytes) -> bytes: ...


class StapleTable:
    """A worker's CertId → DER staples, edited in place as the master's messages arrive.

    Implements the `StapleLookup` the TLS callback reads (`lookup` by CertId DER). Edits run
    on the worker's single event-loop thread, between handshakes, so a reader never sees a
    message half applied and never locks; each CertId's DER key is computed once, when it
    first arrives.
    """

    __slots__ = ("_by_id", "_by_key", "_keys")

    def __init__(self, mapping: Mapping[CertId, bytes] | None = None) -> None:
        self._by_id: dict[CertId, bytes] = {}
        self._by_key: dict[bytes, bytes] = {}
        self._keys: dict[CertId, bytes] = {}  # CertId -> its DER (the lookup key)
        if mapping:
            self.replace(mapping)

    def _key(self, cert_id: CertId) -> bytes:
        key = self._keys.get(cert_id)
        if key is None:
            key = self._keys[cert_id] = cert_id.der
        return key

    def replace(self, mapping: Mapping[CertId, bytes]) -> None:
        """Hold exactly `mapping` (empty staples are no staple)."""
        by_id = {cert_id: bytes(der) for cert_id, der in mapping.items() if der}
        self._keys = {cert_id: self._key(cert_id) for cert_id in by_id}
        self._by_key = {self._keys[cert_id]: der for cert_id, der in by_id.items()}
        self._by_id = by_id

    def apply(self, changed: Mapping[CertId, bytes], removed: Iterable[CertId]) -> None:
        """Withdraw `removed`, then install `changed` (an empty staple withdraws too)."""
        for cert_id in removed:
            self._discard(cert_id)
        for cert_id, der in changed.items():
            if not der:
                self._discard(cert_id)
                continue
            self._by_id[cert_id] = bytes(der)
            self._by_key[self._key(cert_id)] = self._by_id[cert_id]

    def _discard(self, cert_id: CertId) -> None:
        if self._by_id.pop(cert_id, None) is not None:
            self._by_key.pop(self._keys.pop(cert_id), None)

    def lookup(self, key: bytes) -> bytes:
        """The staple for a CertId's DER, or b"" (the callback's "no staple")."""
        return self._by_key.get(key, b"")

    def get(self, cert_id: CertId) -> bytes | None:
        return self._by_id.get(cert_id)

    def snapshot(self) -> dict[CertId, bytes]:
        return dict(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[CertId]:
        return iter(self._by_id)


def ocsp_status_callback(conn: SSL.Connection, slot: StapleSlot | None) -> bytes:
    """OpenSSL's status callback: the staple for this context's certificate, or b"".

    Registered on every context; must return bytes and must never raise.
    """
    recorder: Any = None
    try:
        recorder = conn.get_app_data()
        der = recorder.staples.lookup(slot.key) if slot and slot.key is not None else b""
        if type(der) is not bytes:
            raise TypeError(f"staple table returned {type(der).__name__}, not bytes")
        if der:
            recorder.staple_outcome = StapleOutcome.STAPLED
        elif slot is not None and slot.must_staple:
            recorder.staple_outcome = StapleOutcome.MUST_STAPLE_MISSING
        else:
            recorder.staple_outcome = StapleOutcome.NO_STAPLE
        return der
    except Exception as error:
        try:
            recorder.staple_outcome = StapleOutcome.CALLBACK_ERROR
            recorder.staple_error = error
        except Exception:
            _UNATTRIBUTED.errors += 1
        return b""


class _Unattributed:
    """Callback errors that could not even be recorded on their connection."""

    errors = 0


_UNATTRIBUTED = _Unattributed()


def unattributed_callback_errors() -> int:
    """Errors the callback met before it could find its connection (should stay 0)."""
    return _UNATTRIBUTED.errors


class StapleStats:
    """Per-frontend staple counters (HAProxy 3.2's ssl_ocsp_staple / ssl_failed_ocsp_staple).

    `record` is called once per finished handshake. A must-staple certificate served without a
    staple is logged once per certificate and generation, not per handshake; callback errors
    are logged once per certificate and generation with the exception, then only counted.
    """

    def __init__(self) -> None:
        self.stapled = 0
        self.not_stapled = 0
        self.must_staple_missing = 0
        self.callback_errors = 0
        self._warned: set[tuple[str, int, StapleOutcome]] = set()

    @property
    def failed(self) -> int:
        """HAProxy's ssl_failed_ocsp_staple: the callback ran without a usable response."""
        return self.not_stapled + self.must_staple_missing + self.callback_errors

    def record(
        self, outcome: StapleOutcome, slot: StapleSlot, error: BaseException | None = None
    ) -> None:
        if outcome is StapleOutcome.STAPLED:
            self.stapled += 1
        elif outcome is StapleOutcome.NO_STAPLE:
            self.not_stapled += 1
        elif outcome is StapleOutcome.MUST_STAPLE_MISSING:
            self.must_staple_missing += 1
            self._warn_once(
                slot,
                outcome,
                "certificate %s has the OCSP must-staple extension but no valid staple: "
                "clients that enforce it refuse the connection; check its OCSP updates "
                "(`show ssl ocsp-updates`)",
                slot.certificate,
            )
        elif outcome is StapleOutcome.CALLBACK_ERROR:
            self.callback_errors += 1
            self._warn_once(
                slot,
                outcome,
                "OCSP status callback failed for certificate %s (served without a staple): %r",
                slot.certificate,
                error,
            )

    def _warn_once(self, slot: StapleSlot, outcome: StapleOutcome, *args: object) -> None:
        mark = (slot.certificate, slot.generation, outcome)
        if mark not in self._warned:
            self._warned.add(mark)
            log.warning(*args)
