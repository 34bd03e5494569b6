"""CertificateMachine: events in, actions out, driven with real DER and explicit `now`s."""

from __future__ import annotations

import datetime as dt
import random
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from staplegate.clock import ManualClock
from staplegate.fetch.client import USER_AGENT
from staplegate.ocsp.logline import UpdateStatus
from staplegate.ocsp.machine import (
    Action,
    CertificateMachine,
    CertificateReplaced,
    Event,
    Fetch,
    FetchFailed,
    FetchFailureKind,
    FetchSucceeded,
    Install,
    Log,
    LogLevel,
    MachineMisuse,
    ManualSet,
    Persist,
    Rejected,
    RevocationDetected,
    SharedStaple,
    Start,
    State,
    Tick,
    UpdateRequested,
    WakeAt,
    Withdraw,
    accepted_events,
)
from staplegate.ocsp.request import HttpMethod, build_request, get_url
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.ocsp.verify import CertStatus, FailureReason

from .ocsp_pki import NOW, OCSP_URI, Authority, Pki, make_certificate, sign_response

PATH = "/etc/haproxy/certs/www.pem"
A = TypeVar("A")


def s(seconds: float) -> dt.timedelta:
    return dt.timedelta(seconds=seconds)


def make_machine(
    pki: Pki, *, uri: str | None = OCSP_URI, auto_update: bool = True, jitter: float = 0
) -> CertificateMachine:
    return CertificateMachine(
        certificate=pki.ec_ca.leaf,
        issuer=pki.ec_ca.certificate,
        path=PATH,
        uri=uri,
        settings=UpdateSettings(jitter=jitter),
        rng=random.Random(42),
        auto_update=auto_update,
        user_agent=USER_AGENT,
    )


def response(
    ca: Authority,
    *,
    valid_for: float = 7 * 86400,
    this_update: dt.datetime = NOW - dt.timedelta(hours=1),
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    at: dt.datetime = NOW,
) -> bytes:
    revoked = status is ocsp.OCSPCertStatus.REVOKED
    return sign_response(
        certificate=ca.leaf,
        issuer=ca.certificate,
        signer=ca.signer,
        status=status,
        this_update=this_update,
        next_update=at + s(valid_for),
        revocation_time=NOW - dt.timedelta(days=1) if revoked else None,
        revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
    )


def of(kind: type[A], actions: list[Action]) -> list[A]:
    return [a for a in actions if isinstance(a, kind)]


def update_lines(actions: list[Action]) -> list[str]:
    return [a.message for a in actions if isinstance(a, Log) and a.level is LogLevel.NOTICE]


def wake(actions: list[Action]) -> dt.datetime:
    wakes = of(WakeAt, actions)
    assert len(wakes) == 1, actions
    return wakes[0].when


def fetch_now(machine: CertificateMachine, now: dt.datetime) -> Fetch:
    actions = machine.handle(Tick(now))
    fetches = of(Fetch, actions)
    assert len(fetches) == 1, actions
    assert machine.state is State.FETCHING
    return fetches[0]


# --- the normal life of a certificate ---


def test_first_start_fetches_at_once_and_installs_a_good_response(pki: Pki) -> None:
    clock = ManualClock(NOW)
    machine = make_machine(pki)
    assert wake(machine.handle(Start(clock.now()))) == NOW
    fetch = fetch_now(machine, clock.now())
    assert fetch.cert_id == machine.cert_id
    assert fetch.uri == OCSP_URI
    assert fetch.request.method is HttpMethod.GET
    assert fetch.request.url == get_url(OCSP_URI, build_request(machine.cert_id))

    clock.advance(2)
    actions = machine.handle(FetchSucceeded(clock.now(), response(pki.ec_ca)))
    assert update_lines(actions) == [f'<OCSP-UPDATE> {PATH} 1 "Update successful" 0 1']
    (install,) = of(Install, actions)
    (persist,) = of(Persist, actions)
    assert install.staple is persist.staple
    assert install.staple.status is CertStatus.GOOD
    assert wake(actions) == clock.now() + s(3600)  # 7-day response: maxdelay
    assert machine.servable_staple(clock.now()) is install.staple
    assert machine.counters.successes == 1
    assert machine.counters.last_success == clock.now()
    assert machine.counters.status_text == "Update successful"


