"""The per-certificate OCSP state machine: events in, actions out, no I/O.

Theory of operation (h11 style). One `CertificateMachine` per certificate (per CertId). The
updater (updater/driver.py) feeds it events and performs the actions it returns, in order;
the machine never sleeps, fetches, writes or reads a clock — every event carries its `now`.

`_TRANSITIONS` at the bottom is the whole state machine: for each (state, event type) the
handler to run and, for each `Outcome` that handler can report, the next state. Handlers
never set the state; `handle()` does, from the table. A pair missing from the table is a
bug in the caller and raises `MachineMisuse`. In short::

    NEW       --Start-->                  WAITING (auto-update, usable URI) | IDLE
    WAITING   --Tick (due)-->             FETCHING, emits Fetch
    FETCHING  --FetchSucceeded/Failed-->  WAITING (auto-update) | IDLE (one-shot done)
    IDLE      --UpdateRequested-->        WAITING (one-shot, due now)
    any       --CertificateReplaced-->    RETIRED (withdraws the staple; terminal)

`Tick`, `ManualSet` and `UpdateRequested` are accepted in every live state (`SharedStaple`,
a fleet member's staple, in WAITING and IDLE: a fetch in flight decides for itself); a `ManualSet`
while WAITING brings the next attempt forward when the new staple needs it sooner. Staple
rules, whatever the state: only a verified, unexpired staple is installed; the last good
staple keeps being served while `servable`; it is withdrawn at its `expire` (nextUpdate -
`verify.WITHDRAWAL_MARGIN`); a fetched response older (earlier thisUpdate) than the held one
is not installed. HAProxy's counters (successes, failures, consecutive failures, last success
time, last status and its 3.2 detail) are kept here and shown by the runtime API.

Failures of kind INTERNAL (no request could be made) count as failures but keep status 0
and log nothing, as HAProxy does; HTTP-level failures are status 2 or 3 and, unlike HAProxy,
carry a detail (`2 "HTTP error (timeout after 10 s)"`) because an opaque "HTTP error" was a
top complaint in HAProxy's issue tracker.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography import x509

from staplegate.ocsp.certid import CertId
from staplegate.ocsp.logline import UpdateStatus, format_update_line, status_text
from staplegate.ocsp.request import (
    OcspHttpRequest,
    OcspUriError,
    build_request,
    http_request_for,
)
from staplegate.ocsp.schedule import (
    UpdateSettings,
    fetched_at,
    jitter,
    refresh_at_after_failure,
    refresh_at_after_success,
    refresh_at_start,
)
from staplegate.ocsp.verify import (
    DEFAULT_SKEW,
    WITHDRAWAL_MARGIN_S,
    CertStatus,
    VerificationError,
    VerifiedStaple,
    still_valid_at,
    verify_response,
)

#: HAProxy works in whole seconds: a staple is still served during the second of `expire`.
WITHDRAW_AFTER_EXPIRE = dt.timedelta(seconds=1)


class State(enum.Enum):
    NEW = "new"
    WAITING = "waiting"  # an attempt is scheduled
    FETCHING = "fetching"  # a Fetch action is outstanding
    IDLE = "idle"  # nothing scheduled (auto-update off, or no usable OCSP URI)
    RETIRED = "retired"  # certificate replaced; terminal


class FetchFailureKind(enum.Enum):
    """What went wrong while fetching, in the machine's terms (HAProxy status 0, 2 or 3).

    `fetch.client.FetchFailure` is finer; the updater maps it: INVALID_URL -> INTERNAL;
    DNS_FAILED, CONNECT_FAILED, TLS_FAILED, PROXY_FAILED, CONNECTION_LOST, PROTOCOL_ERROR
    -> CONNECT; TIMEOUT -> TIMEOUT; HTTP_STATUS -> HTTP_STATUS; WRONG_CONTENT_TYPE ->
    CONTENT_TYPE; BODY_TOO_LARGE -> TOO_LARGE; EMPTY_BODY -> send `FetchSucceeded(b"")`,
    which fails verification as unparsable (status 4; HAProxy counts it as a success).
    Pass fetch's own sentence as `detail`: it becomes the log line's ` (detail)`.
    """

    HTTP_STATUS = "http-status"  # a status line other than 200
    CONNECT = "connect"  # DNS, refused, unreachable, TLS (HAProxy: internal 503)
    TIMEOUT = "timeout"  # ours; HAProxy has no response timeout
    TOO_LARGE = "too-large"  # ours; body above the size cap
    CONTENT_TYPE = "content-type"  # no Content-Type: application/ocsp-response
    INTERNAL = "internal"  # the request could not be made at all

    @property
    def status(self) -> UpdateStatus:
        if self is FetchFailureKind.CONTENT_TYPE:
            return UpdateStatus.MISSING_CONTENT_TYPE
        if self is FetchFailureKind.INTERNAL:
            return UpdateStatus.UNKNOWN
        return UpdateStatus.HTTP_ERROR


class Outcome(enum.Enum):
    """What a handler did; with the state and the event type, `_TRANSITIONS` gives the next
    state."""

    SCHEDULED = "scheduled"  # an attempt is scheduled (`next_attempt` set)
    UNSCHEDULED = "unscheduled"  # nothing scheduled: auto-update off or the one-shot is done
    DUE = "due"  # the scheduled attempt is due: a Fetch was emitted
    UNCHANGED = "unchanged"  # nothing that moves the machine
    ENDED = "ended"  # the certificate was replaced


class LogLevel(enum.Enum):
    INFO = "info"
    NOTICE = "notice"  # HAProxy 3.x logs <OCSP-UPDATE> lines at notice
    WARNING = "warning"
    ALERT = "alert"


# --- events ---


@dataclass(frozen=True)
class Start:
    """Begin managing the certificate; `stored` are candidate staples from the store.

    A candidate is DER, verified here, or a `VerifiedStaple` that passed `verify_response`
    for this certificate at an earlier moment (updater/precheck.py, in a forked copy of this
    process while the master built its TLS contexts): only its time-dependent checks are
    run again (`verify.still_valid_at`), and should one fail, its DER is verified in full.
    Nothing from outside the process tree is ever passed as a `VerifiedStaple`.
    """

    now: dt.datetime
    stored: tuple[bytes | VerifiedStaple, ...] = ()


@dataclass(frozen=True)
class Tick:
    """Time passed (a WakeAt fired, or the updater polls)."""

    now: dt.datetime


@dataclass(frozen=True)
class FetchSucceeded:
    """The responder answered 200 with the right Content-Type; `der` is the body.

    `fresh_until`: until when the responder's caching headers (max-age, Expires) say asking
    again returns the same answer (fetch/caching.py); None without a hint.
    """

    now: dt.datetime
    der: bytes
    fresh_until: dt.datetime | None = None
    answered_by: str | None = None
    """The responder URI that answered (one of the certificate's; None: the first)."""


@dataclass(frozen=True)
class FetchFailed:
    now: dt.datetime
    kind: FetchFailureKind
    detail: str | None = None


@dataclass(frozen=True)
class ManualSet:
    """`set ssl ocsp-response`: an operator pushes a response."""

    now: dt.datetime
    der: bytes


@dataclass(frozen=True)
class SharedStaple:
    """Another fleet member's staple, read from the shared store: untrusted until verified."""

    now: dt.datetime
    der: bytes


@dataclass(frozen=True)
class UpdateRequested:
    """`update ssl ocsp-response`: fetch as soon as possible (once, if auto-update is off)."""

    now: dt.datetime


@dataclass(frozen=True)
class CertificateReplaced:
    now: dt.datetime


Event = (
    Start
    | Tick
    | FetchSucceeded
    | FetchFailed
    | ManualSet
    | SharedStaple
    | UpdateRequested
    | CertificateReplaced
)


# --- actions ---


@dataclass(frozen=True)
class Fetch:
    """Ask `uri`; when it fails (no HTTP answer, an HTTP error), each of `alternatives`."""

    cert_id: CertId
    uri: str
    request: OcspHttpRequest
    alternatives: tuple[tuple[str, OcspHttpRequest], ...] = ()


@dataclass(frozen=True)
class Install:
    staple: VerifiedStaple


@dataclass(frozen=True)
class Withdraw:
    cert_id: CertId


@dataclass(frozen=True)
class Persist:
    staple: VerifiedStaple


@dataclass(frozen=True)
class WakeAt:
    """Send a Tick at `when` (replaces any earlier WakeAt for this certificate)."""

    when: dt.datetime


@dataclass(frozen=True)
class Log:
    level: LogLevel
    message: str


@dataclass(frozen=True)
class RevocationDetected:
    """A verified answer says the certificate is revoked: alert, metric, hook."""

    staple: VerifiedStaple


@dataclass(frozen=True)
class Rejected:
    """A ManualSet candidate failed verification; the runtime API reports `error`."""

    error: VerificationError


Action = Fetch | Install | Withdraw | Persist | WakeAt | Log | RevocationDetected | Rejected


class MachineMisuse(RuntimeError):
    """The caller sent an event the current state cannot accept (a bug in the caller)."""


@dataclass(frozen=True)
class Counters:
    """HAProxy's per-entry update bookkeeping (`show ssl ocsp-updates`)."""

    successes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_success: dt.datetime | None = None
    last_status: UpdateStatus = UpdateStatus.UNKNOWN
    last_detail: str | None = None
    #: failed attempts by their status code (metrics: staplegate_ocsp_updates_total{result})
    failures_by_status: Mapping[UpdateStatus, int] = field(default_factory=dict)

    @property
    def status_text(self) -> str:
        """Text with the 3.2 detail, kept while the next attempt runs (status 0)."""
        return status_text(self.last_status, self.last_detail)


@dataclass
class CertificateMachine:
    """OCSP state of one certificate; drive it with `handle(event)`."""

    certificate: x509.Certificate
    issuer: x509.Certificate
    path: str
    uri: str | None
    settings: UpdateSettings = field(default_factory=UpdateSettings)
    rng: random.Random = field(default_factory=random.Random)
    auto_update: bool = True
    skew: dt.timedelta = DEFAULT_SKEW
    user_agent: str = field(kw_only=True)
    """The requests' User-Agent (`fetch.client.USER_AGENT`)."""
    fallback_uris: tuple[str, ...] = field(default=(), kw_only=True)
    """Further responders (the AIA's other OCSP URLs), asked in order when one fails."""

    state: State = field(default=State.NEW, init=False)
    staple: VerifiedStaple | None = field(default=None, init=False)
    installed: bool = field(default=False, init=False)
    next_attempt: dt.datetime | None = field(default=None, init=False)
    one_shot: bool = field(default=False, init=False)
    counters: Counters = field(default_factory=Counters, init=False)
    cert_id: CertId = field(init=False)
    _request: OcspHttpRequest | None = field(default=None, init=False, repr=False)
    _uri_problem: str | None = field(default=None, init=False, repr=False)
    _endpoints: list[tuple[str, OcspHttpRequest]] = field(
        default_factory=list, init=False, repr=False
    )

    def __post_init__(self) -> None:
        self.cert_id = CertId.for_certificate(self.certificate, self.issuer)
        der = build_request(self.cert_id)
        try:
            self._request = http_request_for(self.uri or "", der, user_agent=self.user_agent)
        except OcspUriError as error:
            self._uri_problem = str(error)
        else:
            self._endpoints.append((self.uri or "", self._request))
        if self._request is None:
            return  # as HAProxy: an unusable first URI disables updates
        for uri in self.fallback_uris:
            with contextlib.suppress(OcspUriError):  # an unusable fallback is skipped
                self._endpoints.append(
                    (uri, http_request_for(uri, der, user_agent=self.user_agent))
                )

    @property
    def answering_uri(self) -> str | None:
        """The responder asked first: the last one that answered (initially `uri`)."""
        return self._endpoints[0][0] if self._endpoints else self.uri

    # --- public ---

    def handle(self, event: Event) -> list[Action]:
        """Apply one event; return the actions to perform, in order."""
        transition = _TRANSITIONS.get((self.state, type(event)))
        if transition is None:
            raise MachineMisuse(
                f"{type(event).__name__} is not accepted in state {self.state.value} "
                f"(certificate {self.path})"
            )
        handler, next_states = transition
        actions: list[Action] = []
        self._withdraw_if_expired(event.now, actions)
        self.state = next_states[handler(self, event, actions)]
        self._wake(event.now, actions)
        return actions

    @property
    def can_fetch(self) -> bool:
        return self._request is not None

    def servable_staple(self, now: dt.datetime) -> VerifiedStaple | None:
        """The staple to serve at `now`, if any."""
        if self.staple is not None and self.installed and self.staple.servable(now):
            return self.staple
        return None

    # --- handlers (see _TRANSITIONS; each returns what it did, never sets the state) ---

    def _on_start(self, event: Start, actions: list[Action]) -> Outcome:
        now = event.now
        for candidate in event.stored:
            try:
                staple = self._start_candidate(candidate, now)
            except VerificationError as error:
                actions.append(
                    Log(
                        LogLevel.WARNING, f"{self.path}: Loading: {error}. Content will be ignored."
                    )
                )
                continue
            if self.staple is None or staple.this_update >= self.staple.this_update:
                self.staple = staple
        if self.staple is not None:
            self._install(self.staple, actions, persist=False)
        if self._request is None:
            if self.auto_update:
                actions.append(
                    Log(
                        LogLevel.WARNING,
                        f"{self.path}: OCSP update disabled for this certificate: "
                        f"{self._uri_problem}",
                    )
                )
            return Outcome.UNSCHEDULED
        if not self.auto_update:
            return Outcome.UNSCHEDULED
        if self.staple is None:
            return self._schedule(now, now)  # no staple: due now
        staple = self.staple
        attempt = refresh_at_start(
            now=now,
            fetched=fetched_at(
                produced_at=staple.produced_at, this_update=staple.this_update, now=now
            ),
            expire=staple.expire(),
            settings=self.settings,
            rng=self.rng,
        )
        self.next_attempt = attempt  # already jittered
        return Outcome.SCHEDULED

    def _on_tick(self, event: Tick, actions: list[Action]) -> Outcome:
        """WAITING only: fetch when the scheduled attempt is due."""
        if self.next_attempt is None or event.now < self.next_attempt or self._request is None:
            return Outcome.UNCHANGED
        self.next_attempt = None
        # status 0 while fetching; the previous detail stays, as 3.2 shows it
        self.counters = replace(self.counters, last_status=UpdateStatus.UNKNOWN)
        (uri, request), *others = self._endpoints
        actions.append(Fetch(self.cert_id, uri, request, tuple(others)))
        return Outcome.DUE

    def _on_fetch_succeeded(self, event: FetchSucceeded, actions: list[Action]) -> Outcome:
        now = event.now
        # remember the responder that answered: it is asked first next time
        for index, (uri, _) in enumerate(self._endpoints):
            if uri == event.answered_by and index > 0:
                self._endpoints.insert(0, self._endpoints.pop(index))
                break
        try:
            staple = self._verify(event.der, now)
        except VerificationError as error:
            status = UpdateStatus(error.haproxy_status)
            return self._failed(now, status, error.haproxy_detail, actions)
        self.counters = replace(
            self.counters,
            successes=self.counters.successes + 1,
            consecutive_failures=0,
            last_success=now,
            last_status=UpdateStatus.SUCCESS,
            last_detail=None,
        )
        self._log_update(actions)
        held = self.staple
        if held is not None and staple.this_update < held.this_update:
            actions.append(
                Log(
                    LogLevel.INFO,
                    f"{self.path}: fetched response (thisUpdate {staple.this_update}) is "
                    f"older than the one served (thisUpdate {held.this_update}); kept the "
                    "newer one",
                )
            )
            if not self.installed and held.servable(now):
                self._install(held, actions, persist=False)
        else:
            self._install(staple, actions, persist=True)
        held_expire = self.staple.expire() if self.staple is not None else staple.expire()
        attempt = refresh_at_after_success(
            now=now, expire=held_expire, settings=self.settings, fresh_until=event.fresh_until
        )
        return self._after_attempt(attempt, now, actions, not_before=event.fresh_until)

    def _on_fetch_failed(self, event: FetchFailed, actions: list[Action]) -> Outcome:
        return self._failed(event.now, event.kind.status, event.detail, actions)

    def _on_manual_set(self, event: ManualSet, actions: list[Action]) -> Outcome:
        try:
            staple = self._verify(event.der, event.now)
        except VerificationError as error:
            actions.append(Rejected(error))
            return Outcome.UNCHANGED
        self._install(staple, actions, persist=True)
        if self.state is State.WAITING:
            # Refresh from the staple now held: a short-lived one must be replaced before
            # its own withdrawal, not when the previous staple would have needed it. A sooner
            # attempt already scheduled (a failure's retry, a requested update) stays.
            attempt = refresh_at_after_success(
                now=event.now, expire=staple.expire(), settings=self.settings
            )
            if self.next_attempt is None or attempt < self.next_attempt:
                self._schedule(attempt, event.now)
        return Outcome.UNCHANGED

    def _on_shared_staple(self, event: SharedStaple, actions: list[Action]) -> Outcome:
        """A fleet member's staple: installed only when it verifies and is newer than the one
        held (a replayed or equally old one changes nothing); while WAITING, the next attempt
        follows its times (when it was fetched), so the fleet asks once per refresh, not
        once per instance."""
        now = event.now
        try:
            staple = self._verify(event.der, now)
        except VerificationError as error:
            actions.append(
                Log(
                    LogLevel.WARNING,
                    f"{self.path}: staple from the shared store refused: {error}. "
                    "Content will be ignored.",
                )
            )
            return Outcome.UNCHANGED
        held = self.staple
        if held is not None and staple.this_update <= held.this_update:
            return Outcome.UNCHANGED
        self._install(staple, actions, persist=True)
        actions.append(
            Log(
                LogLevel.NOTICE,
                f"{self.path}: staple from the shared store installed "
                f"(thisUpdate {staple.this_update:%Y-%m-%d %H:%M:%S}Z)",
            )
        )
        if self.state is State.WAITING:
            self.next_attempt = refresh_at_start(
                now=now,
                fetched=fetched_at(
                    produced_at=staple.produced_at, this_update=staple.this_update, now=now
                ),
                expire=staple.expire(),
                settings=self.settings,
                rng=self.rng,
            )
        return Outcome.UNCHANGED

    def _on_update_requested(self, event: UpdateRequested, actions: list[Action]) -> Outcome:
        if self._request is None:
            actions.append(
                Log(LogLevel.WARNING, f"{self.path}: cannot update: {self._uri_problem}")
            )
            return Outcome.UNCHANGED
        if self.state is State.IDLE:
            self.one_shot = True
        self.next_attempt = event.now
        return Outcome.SCHEDULED

    def _ignore(self, event: Event, actions: list[Action]) -> Outcome:
        """Accepted and deliberately without effect (see _TRANSITIONS)."""
        return Outcome.UNCHANGED

    def _on_replaced(self, event: CertificateReplaced, actions: list[Action]) -> Outcome:
        if self.installed:
            actions.append(Withdraw(self.cert_id))
            self.installed = False
        self.next_attempt = None
        return Outcome.ENDED

    # --- helpers ---

    def _start_candidate(
        self, candidate: bytes | VerifiedStaple, now: dt.datetime
    ) -> VerifiedStaple:
        """A start-up candidate as a staple for this certificate at `now` (see `Start`), or
        VerificationError."""
        if isinstance(candidate, bytes):
            return self._verify(candidate, now)
        if candidate.cert_id != self.cert_id:
            raise MachineMisuse(
                f"a staple verified for {candidate.cert_id.hex} given to {self.cert_id.hex} "
                f"(certificate {self.path})"
            )
        if still_valid_at(candidate, now=now, skew=self.skew):
            return candidate
        return self._verify(candidate.der, now)  # a time check failed: say which, in full

    def _verify(self, der: bytes, now: dt.datetime) -> VerifiedStaple:
        return verify_response(
            der, certificate=self.certificate, issuer=self.issuer, now=now, skew=self.skew
        )

    def _expire(self) -> dt.datetime | None:
        return self.staple.expire() if self.staple is not None else None

    def _install(self, staple: VerifiedStaple, actions: list[Action], *, persist: bool) -> None:
        self.staple = staple
        self.installed = True
        actions.append(Install(staple))
        if persist:
            actions.append(Persist(staple))
        if staple.status is CertStatus.REVOKED:
            actions.append(RevocationDetected(staple))
            actions.append(
                Log(
                    LogLevel.ALERT,
                    f"{self.path}: certificate serial {self.certificate.serial_number:X} is "
                    f"REVOKED (since {staple.revocation_time}, reason "
                    f"{staple.revocation_reason or 'unspecified'}); replace it",
                )
            )

    def _withdraw_if_expired(self, now: dt.datetime, actions: list[Action]) -> None:
        if self.installed and self.staple is not None and not self.staple.servable(now):
            self.installed = False
            actions.append(Withdraw(self.cert_id))
            actions.append(
                Log(
                    LogLevel.WARNING,
                    f"{self.path}: OCSP staple withdrawn: its nextUpdate "
                    f"{self.staple.next_update} is less than {WITHDRAWAL_MARGIN_S} s away and "
                    "no newer response could be fetched",
                )
            )

    def _failed(
        self, now: dt.datetime, status: UpdateStatus, detail: str | None, actions: list[Action]
    ) -> Outcome:
        self.counters = replace(
            self.counters,
            failures=self.counters.failures + 1,
            consecutive_failures=self.counters.consecutive_failures + 1,
            last_status=status,
            last_detail=detail,
            failures_by_status={
                **self.counters.failures_by_status,
                status: self.counters.failures_by_status.get(status, 0) + 1,
            },
        )
        if status is not UpdateStatus.UNKNOWN:
            self._log_update(actions)
        attempt = refresh_at_after_failure(
            now=now,
            expire=self._expire(),
            consecutive_failures=self.counters.consecutive_failures,
            settings=self.settings,
        )
        return self._after_attempt(attempt, now, actions)

    def _log_update(self, actions: list[Action]) -> None:
        line = format_update_line(
            path=self.path,
            status=self.counters.last_status,
            detail=self.counters.last_detail,
            failures=self.counters.failures,
            successes=self.counters.successes,
        )
        actions.append(Log(LogLevel.NOTICE, line))

    def _after_attempt(
        self,
        attempt: dt.datetime,
        now: dt.datetime,
        actions: list[Action],
        *,
        not_before: dt.datetime | None = None,
    ) -> Outcome:
        if self.one_shot or not self.auto_update:
            self.one_shot = False
            self.next_attempt = None
            return Outcome.UNSCHEDULED
        expiry = self.certificate.not_valid_after_utc
        if attempt >= expiry:
            # a staple never outlives its certificate in the schedule: asking about an
            # expired certificate serves nobody (`update ssl ocsp-response` still can)
            self.next_attempt = None
            actions.append(
                Log(
                    LogLevel.INFO,
                    f"{self.path}: the certificate expires at {expiry:%Y-%m-%dT%H:%M:%SZ}, "
                    "before its next OCSP update would be due; automatic updates stop "
                    "(replace the certificate)",
                )
            )
            return Outcome.UNSCHEDULED
        return self._schedule(attempt, now, not_before=not_before)

    def _schedule(
        self, attempt: dt.datetime, now: dt.datetime, *, not_before: dt.datetime | None = None
    ) -> Outcome:
        self.next_attempt = jitter(
            attempt,
            now=now,
            expire=self._expire(),
            settings=self.settings,
            rng=self.rng,
            not_before=not_before,
        )
        return Outcome.SCHEDULED

    def _wake(self, now: dt.datetime, actions: list[Action]) -> None:
        """Ask for the next Tick: the next attempt or the staple's withdrawal, whichever first."""
        if self.state is State.RETIRED:
            return
        times = []
        if self.state is State.WAITING and self.next_attempt is not None:
            times.append(max(self.next_attempt, now))
        if self.installed and self.staple is not None:
            times.append(self.staple.expire() + WITHDRAW_AFTER_EXPIRE)
        if times:
            actions.append(WakeAt(min(times)))


_Handler = Callable[[CertificateMachine, Any, list[Action]], Outcome]
_M = CertificateMachine
_NEW, _WAITING, _FETCHING, _IDLE, _RETIRED = (
    State.NEW, State.WAITING, State.FETCHING, State.IDLE, State.RETIRED,
)  # fmt: skip
_SCHEDULED, _UNSCHEDULED, _DUE, _UNCHANGED, _ENDED = (
    Outcome.SCHEDULED, Outcome.UNSCHEDULED, Outcome.DUE, Outcome.UNCHANGED, Outcome.ENDED,
)  # fmt: skip

#: The machine: (state, event type) -> (handler, the next state for each outcome it reports).
#: A missing pair is a misuse of the machine; a missing outcome, a bug in a handler.
_TRANSITIONS: dict[tuple[State, type[Event]], tuple[_Handler, dict[Outcome, State]]] = {
    (_NEW, Start): (_M._on_start, {_SCHEDULED: _WAITING, _UNSCHEDULED: _IDLE}),
    (_NEW, CertificateReplaced): (_M._on_replaced, {_ENDED: _RETIRED}),
    (_WAITING, Tick): (_M._on_tick, {_DUE: _FETCHING, _UNCHANGED: _WAITING}),
    (_WAITING, ManualSet): (_M._on_manual_set, {_UNCHANGED: _WAITING}),
    (_WAITING, SharedStaple): (_M._on_shared_staple, {_UNCHANGED: _WAITING}),
    (_WAITING, UpdateRequested): (
        _M._on_update_requested, {_SCHEDULED: _WAITING, _UNCHANGED: _WAITING},
    ),
    (_WAITING, CertificateReplaced): (_M._on_replaced, {_ENDED: _RETIRED}),
    (_FETCHING, Tick): (_M._ignore, {_UNCHANGED: _FETCHING}),  # the fetch's result decides
    (_FETCHING, ManualSet): (_M._on_manual_set, {_UNCHANGED: _FETCHING}),
    (_FETCHING, UpdateRequested): (_M._ignore, {_UNCHANGED: _FETCHING}),  # as HAProxy
    (_FETCHING, FetchSucceeded): (
        _M._on_fetch_succeeded, {_SCHEDULED: _WAITING, _UNSCHEDULED: _IDLE},
    ),
    (_FETCHING, FetchFailed): (_M._on_fetch_failed, {_SCHEDULED: _WAITING, _UNSCHEDULED: _IDLE}),
    (_FETCHING, CertificateReplaced): (_M._on_replaced, {_ENDED: _RETIRED}),
    (_IDLE, Tick): (_M._ignore, {_UNCHANGED: _IDLE}),  # only the staple's withdrawal
    (_IDLE, ManualSet): (_M._on_manual_set, {_UNCHANGED: _IDLE}),
    (_IDLE, SharedStaple): (_M._on_shared_staple, {_UNCHANGED: _IDLE}),
    (_IDLE, UpdateRequested): (_M._on_update_requested, {_SCHEDULED: _WAITING, _UNCHANGED: _IDLE}),
    (_IDLE, CertificateReplaced): (_M._on_replaced, {_ENDED: _RETIRED}),
    (_RETIRED, Tick): (_M._ignore, {_UNCHANGED: _RETIRED}),  # a timer that fired after retirement
}  # fmt: skip


def accepted_events(state: State) -> list[type[Event]]:
    """The event types `state` accepts (for tests and diagnostics)."""
    return [event for (s, event) in _TRANSITIONS if s is state]
