"""OcspUpdater end to end on 127.0.0.1: real certificates, real `openssl ocsp`, real sockets.

The responder is a small aiohttp app on port 0 that answers each request by running the
real one-shot `openssl ocsp -index ... -reqin REQ -respout RESP -ndays 1` against the test CA (never
`-port`). It can be told to fail with a 500, hang, send garbage or sign with a rogue key.
Time moves with `OffsetClock` (wall time plus an offset the test sets), so expiry needs no
sleeping; every wait is on a readiness signal (`started`, a table change, `update_now`).
`openssl ocsp` (not our own responder, see test_service_faults.py) keeps this an interop test.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import enum
import logging
import os
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from staplegate.clock import SystemClock
from staplegate.fetch.client import FetchSettings
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.logline import UpdateStatus
from staplegate.ocsp.machine import State
from staplegate.ocsp.request import build_request
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.ocsp.verify import CertStatus, FailureReason
from staplegate.store import FileStapleStore
from staplegate.testpki.ca import CertificateAuthority, IssuedCertificate
from staplegate.updater.driver import ALERT, NOTICE, UpdaterEntry
from staplegate.updater.results import (
    NO_MATCHING_CERTIFICATE,
    RESPONSE_UPDATED,
    SetRefusal,
    UpdateResult,
    UpdaterNotRunning,
)
from staplegate.updater.service import OcspUpdater

pytestmark = pytest.mark.openssl

T = TypeVar("T")
CT = {"Content-Type": "application/ocsp-response"}
FAST = FetchSettings(connect_timeout=1.0, total_timeout=5.0, connect_retries=0)
WAIT = 10.0  # upper bound for any readiness wait; normal runs take milliseconds


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class OffsetClock:
    """Wall time plus an offset the test controls (the updater re-reads it on `wake()`)."""

    def __init__(self) -> None:
        self._system = SystemClock()
        self.offset = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return self._system.now() + self.offset


class Mode(enum.Enum):
    OK = "ok"
    ERROR_500 = "500"
    HANG = "hang"
    GARBAGE = "garbage"
    ROGUE = "rogue"


@dataclass
class Rogue:
    """A self-signed key pair the CA never heard of."""

    cert_path: Path
    key_path: Path


def make_rogue(directory: Path) -> Rogue:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Rogue OCSP Responder")])
    now = SystemClock().now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "rogue.pem", directory / "rogue.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return Rogue(cert_path, key_path)


@dataclass
class OpensslPki:
    ca: CertificateAuthority
    signer_cert: Path
    signer_key: Path
    rogue: Rogue
    work: Path

    def answer(self, request_der: bytes, *, rogue: bool = False) -> bytes:
        """The one-shot `openssl ocsp` responder's answer to `request_der`."""
        cert, key = (
            (self.rogue.cert_path, self.rogue.key_path)
            if rogue
            else (self.signer_cert, self.signer_key)
        )
        with tempfile.TemporaryDirectory(dir=self.work) as scratch:
            request, response = Path(scratch) / "req.der", Path(scratch) / "resp.der"
            request.write_bytes(request_der)
            subprocess.run(
                [
                    "openssl", "ocsp", "-index", str(self.ca.index_path),
                    "-CA", str(self.ca.ca_cert_path), "-rsigner", str(cert), "-rkey", str(key),
                    "-reqin", str(request), "-respout", str(response), "-ndays", "1",
                ],
                check=True,
                capture_output=True,
            )  # fmt: skip
            return response.read_bytes()

    def answer_for(self, leaf: IssuedCertificate, *, rogue: bool = False) -> bytes:
        return self.answer(build_request(cert_id(leaf)), rogue=rogue)


@pytest.fixture
def openssl_pki(tmp_path: Path) -> OpensslPki:
    ca = CertificateAuthority.init(tmp_path / "ca", ocsp_url=None)
    signer = ca.ocsp_signer()
    work = tmp_path / "work"
    work.mkdir()
    return OpensslPki(ca, signer.cert_path, signer.key_path, make_rogue(tmp_path / "rogue"), work)