def test_start_with_stored_staples_installs_the_newest_valid_one(pki: Pki) -> None:
    machine = make_machine(pki)
    older = response(pki.ec_ca, this_update=NOW - s(7200))
    newer = response(pki.ec_ca, this_update=NOW - s(60))
    stale = response(pki.ec_ca, valid_for=-3600, this_update=NOW - s(86400))
    actions = machine.handle(Start(NOW, stored=(older, stale, newer)))
    (install,) = of(Install, actions)
    assert install.staple.der == newer
    assert of(Persist, actions) == []  # it came from the store
    warnings = [a.message for a in of(Log, actions)]
    assert warnings == [
        f"{PATH}: Loading: OCSP single response: no longer valid. (nextUpdate "
        "2026-03-01T11:00:00Z is more than 300 s before 2026-03-01T12:00:00Z). "
        "Content will be ignored."
    ]
    # as if never stopped: fetched at thisUpdate (60 s ago), due maxdelay after that
    assert wake(actions) == NOW + s(3540)


def test_failures_back_off_120_240_and_keep_status_detail(pki: Pki) -> None:
    clock = ManualClock(NOW)
    machine = make_machine(pki)
    machine.handle(Start(clock.now()))
    fetch_now(machine, clock.now())
    actions = machine.handle(
        FetchFailed(clock.now(), FetchFailureKind.HTTP_STATUS, "HTTP status 404")
    )
    assert update_lines(actions) == [f'<OCSP-UPDATE> {PATH} 2 "HTTP error (HTTP status 404)" 1 0']
    assert wake(actions) == clock.now() + s(120)

    clock.advance(119)
    assert of(Fetch, machine.handle(Tick(clock.now()))) == []  # not due yet
    clock.advance(1)
    fetch_now(machine, clock.now())
    actions = machine.handle(FetchSucceeded(clock.now(), b"garbage"))
    assert update_lines(actions) == [
        f'<OCSP-UPDATE> {PATH} 4 "OCSP response check failure (d2i_OCSP_RESPONSE() failed)" 2 0'
    ]
    assert wake(actions) == clock.now() + s(240)
    assert machine.counters.consecutive_failures == 2

    clock.advance(240)
    fetch_now(machine, clock.now())
    # while fetching: status 0, previous detail still shown (3.2)
    assert machine.counters.status_text == "Unknown (d2i_OCSP_RESPONSE() failed)"
    actions = machine.handle(FetchSucceeded(clock.now(), response(pki.ec_ca)))
    assert update_lines(actions) == [f'<OCSP-UPDATE> {PATH} 1 "Update successful" 2 1']
    assert machine.counters.consecutive_failures == 0


def test_failure_keeps_serving_the_last_good_staple(pki: Pki) -> None:
    clock = ManualClock(NOW)
    machine = make_machine(pki)
    machine.handle(Start(clock.now(), stored=(response(pki.ec_ca),)))
    held = machine.staple
    clock.advance(3600)
    fetch_now(machine, clock.now())
    rogue = sign_response(
        certificate=pki.ec_ca.leaf, issuer=pki.ec_ca.certificate, signer=pki.rogue
    )
    actions = machine.handle(FetchSucceeded(clock.now(), rogue))
    assert update_lines(actions) == [
        f'<OCSP-UPDATE> {PATH} 4 "OCSP response check failure (OCSP_basic_verify() failed)" 1 0'
    ]
    assert of(Install, actions) == []
    assert of(Withdraw, actions) == []
    assert machine.servable_staple(clock.now()) is held
    assert wake(actions) == clock.now() + s(3600)  # a 7-day staple is held: maxdelay


@pytest.mark.parametrize(
    ("kind", "line"),
    [
        (FetchFailureKind.CONTENT_TYPE, '3 "Missing "ocsp-response" header (text/html)" 1 0'),
        (FetchFailureKind.TIMEOUT, '2 "HTTP error (text/html)" 1 0'),
        (FetchFailureKind.CONNECT, '2 "HTTP error (text/html)" 1 0'),
    ],
)
def test_http_level_failures_map_to_haproxy_codes(
    pki: Pki, kind: FetchFailureKind, line: str
) -> None:
    machine = make_machine(pki)
    machine.handle(Start(NOW))
    fetch_now(machine, NOW)
    actions = machine.handle(FetchFailed(NOW, kind, "text/html"))
    assert update_lines(actions) == [f"<OCSP-UPDATE> {PATH} {line}"]


