"""The CRL watcher against a real HTTP server on 127.0.0.1 serving a CRL that changes."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from staplegate.clock import SystemClock
from staplegate.fetch.client import FetchSettings, OcspHttpClient
from staplegate.fetch.gate import FetchGate, HostRateLimiter
from staplegate.updater.crl_watch import CrlTarget, WatchStatus, state_file_name
from staplegate.updater.crl_watcher import ALERT, CrlWatcher
from tests.fuzz_targets.crl_verify import pki

DEADLINE_S = 20.0


@dataclass
class Responder:
    """Serves `body` at /crl; counts the requests."""

    body: bytes = b""
    requests: int = 0

    async def handle(self, _request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(body=self.body, content_type="application/pkix-crl")


@asynccontextmanager
async def serving(responder: Responder) -> AsyncIterator[web.AppRunner]:
    app = web.Application()
    app.router.add_get("/crl", responder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner
    finally:
        await runner.cleanup()


def _port(runner: web.AppRunner) -> int:
    server = runner.server
    assert runner.addresses
    assert server is not None
    return int(runner.addresses[0][1])


def _leaf(url: str, serial: int, *mirrors: str) -> x509.Certificate:
    world = pki()
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes([9]) * 32)
    now = dt.datetime.now(dt.UTC)
    point = x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(u) for u in (url, *mirrors)],
        relative_name=None,
        reasons=None,
        crl_issuer=None,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(world.leaf.subject)
        .issuer_name(world.ca.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.CRLDistributionPoints([point]), critical=False)
        .sign(world.ca_key, None)
    )


def _crl(*, revoked: tuple[int, ...], next_update_s: float) -> bytes:
    world = pki()
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(world.ca.subject)
        .last_update(now - dt.timedelta(minutes=1))
        .next_update(now + dt.timedelta(seconds=next_update_s))
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(now - dt.timedelta(seconds=30))
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    return builder.sign(world.ca_key, None).public_bytes(serialization.Encoding.DER)


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` until it holds or the deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {DEADLINE_S} s: {what}")
        await asyncio.sleep(0.05)


def _watcher(url: str, state_dir: Path, client: OcspHttpClient) -> CrlWatcher:
    gate = FetchGate(HostRateLimiter(rate=50, burst=50), max_concurrent=4)
    targets = [
        CrlTarget("/site-a.pem", _leaf(url, 0x501), pki().ca),
        CrlTarget("/site-b.pem", _leaf(url, 0x502), pki().ca),
    ]
    return CrlWatcher(targets, client=client, gate=gate, clock=SystemClock(), state_dir=state_dir)


def _run(test: Callable[[], Coroutine[None, None, None]]) -> None:
    asyncio.run(test())


def test_one_fetch_per_url_revocation_on_next_update_and_verdict_kept_offline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="staplegate.crl")

    async def scenario() -> None:
        responder = Responder(_crl(revoked=(), next_update_s=2))
        client = OcspHttpClient(FetchSettings(connect_timeout=2.0, connect_retries=0))
        try:
            async with serving(responder) as runner:
                url = f"http://127.0.0.1:{_port(runner)}/crl"
                watcher = _watcher(url, tmp_path, client)
                (source,) = watcher.sources
                task = asyncio.create_task(watcher.run())
                await _until(lambda: source.successes >= 1, "the first fetch")
                assert responder.requests == 1  # two certificates, one fetch
                assert source.verdict("/site-a.pem").status is WatchStatus.GOOD
                assert source.verdict("/site-b.pem").status is WatchStatus.GOOD
                assert (tmp_path / state_file_name(url)).exists()
                # revoke one; the watch refetches on the CRL's nextUpdate (2 s away)
                # (nextUpdate 10 min away: no scheduled refetch interferes below, however slow)
                responder.body = _crl(revoked=(0x502,), next_update_s=600)
                await _until(
                    lambda: source.verdict("/site-b.pem").status is WatchStatus.REVOKED,
                    "the revocation seen on the next refresh",
                )
                assert source.verdict("/site-a.pem").status is WatchStatus.GOOD
                state_file = tmp_path / state_file_name(url)
                await _until(
                    lambda: b'"revoked"' in state_file.read_bytes(),
                    "the revoked verdict written to the state directory (off the loop)",
                )
                alerts = [r for r in caplog.records if r.levelno == ALERT]
                assert len(alerts) == 1
                assert "/site-b.pem is REVOKED" in alerts[0].getMessage()
                assert "keyCompromise" in alerts[0].getMessage()
            # the responder is gone: a forced refresh fails, the verdicts stay
            await watcher.refresh(url)
            assert source.failures == 1
            assert source.verdict("/site-b.pem").status is WatchStatus.REVOKED
            assert source.verdict("/site-a.pem").status is WatchStatus.GOOD
            lines = [r.getMessage() for r in caplog.records if "<CRL-UPDATE>" in r.getMessage()]
            assert any(f"{url} connect-failed" in line for line in lines), lines
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            # a restart knows the verdicts before any fetch
            restarted = _watcher(url, tmp_path, client)
            await restarted.restore()
            (again,) = restarted.sources
            assert again.verdict("/site-b.pem").status is WatchStatus.REVOKED
            assert again.successes == 0
        finally:
            await client.close()

    _run(scenario)


def test_a_dead_first_distribution_point_hands_over_to_the_next(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 19: the certificates' other distribution points are asked when the first fails,
    and the one that answered is asked first afterwards."""
    caplog.set_level(logging.INFO, logger="staplegate.crl")

    async def scenario() -> None:
        responder = Responder(_crl(revoked=(0x502,), next_update_s=60))
        async with serving(responder) as runner:
            dead = "http://127.0.0.1:9/crl"  # the discard port: connection refused
            mirror = f"http://127.0.0.1:{_port(runner)}/crl"
            client = OcspHttpClient(FetchSettings(connect_timeout=2, connect_retries=0))
            gate = FetchGate(HostRateLimiter(rate=50, burst=50), max_concurrent=4)
            targets = [CrlTarget("/site-b.pem", _leaf(dead, 0x502, mirror), pki().ca)]
            watcher = CrlWatcher(
                targets, client=client, gate=gate, clock=SystemClock(), state_dir=tmp_path
            )
            try:
                await watcher.refresh(dead)
                (source,) = watcher.sources
                assert source.verdict("/site-b.pem").status is WatchStatus.REVOKED
                assert source.answering == mirror
                handovers = [r.getMessage() for r in caplog.records if "answered" in r.getMessage()]
                assert handovers == [
                    next(h for h in handovers if h.endswith(f"; {mirror} answered"))
                ]
                await watcher.refresh(dead)
                assert responder.requests == 2
                assert len([r for r in caplog.records if "answered" in r.getMessage()]) == 1
            finally:
                await client.close()

    _run(scenario)