@dataclass
class Responder:
    """State of one test responder; `mode` may change while it runs."""

    openssl_pki: OpensslPki
    url: str = ""
    mode: Mode = Mode.OK
    requests: int = 0
    hanging: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.mode is Mode.ERROR_500:
            return web.Response(status=500, text="responder down")
        if self.mode is Mode.HANG:
            self.hanging.set()
            await self.release.wait()
            return web.Response(status=503, text="released")
        if self.mode is Mode.GARBAGE:
            return web.Response(body=b"\x30\x03garbage", headers=CT)
        if request.method == "POST":
            request_der = await request.read()
        else:
            request_der = base64.b64decode(unquote(request.raw_path.rsplit("/", 1)[1]))
        answer = await asyncio.to_thread(
            self.openssl_pki.answer, request_der, rogue=self.mode is Mode.ROGUE
        )
        return web.Response(body=answer, headers=CT)


@asynccontextmanager
async def responder(openssl_pki: OpensslPki) -> AsyncIterator[Responder]:
    state = Responder(openssl_pki)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    # typeshed's AbstractServer has no `sockets` (asyncio.Server and uvloop's do)
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


def cert_id(leaf: IssuedCertificate) -> CertId:
    return CertId.for_certificate(leaf.certificate, leaf.issuer)


def entry(
    leaf: IssuedCertificate,
    *,
    auto_update: bool = True,
    path: str | None = None,
    sidecar: bytes | None = None,
) -> UpdaterEntry:
    aia = leaf.certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    uri = str(aia.value[0].access_location.value)
    return UpdaterEntry(
        certificate=leaf.certificate,
        issuer=leaf.issuer,
        path=path or str(leaf.bundle_path),
        uri=uri,
        auto_update=auto_update,
        sidecar_ocsp=sidecar,
    )