def test_internal_failure_counts_but_logs_nothing(pki: Pki) -> None:
    machine = make_machine(pki)
    machine.handle(Start(NOW))
    fetch_now(machine, NOW)
    actions = machine.handle(FetchFailed(NOW, FetchFailureKind.INTERNAL, "no route"))
    assert of(Log, actions) == []
    assert machine.counters.failures == 1
    assert machine.counters.last_status is UpdateStatus.UNKNOWN
    assert wake(actions) == NOW + s(120)


@pytest.mark.parametrize(
    ("der_kind", "detail"),
    [
        ("unknown", "OCSP single response: certificate status is unknown"),
        ("short", "OCSP single response: no longer valid. Must be valid during at least 300s."),
    ],
)
def test_insertion_errors_keep_the_held_staple(pki: Pki, der_kind: str, detail: str) -> None:
    clock = ManualClock(NOW)
    machine = make_machine(pki)
    machine.handle(Start(clock.now(), stored=(response(pki.ec_ca),)))
    held = machine.staple
    clock.advance(3600)
    fetch_now(machine, clock.now())
    if der_kind == "unknown":
        der = response(pki.ec_ca, status=ocsp.OCSPCertStatus.UNKNOWN, at=clock.now())
    else:
        der = response(pki.ec_ca, valid_for=200, at=clock.now())
    actions = machine.handle(FetchSucceeded(clock.now(), der))
    assert update_lines(actions) == [
        f'<OCSP-UPDATE> {PATH} 5 "Error during insertion ({detail})" 1 0'
    ]
    # unlike HAProxy 3.2, a too-short response does not replace the good one
    assert of(Install, actions) == []
    assert machine.servable_staple(clock.now()) is held


def test_older_fetched_response_is_not_installed(pki: Pki) -> None:
    machine = make_machine(pki)
    machine.handle(Start(NOW, stored=(response(pki.ec_ca, this_update=NOW - s(60)),)))
    held = machine.staple
    clock = ManualClock(NOW + s(3600))
    fetch_now(machine, clock.now())
    older = response(pki.ec_ca, this_update=NOW - s(7200))
    actions = machine.handle(FetchSucceeded(clock.now(), older))
    assert update_lines(actions) == [f'<OCSP-UPDATE> {PATH} 1 "Update successful" 0 1']
    assert of(Install, actions) == []
    assert of(Persist, actions) == []
    assert machine.staple is held
    assert any("older than the one served" in a.message for a in of(Log, actions))


def test_withdrawn_at_expire_when_no_refresh_succeeds(pki: Pki) -> None:
    clock = ManualClock(NOW)
    machine = make_machine(pki)
    stored = response(pki.ec_ca, valid_for=1000, this_update=NOW)
    actions = machine.handle(Start(clock.now(), stored=(stored,)))
    # expire = now + 700; next attempt = max(min(now+3600, expire-60), now+300) = now + 640
    assert wake(actions) == NOW + s(640)
    clock.set(NOW + s(640))
    fetch_now(machine, clock.now())
    actions = machine.handle(FetchFailed(clock.now(), FetchFailureKind.CONNECT, "refused"))
    # next attempt max(now+300, now+120) is after the withdrawal: wake for the withdrawal
    assert machine.next_attempt == clock.now() + s(300)
    assert wake(actions) == NOW + s(701)
    clock.set(NOW + s(700))
    assert of(Withdraw, machine.handle(Tick(clock.now()))) == []  # still servable at expire
    clock.set(NOW + s(701))
    actions = machine.handle(Tick(clock.now()))
    assert of(Withdraw, actions) == [Withdraw(machine.cert_id)]
    assert machine.servable_staple(clock.now()) is None
    assert wake(actions) == NOW + s(940)  # the retry


def test_revoked_answer_is_installed_and_raises_an_alert(pki: Pki) -> None:
    machine = make_machine(pki)
    machine.handle(Start(NOW))
    fetch_now(machine, NOW)
    actions = machine.handle(
        FetchSucceeded(NOW, response(pki.ec_ca, status=ocsp.OCSPCertStatus.REVOKED))
    )
    (install,) = of(Install, actions)
    assert install.staple.status is CertStatus.REVOKED
    assert of(RevocationDetected, actions) == [RevocationDetected(install.staple)]
    alerts = [a for a in of(Log, actions) if a.level is LogLevel.ALERT]
    assert len(alerts) == 1
    assert "REVOKED" in alerts[0].message
    assert "keyCompromise" in alerts[0].message


