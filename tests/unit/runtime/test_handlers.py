"""The OCSP commands of the runtime API against in-memory fakes of our own protocols.

`FakeOcsp` implements `runtime.contract.OcspService` and `FakeBackend` `ProcessView`: both
are interfaces of this project, so the handlers' level checks, answer formats and errors are
tested here without an updater, a master or a socket (the integration tests run them on real
ones).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from staplegate.certs import LoadedCertificate
from staplegate.config.model import StatsLevel
from staplegate.deploy.generation import CertificateEntry
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.logline import UpdateStatus
from staplegate.ocsp.machine import State
from staplegate.ocsp.verify import CertStatus, FailureReason
from staplegate.proxy.backends import AdminState
from staplegate.runtime import formats
from staplegate.runtime.contract import (
    CommitError,
    CommitResult,
    CrtListView,
    OcspService,
    ProcessView,
    ReloadReport,
    ServerView,
    StatRow,
)
from staplegate.runtime.grammar import parse_words
from staplegate.runtime.handlers import PERMISSION_DENIED, RuntimeHandlers
from staplegate.updater.crl_watch import CrlSource, CrlTarget, CrlWatch
from staplegate.updater.results import (
    NO_MATCHING_CERTIFICATE,
    RESPONSE_UPDATED,
    EntrySnapshot,
    SetOutcome,
    SetRefusal,
    SharedStoreState,
    StapleSummary,
    UpdateOutcome,
    UpdateResult,
)
from staplegate.updater.timing import DurationHistogram
from tests.fuzz_targets.crl_verify import CRL_URL, LEAF_SERIAL, build_crl, pki
from tests.fuzz_targets.crl_verify import NOW as FUZZ_NOW

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
CERT_A = CertId("sha1", b"\x01" * 20, b"\x02" * 20, 0x0A)
CERT_B = CertId("sha1", b"\x01" * 20, b"\x02" * 20, 0x0B)
STAPLE_A = b"0\x03\x0a\x01\x00 staple of a"


def _entry(
    cert_id: CertId, path: str, state: State, *, next_attempt: dt.datetime | None = None
) -> EntrySnapshot:
    served = cert_id == CERT_A
    return EntrySnapshot(
        path=path,
        paths=(path,),
        cert_id=cert_id,
        cert_id_hex=cert_id.hex,
        uri="http://ocsp.example.test",
        auto_update=True,
        state=state,
        next_attempt=next_attempt,
        successes=3 if served else 0,
        failures=1,
        last_status=UpdateStatus.SUCCESS if served else UpdateStatus.HTTP_ERROR,
        last_status_text="Update successful" if served else "HTTP error (HTTP 500)",
        last_success=NOW - dt.timedelta(hours=1) if served else None,
        revocations=0,
        staple=StapleSummary(
            status=CertStatus.GOOD,
            this_update=NOW - dt.timedelta(hours=1),
            next_update=NOW + dt.timedelta(days=1),
            produced_at=NOW - dt.timedelta(hours=1),
            revocation_time=None,
            served=True,
        )
        if served
        else None,
    )


@dataclass
class FakeOcsp:
    """An in-memory `OcspService`: two entries, a staple for the first; records every call."""

    entries: list[EntrySnapshot] = field(
        default_factory=lambda: [
            _entry(CERT_A, "/c/a.pem", State.WAITING, next_attempt=NOW + dt.timedelta(hours=1)),
            _entry(CERT_B, "/c/b.pem", State.FETCHING),
        ]
    )
    staples: dict[CertId, bytes] = field(default_factory=lambda: {CERT_A: STAPLE_A})
    update_outcome: UpdateOutcome | None = None
    set_outcome: SetOutcome = field(
        default_factory=lambda: SetOutcome(accepted=True, message=RESPONSE_UPDATED)
    )
    updates: list[tuple[CertId, float | None]] = field(default_factory=list)
    responses: list[bytes] = field(default_factory=list)
    crl: list[CrlSource] = field(default_factory=list)
    durations: dict[str, DurationHistogram] = field(default_factory=dict)
    crl_updates: list[str] = field(default_factory=list)
    shared: SharedStoreState | None = None

    @property
    def table(self) -> Mapping[CertId, bytes]:
        return self.staples

    @property
    def update_wait(self) -> float:
        return 17.0

    def snapshot(self) -> Sequence[EntrySnapshot]:
        return self.entries

    def find(self, name: str) -> CertId | None:
        for entry in self.entries:
            if name in (entry.path, entry.cert_id_hex):
                return entry.cert_id
        return None

    async def update_now(self, cert_id: CertId, *, timeout: float | None = None) -> UpdateOutcome:
        self.updates.append((cert_id, timeout))
        assert self.update_outcome is not None
        return self.update_outcome

    def crl_sources(self) -> Sequence[CrlSource]:
        return self.crl

    def shared_store(self) -> SharedStoreState | None:
        return self.shared

    def fetch_durations(self) -> Mapping[str, DurationHistogram]:
        return self.durations

    async def update_crl(self, name: str, *, timeout: float) -> CrlSource | None:
        for source in self.crl:
            if source.url == name or any(t.path == name for t in source.targets):
                self.crl_updates.append(name)
                return source
        return None

    def set_response(self, der: bytes) -> SetOutcome:
        self.responses.append(der)
        return self.set_outcome


@dataclass
class FakeBackend:
    """An in-memory `ProcessView` with no certificates, servers or reloads."""

    ocsp: FakeOcsp

    def ocsp_updater(self) -> OcspService:
        return self.ocsp

    def certificates(self) -> Sequence[CertificateEntry]:
        return ()

    def crt_lists(self) -> Sequence[CrtListView]:
        return ()

    async def commit_certificate(self, name: str, certificate: LoadedCertificate) -> CommitResult:
        raise CommitError("not in this fake")

    async def reload(self) -> ReloadReport:
        return ReloadReport(ok=False, message="not in this fake")

    def last_reload(self) -> ReloadReport | None:
        return None

    def servers(self) -> Sequence[ServerView]:
        return ()

    def set_server_state(self, backend: str, server: str, state: AdminState) -> None:
        raise AssertionError("not in this fake")

    def info(self) -> Mapping[str, str | int]:
        return {"Name": "staplegate"}

    def stats(self) -> Sequence[StatRow]:
        return ()


def ask(
    ocsp: FakeOcsp,
    words: str,
    level: StatsLevel = StatsLevel.ADMIN,
    *,
    payload: str | None = None,
    update_timeout: float | None = None,
) -> str:
    backend: ProcessView = FakeBackend(ocsp)
    handlers = RuntimeHandlers(backend, update_timeout=update_timeout)
    return asyncio.run(handlers.execute(parse_words(words.split(), payload), level))


# --- levels ---


@pytest.mark.parametrize(
    ("command", "needed"),
    [
        ("show ssl ocsp-response", StatsLevel.USER),
        ("show ssl ocsp-updates", StatsLevel.USER),
        ("show ssl crl-watch", StatsLevel.USER),
        ("update ssl crl x", StatsLevel.OPERATOR),
        ("update ssl ocsp-response /c/a.pem", StatsLevel.OPERATOR),
        ("set ssl ocsp-response QUJD", StatsLevel.ADMIN),
    ],
)
def test_ocsp_commands_answer_permission_denied_below_their_level(
    command: str, needed: StatsLevel
) -> None:
    ocsp = FakeOcsp(update_outcome=_completed())
    for level in StatsLevel:
        answer = ask(ocsp, command, level)
        if level < needed:
            assert answer == PERMISSION_DENIED + "\n"
        else:
            assert answer != PERMISSION_DENIED + "\n"
    below = sum(1 for level in StatsLevel if level < needed)
    allowed = len(StatsLevel) - below
    # a refused command never reaches the service
    if command.startswith("update ssl ocsp-response"):
        assert len(ocsp.updates) == allowed
    if command.startswith("set"):
        assert len(ocsp.responses) == allowed


# --- formats ---


def test_show_ssl_ocsp_response_lists_the_entries_with_their_certid_parts() -> None:
    answer = ask(FakeOcsp(), "show ssl ocsp-response", StatsLevel.USER)
    block_a = (
        f"Certificate ID key : {CERT_A.hex}\n"
        "Certificate path : /c/a.pem\n"
        " Certificate ID:\n"
        f"   Issuer Name Hash: {'01' * 20}\n"
        f"   Issuer Key Hash: {'02' * 20}\n"
        "   Serial Number: 0A\n"
    )
    assert answer.startswith("# Certificate IDs\n" + block_a)
    assert answer.count("Certificate ID key : ") == 2


def test_show_ssl_ocsp_response_base64_by_path_or_certid() -> None:
    expected = base64.b64encode(STAPLE_A).decode("ascii")
    assert ask(FakeOcsp(), "show ssl ocsp-response base64 /c/a.pem", StatsLevel.USER) == expected
    assert ask(FakeOcsp(), f"show ssl ocsp-response base64 {CERT_A.hex}") == expected
    assert ask(FakeOcsp(), "show ssl ocsp-response base64 /c/b.pem") == ""  # nothing served


def test_show_ssl_ocsp_updates_lists_fetching_then_queued_entries() -> None:
    answer = ask(FakeOcsp(), "show ssl ocsp-updates", StatsLevel.USER)
    header, fetching, waiting, end = answer.split("\n")
    assert header == formats.OCSP_UPDATES_HEADER
    assert fetching.split(" | ")[0:2] == [CERT_B.hex, "/c/b.pem"]
    assert fetching.split(" | ")[3:] == ["-", "0", "1", "2", "HTTP error (HTTP 500)"]
    assert waiting == " | ".join(
        (
            CERT_A.hex,
            "/c/a.pem",
            formats.log_date(NOW + dt.timedelta(hours=1)),
            formats.log_date(NOW - dt.timedelta(hours=1)),
            "3",
            "1",
            "1",
            "Update successful",
        )
    )
    assert end == ""


def _completed() -> UpdateOutcome:
    return UpdateOutcome(
        UpdateResult.COMPLETED, CERT_A, "/c/a.pem", UpdateStatus.SUCCESS, None, 4, 1
    )


def test_update_reports_the_attempts_log_line_and_waits_longer_than_the_fetch() -> None:
    ocsp = FakeOcsp(update_outcome=_completed())
    answer = ask(ocsp, "update ssl ocsp-response /c/a.pem", StatsLevel.OPERATOR, update_timeout=5)
    assert answer == '<OCSP-UPDATE> /c/a.pem 1 "Update successful" 1 4\n'
    assert ocsp.updates == [(CERT_A, 17.0)]  # the service's own wait beats a shorter one
    ask(ocsp, "update ssl ocsp-response /c/a.pem", update_timeout=30)
    assert ocsp.updates[-1] == (CERT_A, 30)


@pytest.mark.parametrize(
    ("result", "answer"),
    [
        (UpdateResult.TIMED_OUT, "OCSP update for /c/a.pem still running: why\n"),
        (UpdateResult.CANNOT_FETCH, "Can't send ocsp request for /c/a.pem: why\n"),
        (UpdateResult.UNKNOWN_CERTIFICATE, "Unknown certificate /c/a.pem: why\n"),
        (UpdateResult.STOPPED, "OCSP update for /c/a.pem stopped: why\n"),
    ],
)
def test_update_says_why_there_is_no_log_line(result: UpdateResult, answer: str) -> None:
    outcome = UpdateOutcome(result, CERT_A, "/c/a.pem", UpdateStatus.UNKNOWN, "why")
    assert ask(FakeOcsp(update_outcome=outcome), "update ssl ocsp-response /c/a.pem") == answer


def test_set_response_passes_the_der_and_reports_haproxys_answer() -> None:
    ocsp = FakeOcsp()
    payload = base64.b64encode(STAPLE_A).decode("ascii")
    wrapped = payload[:8] + "\r\n " + payload[8:]  # whitespace inside a payload is dropped
    assert ask(ocsp, "set ssl ocsp-response", payload=wrapped) == RESPONSE_UPDATED + "\n"
    assert ocsp.responses == [STAPLE_A]


def test_set_response_refusal_says_the_current_response_is_kept() -> None:
    ocsp = FakeOcsp(
        set_outcome=SetOutcome(
            accepted=False,
            message=NO_MATCHING_CERTIFICATE,
            refusal=SetRefusal.NO_MATCHING_CERTIFICATE,
            failure=FailureReason.CERT_ID_MISMATCH,
            hint="the response is for a certificate this process does not serve",
        )
    )
    assert ask(ocsp, "set ssl ocsp-response QUJD") == (
        NO_MATCHING_CERTIFICATE + ".\n"
        "The current response is kept: the response is for a certificate this process does "
        "not serve.\n"
    )


def test_show_info_adds_the_ocsp_counters() -> None:
    answer = ask(FakeOcsp(), "show info", StatsLevel.USER)
    assert answer == (
        "Name: staplegate\nOcspEntries: 2\nOcspStapled: 1\nOcspUpdateSuccesses: 3\n"
        "OcspUpdateFailures: 2\nOcspRevoked: 0\nOcspMustStapleUnstapled: 0\n"
    )


# --- errors ---


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("update ssl ocsp-response", "'update ssl ocsp-response' expects a filename\n"),
        (
            "update ssl ocsp-response /c/none.pem",
            "Unknown certificate! 'update ssl ocsp-response' expects an already known "
            "certificate file name.\nCan't send ocsp request for /c/none.pem!\n",
        ),
        ("set ssl ocsp-response", "'set ssl ocsp-response' expects response in base64 encoding.\n"),
        (
            "set ssl ocsp-response not*base64",
            "'set ssl ocsp-response' received invalid base64 encoded response.\n",
        ),
        (
            "show ssl ocsp-response base64",
            "'show ssl ocsp-response [text|base64]' expects a valid certid.\n",
        ),
        (
            "show ssl ocsp-response 00ff",
            "Certificate ID or path does not match any certificate.\n",
        ),
        (
            "show ssl ocsp-response /c/none.pem",
            "'show ssl ocsp-response' expects a valid certid or certificate path.\n",
        ),
    ],
)
def test_ocsp_command_errors(command: str, answer: str) -> None:
    ocsp = FakeOcsp()
    assert ask(ocsp, command) == answer
    assert ocsp.updates == []
    assert ocsp.responses == []


def test_show_ssl_crl_watch_lists_each_watched_certificate_with_its_verdict() -> None:
    world = pki()
    watch = CrlWatch(
        [CrlTarget("/c/crl-only.pem", world.leaf, world.ca)], now=FUZZ_NOW, rng=random.Random(0)
    )
    before = ask(FakeOcsp(crl=list(watch.sources.values())), "show ssl crl-watch", StatsLevel.USER)
    assert before.split("\n")[1].split(" | ")[:4] == ["/c/crl-only.pem", CRL_URL, "unknown", "-"]
    watch.fetched(CRL_URL, build_crl(revoked=(LEAF_SERIAL,)), FUZZ_NOW)
    answer = ask(FakeOcsp(crl=list(watch.sources.values())), "show ssl crl-watch", StatsLevel.USER)
    header, row, end = answer.split("\n")
    assert header == formats.CRL_WATCH_HEADER
    fields = row.split(" | ")
    assert fields[:5] == [
        "/c/crl-only.pem",
        CRL_URL,
        "revoked",
        "keyCompromise",
        formats.log_date(FUZZ_NOW - dt.timedelta(hours=2)),
    ]
    assert fields[8:] == [formats.log_date(FUZZ_NOW), "1", "0", "1 certificate(s), 1 revoked"]
    assert end == ""
    assert ask(FakeOcsp(), "show ssl crl-watch", StatsLevel.USER) == formats.CRL_WATCH_HEADER + "\n"


def test_update_ssl_crl_refreshes_by_url_or_certificate_and_needs_operator() -> None:
    world = pki()
    watch = CrlWatch(
        [CrlTarget("/c/crl-only.pem", world.leaf, world.ca)], now=FUZZ_NOW, rng=random.Random(0)
    )
    watch.fetched(CRL_URL, build_crl(revoked=()), FUZZ_NOW)
    ocsp = FakeOcsp(crl=list(watch.sources.values()))
    answer = ask(ocsp, "update ssl crl /c/crl-only.pem", StatsLevel.OPERATOR)
    assert answer == f"{CRL_URL}: 1 certificate(s), 0 revoked (1 successes, 0 failures)\n"
    assert ask(ocsp, f"update ssl crl {CRL_URL}", StatsLevel.OPERATOR).startswith(CRL_URL)
    assert ocsp.crl_updates == ["/c/crl-only.pem", CRL_URL]
    assert ask(ocsp, "update ssl crl /c/other.pem", StatsLevel.OPERATOR) == (
        "'/c/other.pem' is neither a watched CRL URL nor a certificate the CRL watch follows "
        "(see 'show ssl crl-watch').\n"
    )
    assert ask(ocsp, "update ssl crl", StatsLevel.OPERATOR) == (
        "'update ssl crl' expects a CRL URL or a certificate path.\n"
    )
    assert "Permission denied" in ask(ocsp, "update ssl crl /c/crl-only.pem", StatsLevel.USER)
    assert ocsp.crl_updates == ["/c/crl-only.pem", CRL_URL]