class Tables:
    """Records every table `on_staples` receives and lets a test wait for a condition."""

    def __init__(self) -> None:
        self.history: list[dict[CertId, bytes]] = []
        self._changed = asyncio.Event()

    def __call__(self, table: Mapping[CertId, bytes]) -> None:
        self.history.append(dict(table))
        self._changed.set()

    @property
    def latest(self) -> dict[CertId, bytes]:
        return self.history[-1] if self.history else {}

    async def wait_for(self, predicate: Callable[[dict[CertId, bytes]], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate(self.latest):
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def running(updater: OcspUpdater) -> AsyncIterator[OcspUpdater]:
    started = asyncio.Event()
    task = asyncio.create_task(updater.run(started=started))
    async with asyncio.timeout(WAIT):
        await started.wait()
    try:
        yield updater
    finally:
        updater.stop()
        async with asyncio.timeout(WAIT):
            await task


def make_updater(
    entries: list[UpdaterEntry],
    tables: Tables,
    *,
    store: FileStapleStore | None = None,
    clock: OffsetClock | None = None,
    fetch: FetchSettings = FAST,
    settings: UpdateSettings | None = None,
) -> OcspUpdater:
    import random

    return OcspUpdater(
        entries,
        update_settings=settings or UpdateSettings(),
        fetch_settings=fetch,
        on_staples=tables,
        store=store,
        clock=clock or OffsetClock(),
        rng=random.Random(7),
    )


def update_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("<OCSP-UPDATE>")]


@pytest.fixture(autouse=True)
def _capture(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="staplegate.ocsp")


# --- tests ---


def test_startup_fetches_every_certificate_persists_and_restarts_from_the_store(
    openssl_pki: OpensslPki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileStapleStore(tmp_path / "state")

    async def scenario() -> None:
        async with responder(openssl_pki) as ocsp_server:
            leaves = [
                openssl_pki.ca.issue(f"www{i}.test", ocsp_url=ocsp_server.url) for i in range(3)
            ]
            ids = {cert_id(leaf) for leaf in leaves}
            tables = Tables()
            updater = make_updater([entry(leaf) for leaf in leaves], tables, store=store)
            async with running(updater):
                assert tables.history == [{}]  # nothing stored yet: an empty first table
                await tables.wait_for(lambda table: set(table) == ids)
                await updater.flush()
            assert ocsp_server.requests == 3
            for leaf in leaves:
                assert f'<OCSP-UPDATE> {leaf.bundle_path} 1 "Update successful" 0 1' in (
                    update_lines(caplog)
                )
            notices = [r for r in caplog.records if r.getMessage().startswith("<OCSP-UPDATE>")]
            assert {r.levelno for r in notices} == {NOTICE}
            assert store.load_all() == tables.latest
            served = tables.latest
            rows = {row.cert_id: row for row in updater.snapshot()}
            for leaf in leaves:
                row = rows[cert_id(leaf)]
                assert row.successes == 1
                assert row.failures == 0
                assert row.last_status is UpdateStatus.SUCCESS
                assert row.staple is not None
                assert row.staple.status is CertStatus.GOOD
                assert row.staple.served

            # Restart with the responder down: the persisted staples are served at once.
            ocsp_server.mode = Mode.ERROR_500
            before = ocsp_server.requests
            caplog.clear()
            tables2 = Tables()
            updater2 = make_updater([entry(leaf) for leaf in leaves], tables2, store=store)
            async with running(updater2):
                assert tables2.history[0] == served
                rows2 = updater2.snapshot()
                for _ in range(5):
                    await asyncio.sleep(0)  # let the scheduler run a few turns
            assert ocsp_server.requests == before
            assert update_lines(caplog) == []
            now = SystemClock().now()
            for row in rows2:
                assert row.state is State.WAITING
                assert row.next_attempt is not None
                assert row.next_attempt >= now + dt.timedelta(seconds=250)  # mindelay 300 - slack

    run(scenario())


def test_same_certificate_in_two_files_shares_one_entry_and_one_fetch(
    openssl_pki: OpensslPki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with responder(openssl_pki) as ocsp_server:
            leaf = openssl_pki.ca.issue("shared.test", ocsp_url=ocsp_server.url)
            tables = Tables()
            first = entry(leaf, path="/etc/certs/a.pem", auto_update=False)
            second = entry(leaf, path="/etc/certs/b.pem", auto_update=True)
            updater = make_updater([first, second], tables)
            async with running(updater):
                await tables.wait_for(lambda table: cert_id(leaf) in table)
                (row,) = updater.snapshot()
            assert ocsp_server.requests == 1
            assert row.path == "/etc/certs/a.pem"
            assert row.paths == ("/etc/certs/a.pem", "/etc/certs/b.pem")
            assert row.auto_update  # on because one of the files asks for it
            assert update_lines(caplog) == [
                '<OCSP-UPDATE> /etc/certs/a.pem 1 "Update successful" 0 1'
            ]
            assert updater.find("/etc/certs/b.pem") == cert_id(leaf)
            assert updater.find(cert_id(leaf).hex) == cert_id(leaf)

    run(scenario())


def test_revoked_certificate_is_stapled_and_raises_an_alert(
    openssl_pki: OpensslPki, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with responder(openssl_pki) as ocsp_server:
            leaf = openssl_pki.ca.issue("revoked.test", ocsp_url=ocsp_server.url)
            openssl_pki.ca.revoke("revoked.test", reason="keyCompromise")
            tables = Tables()
            revoked: list[tuple[str, str | None, str]] = []
            updater = make_updater([entry(leaf)], tables)
            updater._on_revocation = lambda r: revoked.append((r.path, r.reason, r.source))
            async with running(updater):
                outcome = await updater.update_now(cert_id(leaf), timeout=WAIT)
                (row,) = updater.snapshot()
            assert outcome.ok, outcome
            assert cert_id(leaf) in tables.latest
            assert row.staple is not None
            assert row.staple.status is CertStatus.REVOKED
            assert row.revocations == 1
            assert updater.revocations_detected == 1
            assert revoked == [(str(leaf.bundle_path), "keyCompromise", "ocsp")]
            alerts = [r.getMessage() for r in caplog.records if r.levelno == ALERT]
            assert len(alerts) == 1
            assert str(leaf.bundle_path) in alerts[0]
            assert "REVOKED" in alerts[0]

    run(scenario())


def test_hung_responder_does_not_delay_a_certificate_on_another_responder(
    openssl_pki: OpensslPki, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with responder(openssl_pki) as stuck, responder(openssl_pki) as healthy:
            stuck.mode = Mode.HANG
            slow = openssl_pki.ca.issue("slow.test", ocsp_url=stuck.url)
            fast = openssl_pki.ca.issue("fast.test", ocsp_url=healthy.url)
            tables = Tables()
            patient = FetchSettings(connect_timeout=1.0, total_timeout=60.0, connect_retries=0)
            # the stuck certificate comes first, as HAProxy would fetch it first
            updater = make_updater([entry(slow), entry(fast)], tables, fetch=patient)
            loop = asyncio.get_running_loop()
            async with running(updater):
                began = loop.time()
                await tables.wait_for(lambda table: cert_id(fast) in table)
                elapsed = loop.time() - began
                assert stuck.hanging.is_set()
                assert cert_id(slow) not in tables.latest
                assert updater.fetches_in_flight == 1  # the hung one, still waiting
                states = {row.cert_id: row.state for row in updater.snapshot()}
                assert states == {cert_id(slow): State.FETCHING, cert_id(fast): State.WAITING}
                # staplegate_ocsp_fetch_duration_seconds: a finished fetch is timed, per
                # responder; the hung one is not there until it ends
                durations = updater.fetch_durations()
                assert set(durations) == {healthy.url}
                assert durations[healthy.url].count == 1
                assert 0 < durations[healthy.url].sum_s < elapsed
            assert elapsed < 3.0
            assert update_lines(caplog) == [
                f'<OCSP-UPDATE> {fast.bundle_path} 1 "Update successful" 0 1'
            ]

    run(scenario())


def test_hung_responder_times_out_with_a_specific_reason(
    openssl_pki: OpensslPki, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with responder(openssl_pki) as stuck:
            stuck.mode = Mode.HANG
            leaf = openssl_pki.ca.issue("hang.test", ocsp_url=stuck.url)
            tables = Tables()
            quick = FetchSettings(connect_timeout=1.0, total_timeout=0.5, connect_retries=0)
            updater = make_updater([entry(leaf)], tables, fetch=quick)
            async with running(updater):
                outcome = await updater.update_now(cert_id(leaf), timeout=WAIT)
            assert outcome.result is UpdateResult.COMPLETED
            assert outcome.status is UpdateStatus.HTTP_ERROR
            assert outcome.detail is not None
            assert "timeout after 0.5s" in outcome.detail
            (timed,) = updater.fetch_durations().values()  # a timeout counts at the timeout
            assert (timed.count, timed.cumulative[:7]) == (1, (0,) * 7)  # none within 0.5 s
            assert 0.5 <= timed.sum_s < 1.0
            (line,) = update_lines(caplog)
            assert line.startswith(f'<OCSP-UPDATE> {leaf.bundle_path} 2 "HTTP error (timeout')
            assert line.endswith('" 1 0')

    run(scenario())


def test_failure_keeps_the_last_good_staple(
    openssl_pki: OpensslPki, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with responder(openssl_pki) as ocsp_server:
            leaf = openssl_pki.ca.issue("keep.test", ocsp_url=ocsp_server.url)
            tables = Tables()
            updater = make_updater([entry(leaf)], tables)
            async with running(updater):
                await tables.wait_for(lambda table: cert_id(leaf) in table)
                good = tables.latest[cert_id(leaf)]
                published = len(tables.history)
                ocsp_server.mode = Mode.ERROR_500
                outcome = await updater.update_now(cert_id(leaf), timeout=WAIT)
                (row,) = updater.snapshot()
            assert outcome.status is UpdateStatus.HTTP_ERROR
            assert outcome.detail is not None
            assert outcome.text == f"HTTP error (HTTP 500 from {outcome.detail.split()[-1]})"
            assert (outcome.failures, outcome.successes) == (1, 1)
            assert len(tables.history) == published  # nothing withdrawn, nothing republished
            assert tables.latest[cert_id(leaf)] == good
            assert row.staple is not None
            assert row.staple.served
            assert row.last_status_text.startswith("HTTP error (HTTP 500 from http://127.0.0.1:")
            lines = update_lines(caplog)
            assert lines[-1].startswith(f'<OCSP-UPDATE> {leaf.bundle_path} 2 "HTTP error (')
            assert lines[-1].endswith(')" 1 1')

    run(scenario())


@pytest.mark.parametrize(
    ("mode", "detail"),
    [
        (Mode.ROGUE, "OCSP response check failure (OCSP_basic_verify() failed)"),
        (Mode.GARBAGE, "OCSP response check failure (d2i_OCSP_RESPONSE() failed)"),
    ],
)
def test_forged_or_garbage_response_is_never_installed(
    openssl_pki: OpensslPki, caplog: pytest.LogCaptureFixture, mode: Mode, detail: str
) -> None:
    async def scenario() -> None:
        async with responder(openssl_pki) as ocsp_server:
            ocsp_server.mode = mode
            leaf = openssl_pki.ca.issue("forged.test", ocsp_url=ocsp_server.url)
            tables = Tables()
            updater = make_updater([entry(leaf)], tables)
            async with running(updater):
                outcome = await updater.update_now(cert_id(leaf), timeout=WAIT)
            assert outcome.status is UpdateStatus.CHECK_FAILURE
            assert outcome.text == detail
            assert tables.history == [{}]
            assert update_lines(caplog) == [f'<OCSP-UPDATE> {leaf.bundle_path} 4 "{detail}" 1 0']

    run(scenario())


def test_runtime_update_and_set_response(
    openssl_pki: OpensslPki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileStapleStore(tmp_path / "state")

    async def scenario() -> None:
        async with responder(openssl_pki) as ocsp_server:
            leaf = openssl_pki.ca.issue("manual.test", ocsp_url=ocsp_server.url)
            stranger = openssl_pki.ca.issue("stranger.test", ocsp_url=ocsp_server.url)
            tables = Tables()
            updater = make_updater([entry(leaf, auto_update=False)], tables, store=store)
            async with running(updater):
                for _ in range(5):
                    await asyncio.sleep(0)
                assert ocsp_server.requests == 0  # auto-update off: nothing fetched by itself

                foreign = updater.set_response(openssl_pki.answer_for(stranger))
                assert not foreign.accepted
                assert foreign.refusal is SetRefusal.NO_MATCHING_CERTIFICATE
                assert foreign.message == NO_MATCHING_CERTIFICATE

                forged = updater.set_response(openssl_pki.answer_for(leaf, rogue=True))
                assert not forged.accepted
                assert forged.refusal is SetRefusal.VERIFICATION_FAILED
                assert forged.failure is FailureReason.SIGNER_NOT_AUTHORIZED
                assert forged.message.startswith("OCSP response signer not authorized")
                assert forged.path == str(leaf.bundle_path)

                garbage = updater.set_response(b"not an OCSP response")
                assert garbage.refusal is SetRefusal.UNREADABLE
                assert garbage.failure is FailureReason.UNPARSABLE
                assert tables.history == [{}]

                valid = openssl_pki.answer_for(leaf)
                accepted = updater.set_response(valid)
                assert accepted.accepted
                assert accepted.message == RESPONSE_UPDATED
                assert tables.latest == {cert_id(leaf): valid}
                await updater.flush()
                assert store.load_all() == {cert_id(leaf): valid}

                # `update ssl ocsp-response` with auto-update off: one fetch, reported
                outcome = await updater.update_now(cert_id(leaf), timeout=WAIT)
                assert outcome.ok
                assert outcome.text == "Update successful"
                assert (outcome.failures, outcome.successes) == (0, 1)
                assert ocsp_server.requests == 1
                (row,) = updater.snapshot()
                assert row.state is State.IDLE  # one-shot: not queued again

                unknown = await updater.update_now(cert_id(stranger), timeout=WAIT)
                assert unknown.result is UpdateResult.UNKNOWN_CERTIFICATE
            assert update_lines(caplog) == [
                f'<OCSP-UPDATE> {leaf.bundle_path} 1 "Update successful" 0 1'
            ]

    run(scenario())


def test_update_now_reports_timeout_and_continues(openssl_pki: OpensslPki) -> None:
    async def scenario() -> None:
        async with responder(openssl_pki) as stuck:
            stuck.mode = Mode.HANG
            leaf = openssl_pki.ca.issue("wait.test", ocsp_url=stuck.url)
            patient = FetchSettings(connect_timeout=1.0, total_timeout=60.0, connect_retries=0)
            updater = make_updater([entry(leaf, auto_update=False)], Tables(), fetch=patient)
            async with running(updater):
                outcome = await updater.update_now(cert_id(leaf), timeout=0.3)
                assert outcome.result is UpdateResult.TIMED_OUT
                assert outcome.status is UpdateStatus.UNKNOWN
                assert stuck.hanging.is_set()
                (row,) = updater.snapshot()
                assert row.state is State.FETCHING

    run(scenario())


def test_sidecar_ocsp_is_verified_before_serving(
    openssl_pki: OpensslPki, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        good = openssl_pki.ca.issue("sidecar.test", ocsp_url="http://127.0.0.1:9/unused")
        forged = openssl_pki.ca.issue("forged-sidecar.test", ocsp_url="http://127.0.0.1:9/unused")
        tables = Tables()
        updater = make_updater(
            [
                entry(good, auto_update=False, sidecar=openssl_pki.answer_for(good)),
                entry(
                    forged, auto_update=False, sidecar=openssl_pki.answer_for(forged, rogue=True)
                ),
            ],
            tables,
        )
        async with running(updater):
            assert set(tables.history[0]) == {cert_id(good)}
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any(
            str(forged.bundle_path) in w and "Content will be ignored" in w for w in warnings
        )

    run(scenario())


def test_expired_staple_is_withdrawn(
    openssl_pki: OpensslPki, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with responder(openssl_pki) as ocsp_server:
            leaf = openssl_pki.ca.issue("expiring.test", ocsp_url=ocsp_server.url)
            clock = OffsetClock()
            tables = Tables()
            updater = make_updater([entry(leaf)], tables, clock=clock)
            async with running(updater):
                await tables.wait_for(lambda table: cert_id(leaf) in table)
                (row,) = updater.snapshot()
                assert row.staple is not None
                ocsp_server.mode = Mode.ERROR_500
                # nextUpdate is one day out: jump past nextUpdate - 300 s
                clock.offset = row.staple.next_update - clock.now() - dt.timedelta(seconds=200)
                updater.wake()
                await tables.wait_for(lambda table: cert_id(leaf) not in table)
                (row,) = updater.snapshot()
            assert row.staple is not None
            assert not row.staple.served
            messages = caplog.messages
            assert any(
                "OCSP staple withdrawn" in m and str(leaf.bundle_path) in m for m in messages
            )

    run(scenario())


@pytest.mark.parametrize("how", ["stop", "cancel"])
def test_stopping_cancels_hung_fetches_and_answers_waiting_callers(
    openssl_pki: OpensslPki, how: str
) -> None:
    async def scenario() -> None:
        async with responder(openssl_pki) as stuck:
            stuck.mode = Mode.HANG
            leaf = openssl_pki.ca.issue("stop.test", ocsp_url=stuck.url)
            patient = FetchSettings(connect_timeout=1.0, total_timeout=60.0, connect_retries=0)
            updater = make_updater([entry(leaf)], Tables(), fetch=patient)
            started = asyncio.Event()
            task = asyncio.create_task(updater.run(started=started))
            await started.wait()
            waiting = asyncio.create_task(updater.update_now(cert_id(leaf), timeout=60))
            async with asyncio.timeout(WAIT):
                await stuck.hanging.wait()
            assert updater.fetches_in_flight == 1
            began = asyncio.get_running_loop().time()
            if how == "stop":
                updater.stop()
                await task
            else:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            outcome = await waiting
            assert asyncio.get_running_loop().time() - began < 2.0
            assert outcome.result is UpdateResult.STOPPED
            assert updater.fetches_in_flight == 0
            with pytest.raises(UpdaterNotRunning):
                updater.set_response(b"")

    run(scenario())


def test_reconfigure_keeps_unchanged_certificates_and_their_staples(
    openssl_pki: OpensslPki, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with responder(openssl_pki) as ocsp_server:
            kept, dropped, added = (
                openssl_pki.ca.issue(f"{name}.test", ocsp_url=ocsp_server.url)
                for name in ("kept", "dropped", "added")
            )
            tables = Tables()
            updater = make_updater([entry(kept), entry(dropped)], tables)
            async with running(updater):
                await tables.wait_for(lambda t: set(t) == {cert_id(kept), cert_id(dropped)})
                staple = tables.latest[cert_id(kept)]
                published = len(tables.history)

                await updater.reconfigure([entry(kept, path="/new/kept.pem"), entry(added)])
                assert len(tables.history) == published + 1  # one new table, whole
                assert tables.latest == {cert_id(kept): staple}  # dropped is withdrawn at once
                await tables.wait_for(lambda t: set(t) == {cert_id(kept), cert_id(added)})
                rows = {row.cert_id: row for row in updater.snapshot()}
                assert set(rows) == {cert_id(kept), cert_id(added)}
                assert rows[cert_id(kept)].path == "/new/kept.pem"
                assert rows[cert_id(kept)].successes == 1  # same machine, nothing refetched
                assert ocsp_server.requests == 3

                # auto-update switched off: a new machine, started from the staple held so far
                await updater.reconfigure([entry(kept, auto_update=False), entry(added)])
                assert tables.latest[cert_id(kept)] == staple
                rows = {row.cert_id: row for row in updater.snapshot()}
                assert rows[cert_id(kept)].state is State.IDLE
                assert rows[cert_id(kept)].successes == 0
                assert updater.find(str(dropped.bundle_path)) is None
                gone = await updater.update_now(cert_id(dropped), timeout=1)
                assert gone.result is UpdateResult.UNKNOWN_CERTIFICATE
            assert ocsp_server.requests == 3

    run(scenario())