# --- runtime API events ---


def test_manual_set_installs_a_verified_response_without_touching_counters(pki: Pki) -> None:
    machine = make_machine(pki)
    machine.handle(Start(NOW, stored=(response(pki.ec_ca),)))
    before = machine.counters
    der = response(pki.ec_ca, this_update=NOW - s(10))
    actions = machine.handle(ManualSet(NOW, der))
    assert [type(a) for a in actions] == [Install, Persist, WakeAt]
    assert machine.staple is not None
    assert machine.staple.der == der
    assert machine.counters == before


def test_manual_set_of_a_short_lived_staple_reschedules_before_it_is_withdrawn(
    pki: Pki,
) -> None:
    """Issue 14, defect 10: the next refresh stayed where the old week-long staple had put
    it (maxdelay, 1 h), so a pushed 17-minute staple was withdrawn 48 minutes before it."""
    machine = make_machine(pki)
    machine.handle(Start(NOW, stored=(response(pki.ec_ca, this_update=NOW),)))
    assert machine.next_attempt == NOW + s(3600)
    short = response(pki.ec_ca, this_update=NOW - s(10), valid_for=17 * 60)
    actions = machine.handle(ManualSet(NOW, short))
    (install,) = of(Install, actions)
    expire = install.staple.expire()
    assert expire == NOW + s(12 * 60)
    assert machine.state is State.WAITING
    assert machine.next_attempt == expire - s(60)  # HAProxy's formula: expire - margin
    assert wake(actions) == machine.next_attempt


def test_manual_set_of_a_long_lived_staple_never_delays_a_sooner_attempt(pki: Pki) -> None:
    machine = make_machine(pki)
    machine.handle(Start(NOW))  # no staple: due now
    assert machine.next_attempt == NOW
    machine.handle(ManualSet(NOW + s(1), response(pki.ec_ca)))
    assert machine.next_attempt == NOW  # still due: a fetch is cheap, a gap is not


def test_manual_set_while_fetching_or_idle_schedules_nothing(pki: Pki) -> None:
    machine = make_machine(pki)
    machine.handle(Start(NOW))
    fetch_now(machine, NOW)
    machine.handle(ManualSet(NOW, response(pki.ec_ca, valid_for=17 * 60)))
    assert (machine.state, machine.next_attempt) == (State.FETCHING, None)
    idle = make_machine(pki, auto_update=False)
    idle.handle(Start(NOW))
    idle.handle(ManualSet(NOW, response(pki.ec_ca, valid_for=17 * 60)))
    assert (idle.state, idle.next_attempt) == (State.IDLE, None)


def test_manual_set_rejects_an_unsigned_one_with_the_reason(pki: Pki) -> None:
    machine = make_machine(pki)
    machine.handle(Start(NOW))
    other = sign_response(
        certificate=pki.ec_ca.other_leaf, issuer=pki.ec_ca.certificate, signer=pki.ec_ca.signer
    )
    actions = machine.handle(ManualSet(NOW, other))
    (rejected,) = of(Rejected, actions)
    assert rejected.error.reason is FailureReason.CERT_ID_MISMATCH
    assert of(Install, actions) == []
    assert machine.staple is None


def test_update_requested_with_auto_update_off_is_one_shot(pki: Pki) -> None:
    machine = make_machine(pki, auto_update=False)
    actions = machine.handle(Start(NOW))
    assert machine.state is State.IDLE
    assert of(WakeAt, actions) == []
    assert wake(machine.handle(UpdateRequested(NOW + s(5)))) == NOW + s(5)
    fetch_now(machine, NOW + s(5))
    assert of(Fetch, machine.handle(UpdateRequested(NOW + s(6)))) == []  # already fetching
    actions = machine.handle(FetchSucceeded(NOW + s(7), response(pki.ec_ca)))
    assert machine.state is State.IDLE
    assert machine.next_attempt is None
    # only the withdrawal wake-up remains
    assert machine.staple is not None
    assert wake(actions) == machine.staple.expire() + s(1)


def test_update_requested_moves_a_queued_attempt_to_now(pki: Pki) -> None:
    machine = make_machine(pki)
    machine.handle(Start(NOW, stored=(response(pki.ec_ca, this_update=NOW),)))
    assert machine.next_attempt == NOW + s(3600)
    assert wake(machine.handle(UpdateRequested(NOW + s(10)))) == NOW + s(10)
    fetch_now(machine, NOW + s(10))
    machine.handle(FetchFailed(NOW + s(11), FetchFailureKind.TIMEOUT, "timeout after 10 s"))
    assert machine.state is State.WAITING  # still auto-updated


@pytest.mark.parametrize("uri", [None, "", "ldap://ocsp.example.test"])
def test_certificate_without_usable_uri_is_reported_once_and_never_fetched(
    pki: Pki, uri: str | None
) -> None:
    machine = make_machine(pki, uri=uri)
    assert not machine.can_fetch
    actions = machine.handle(Start(NOW))
    (log,) = of(Log, actions)
    assert "OCSP update disabled for this certificate" in log.message
    assert machine.state is State.IDLE
    for minutes in range(0, 600, 60):
        assert machine.handle(Tick(NOW + s(minutes * 60))) == []
    actions = machine.handle(UpdateRequested(NOW))
    assert of(Fetch, actions) == []
    assert "cannot update" in of(Log, actions)[0].message


def test_certificate_replaced_withdraws_and_retires(pki: Pki) -> None:
    machine = make_machine(pki)
    machine.handle(Start(NOW, stored=(response(pki.ec_ca),)))
    actions = machine.handle(CertificateReplaced(NOW))
    assert actions == [Withdraw(machine.cert_id)]
    assert machine.state is State.RETIRED
    assert machine.handle(Tick(NOW + s(1))) == []
    with pytest.raises(MachineMisuse, match="ManualSet is not accepted in state retired"):
        machine.handle(ManualSet(NOW, b""))


@pytest.mark.parametrize(
    "event",
    [FetchSucceeded(NOW, b""), FetchFailed(NOW, FetchFailureKind.CONNECT), Start(NOW)],
)
def test_results_without_a_fetch_are_misuse(pki: Pki, event: Event) -> None:
    machine = make_machine(pki)
    machine.handle(Start(NOW, stored=(response(pki.ec_ca),)))
    with pytest.raises(MachineMisuse):
        machine.handle(event)


def test_jitter_spreads_the_first_refresh_of_many_certificates(pki: Pki) -> None:
    stored = (response(pki.ec_ca, this_update=NOW),)
    times = set()
    for seed in range(20):
        machine = CertificateMachine(
            certificate=pki.ec_ca.leaf,
            issuer=pki.ec_ca.certificate,
            path=PATH,
            uri=OCSP_URI,
            rng=random.Random(seed),
            user_agent=USER_AGENT,
        )
        times.add(wake(machine.handle(Start(NOW, stored=stored))))
    assert len(times) == 20
    assert all(NOW + s(3240) <= t <= NOW + s(3600) for t in times)


def test_restart_schedules_from_when_the_stored_staple_was_fetched(pki: Pki) -> None:
    """Issue 19 item 7: a staple fetched 50 minutes before a restart is refreshed 10 minutes
    after it (maxdelay after its fetch), not a full maxdelay after the restart."""
    machine = make_machine(pki)
    actions = machine.handle(Start(NOW, stored=(response(pki.ec_ca, this_update=NOW - s(3000)),)))
    assert of(Fetch, actions) == []  # served at once from the store, no request first
    assert of(Install, actions) != []
    assert wake(actions) == NOW + s(600)


def test_overdue_stored_staples_are_spread_over_a_tenth_of_maxdelay(pki: Pki) -> None:
    """After a long downtime every stored staple is overdue: they are refreshed within the
    first jitter * maxdelay (360 s), spread, and served meanwhile."""
    stored = (response(pki.ec_ca, this_update=NOW - s(86400), at=NOW),)
    times = set()
    for seed in range(20):
        machine = CertificateMachine(
            certificate=pki.ec_ca.leaf,
            issuer=pki.ec_ca.certificate,
            path=PATH,
            uri=OCSP_URI,
            rng=random.Random(seed),
            user_agent=USER_AGENT,
        )
        actions = machine.handle(Start(NOW, stored=stored))
        assert machine.servable_staple(NOW) is not None
        times.add(wake(actions))
    assert len(times) == 20
    assert all(NOW <= t <= NOW + s(360) for t in times)


def test_overdue_spread_never_passes_the_withdrawal_time(pki: Pki) -> None:
    stored = (response(pki.ec_ca, this_update=NOW - s(86400), valid_for=400),)
    machine = make_machine(pki, jitter=0.5)
    machine.handle(Start(NOW, stored=stored))
    # expire = NOW + 100 (nextUpdate - 300 s); minus the 60 s margin leaves 40 s to spread in
    assert machine.next_attempt is not None
    assert NOW <= machine.next_attempt <= NOW + s(40)


# --- every (state, event) pair, random walks ---

EVENT_KINDS = ["tick", "good", "revoked", "rogue", "short", "fail", "manual", "update"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(st.tuples(st.sampled_from(EVENT_KINDS), st.integers(0, 2 * 86400)), max_size=40),
    seed=st.integers(0, 1000),
)
def test_random_walks_keep_the_staple_rules(
    pki: Pki, steps: list[tuple[str, int]], seed: int
) -> None:
    ca = pki.ec_ca
    ders = {
        "good": response(ca),
        "revoked": response(ca, status=ocsp.OCSPCertStatus.REVOKED),
        "rogue": sign_response(certificate=ca.leaf, issuer=ca.certificate, signer=pki.rogue),
        "short": response(ca, valid_for=200),
    }
    machine = CertificateMachine(
        certificate=ca.leaf,
        issuer=ca.certificate,
        path=PATH,
        uri=OCSP_URI,
        rng=random.Random(seed),
        user_agent=USER_AGENT,
    )
    now = NOW
    machine.handle(Start(now))
    last_wake: dt.datetime | None = None
    for kind, advance in steps:
        now += s(advance)
        event: Event
        if kind == "tick":
            event = Tick(now)
        elif kind in ders:
            event = FetchSucceeded(now, ders[kind])
        elif kind == "fail":
            event = FetchFailed(now, FetchFailureKind.HTTP_STATUS, "500")
        elif kind == "manual":
            event = ManualSet(now, ders["good"])
        else:
            event = UpdateRequested(now)
        accepted = type(event) in accepted_events(machine.state)
        was_fetching = machine.state is State.FETCHING
        if not accepted:
            with pytest.raises(MachineMisuse):
                machine.handle(event)
            continue
        actions = machine.handle(event)
        for action in actions:
            if isinstance(action, Install):
                assert action.staple.servable(now)  # never install an expired one
            if isinstance(action, Fetch):
                assert not was_fetching  # one request in flight per certificate
            if isinstance(action, WakeAt):
                assert action.when >= now
                last_wake = action.when
        if machine.installed:
            assert machine.staple is not None
            assert machine.staple.servable(now)  # withdrawn as soon as it expires
            assert last_wake is not None
            assert last_wake <= machine.staple.expire() + s(1)  # withdrawal is scheduled
        if machine.state is State.WAITING:
            assert machine.next_attempt is not None
            assert last_wake is not None
            assert last_wake <= max(machine.next_attempt, now)


def test_retired_is_terminal_and_every_live_state_can_be_retired() -> None:
    assert accepted_events(State.RETIRED) == [Tick]
    for state in (State.NEW, State.WAITING, State.FETCHING, State.IDLE):
        assert CertificateReplaced in accepted_events(state)


# --- several responders (issue 19 item 4) ---


def test_every_usable_responder_is_offered_in_order(pki: Pki) -> None:
    machine = CertificateMachine(
        certificate=pki.ec_ca.leaf,
        issuer=pki.ec_ca.certificate,
        path=PATH,
        uri=OCSP_URI,
        user_agent=USER_AGENT,
        fallback_uris=("ldap://skipped.test", "http://mirror.test/ocsp"),
    )
    machine.handle(Start(NOW))
    fetch = fetch_now(machine, NOW)
    assert fetch.uri == OCSP_URI
    assert [uri for uri, _ in fetch.alternatives] == ["http://mirror.test/ocsp"]


def test_the_responder_that_answered_is_asked_first_next_time(pki: Pki) -> None:
    machine = CertificateMachine(
        certificate=pki.ec_ca.leaf,
        issuer=pki.ec_ca.certificate,
        path=PATH,
        uri=OCSP_URI,
        user_agent=USER_AGENT,
        fallback_uris=("http://mirror.test/ocsp",),
    )
    machine.handle(Start(NOW))
    fetch_now(machine, NOW)
    good = response(pki.ec_ca, this_update=NOW)
    machine.handle(FetchSucceeded(NOW, good, answered_by="http://mirror.test/ocsp"))
    assert machine.answering_uri == "http://mirror.test/ocsp"
    assert machine.uri == OCSP_URI  # the configured one, for reloads and the runtime API
    assert machine.next_attempt is not None
    fetch = fetch_now(machine, machine.next_attempt)
    assert fetch.uri == "http://mirror.test/ocsp"
    assert [uri for uri, _ in fetch.alternatives] == [OCSP_URI]


def test_no_update_is_scheduled_past_the_certificates_own_expiry(pki: Pki) -> None:
    """Issue 19 item 6: a certificate expiring in 30 minutes is not asked about again after
    this fetch (the next one would be maxdelay, 1 h, away); the staple stays served."""
    expiring = make_certificate(
        subject="expiring.test",
        key=ec.generate_private_key(ec.SECP256R1()),
        issuer_name=pki.ec_ca.name,
        issuer_key=pki.ec_ca.signer.key,
        serial=0xE1,
        not_after=NOW + s(1800),
        ocsp_uri=OCSP_URI,
    )
    machine = CertificateMachine(
        certificate=expiring,
        issuer=pki.ec_ca.certificate,
        path=PATH,
        uri=OCSP_URI,
        settings=UpdateSettings(jitter=0),
        user_agent=USER_AGENT,
    )
    machine.handle(Start(NOW))
    fetch_now(machine, NOW)
    der = sign_response(
        certificate=expiring,
        issuer=pki.ec_ca.certificate,
        signer=pki.ec_ca.signer,
        this_update=NOW,
        next_update=NOW + s(7 * 86400),
    )
    actions = machine.handle(FetchSucceeded(NOW, der))
    assert of(Install, actions) != []
    assert machine.state is State.IDLE
    assert machine.next_attempt is None
    assert any("automatic updates stop" in a.message for a in of(Log, actions))
    # an operator's `update ssl ocsp-response` still fetches
    machine.handle(UpdateRequested(NOW + s(60)))
    assert fetch_now(machine, NOW + s(60)).uri == OCSP_URI


# --- a fleet member's staple (ocsp-update.shared-store) ---


def test_shared_staple_newer_is_installed_and_the_refresh_follows_its_times(pki: Pki) -> None:
    machine = make_machine(pki)
    machine.handle(Start(NOW, stored=(response(pki.ec_ca, this_update=NOW - s(3000)),)))
    assert machine.next_attempt == NOW + s(600)  # fetched 3000 s ago: maxdelay from then
    peer = response(pki.ec_ca, this_update=NOW - s(10))
    actions = machine.handle(SharedStaple(NOW, peer))
    assert [type(a) for a in actions] == [Install, Persist, Log, WakeAt]
    assert machine.staple is not None
    assert machine.staple.der == peer
    assert machine.next_attempt == NOW - s(10) + s(3600)  # the peer's fetch + maxdelay
    assert machine.counters.successes == 0  # no request of ours


def test_shared_staple_older_equal_or_forged_changes_nothing(pki: Pki) -> None:
    machine = make_machine(pki)
    held = response(pki.ec_ca, this_update=NOW - s(10))
    machine.handle(Start(NOW, stored=(held,)))
    before = machine.next_attempt
    for der in (response(pki.ec_ca, this_update=NOW - s(60)), held):
        actions = machine.handle(SharedStaple(NOW, der))
        assert [type(a) for a in actions] == [WakeAt]
    forged = sign_response(
        certificate=pki.ec_ca.leaf,
        issuer=pki.ec_ca.certificate,
        signer=pki.rogue,
        status=ocsp.OCSPCertStatus.GOOD,
        this_update=NOW,
        next_update=NOW + s(86400),
    )
    actions = machine.handle(SharedStaple(NOW, forged))
    (log,) = of(Log, actions)
    assert log.level is LogLevel.WARNING
    assert "staple from the shared store refused: OCSP response" in log.message
    assert machine.staple is not None
    assert machine.staple.der == held
    assert machine.next_attempt == before
    assert not of(Install, actions)
