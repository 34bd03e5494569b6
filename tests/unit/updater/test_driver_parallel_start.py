"""The updater's start-up split over two processes: a forked helper checks half the stored
staples with the machines' own `check`; what is installed and logged is what one process
would install and log."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import random
from collections.abc import Mapping
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from staplegate.clock import ManualClock
from staplegate.fetch.client import FetchSettings
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.store import FileStapleStore
from staplegate.testpki.ca import CertificateAuthority, IssuedCertificate
from staplegate.updater import driver
from staplegate.updater.driver import UpdaterEntry
from staplegate.updater.service import OcspUpdater
from tests.ocsp_der import resign

COUNT = 6


class Fixture:
    def __init__(self, directory: Path) -> None:
        self.ca = CertificateAuthority.init(directory / "ca", ocsp_url="http://127.0.0.1:9")
        self.signer = self.ca.ocsp_signer()
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.leaves = [self.ca.issue(f"host{i}.test") for i in range(COUNT)]

    def response(self, leaf: IssuedCertificate, *, forged: bool = False) -> bytes:
        key = self.signer.private_key
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        der = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                leaf.certificate,
                leaf.issuer,
                hashes.SHA1(),
                ocsp.OCSPCertStatus.GOOD,
                self.now - dt.timedelta(minutes=1),
                self.now + dt.timedelta(days=7),
                None,
                None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.signer.certificate)
            .certificates([self.signer.certificate])
            .sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.DER)
        )
        # forged: the same response signed by a key that is not the responder's
        return resign(der, ec.generate_private_key(ec.SECP256R1())) if forged else der


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return Fixture(tmp_path_factory.mktemp("parallel-start"))


def start(pki: Fixture, state: Path) -> tuple[Mapping[CertId, bytes], OcspUpdater]:
    tables: list[Mapping[CertId, bytes]] = []
    updater = OcspUpdater(
        [
            UpdaterEntry(leaf.certificate, leaf.issuer, f"/c/{leaf.name}.pem", None)
            for leaf in pki.leaves
        ],
        update_settings=UpdateSettings(),
        fetch_settings=FetchSettings(),
        on_staples=tables.append,
        store=FileStapleStore(state),
        clock=ManualClock(pki.now),
        rng=random.Random(1),
    )

    async def scenario() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(updater.run(started=started))
        async with asyncio.timeout(30):
            await started.wait()
        updater.stop()
        await task

    asyncio.run(scenario())
    return tables[-1], updater


def store_staples(pki: Fixture, state: Path, forged: set[int]) -> dict[CertId, bytes]:
    store = FileStapleStore(state)
    good = {}
    for index, leaf in enumerate(pki.leaves):
        cert_id = CertId.for_certificate(leaf.certificate, leaf.issuer)
        der = pki.response(leaf, forged=index in forged)
        store.save(cert_id, der)
        if index not in forged:
            good[cert_id] = der
    return good


def test_a_helper_checks_half_and_forged_staples_are_refused_whichever_half(
    pki: Fixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(driver, "PARALLEL_START_MIN", 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    forged = {1, COUNT - 1}  # one in each half (the helper checks the second)
    good = store_staples(pki, tmp_path / "state", forged)
    caplog.set_level(logging.DEBUG, logger="staplegate.ocsp")

    table, _ = start(pki, tmp_path / "state")

    assert dict(table) == good
    refused = [
        r.getMessage() for r in caplog.records if "Content will be ignored" in r.getMessage()
    ]
    assert sorted(m.split(":")[0] for m in refused) == [
        f"/c/{pki.leaves[i].name}.pem" for i in sorted(forged)
    ]
    (summary,) = [
        r.getMessage() for r in caplog.records if "certificates checked" in r.getMessage()
    ]
    helper = int(summary.split("by process ")[1].split(")")[0])
    assert helper != os.getpid()
    assert f"{COUNT} certificates checked" in summary


def test_below_the_threshold_one_process_checks_them_all(
    pki: Fixture, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = store_staples(pki, tmp_path / "state", {2})
    caplog.set_level(logging.DEBUG, logger="staplegate.ocsp")

    table, _ = start(pki, tmp_path / "state")

    assert dict(table) == good
    (summary,) = [
        r.getMessage() for r in caplog.records if "certificates checked" in r.getMessage()
    ]
    assert "by process" not in summary


class _FailedHelper:
    """A helper whose child died (a fault no real run can be made to show on demand)."""

    def __init__(self, *_: object, **__: object) -> None:
        self.pid = 4242

    def result(self) -> None:
        return None


def test_when_the_helper_fails_this_process_checks_its_half(
    pki: Fixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(driver, "PARALLEL_START_MIN", 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(driver, "ForkedCall", _FailedHelper)
    good = store_staples(pki, tmp_path / "state", {COUNT - 1})
    caplog.set_level(logging.DEBUG, logger="staplegate.ocsp")

    table, _ = start(pki, tmp_path / "state")

    assert dict(table) == good
    messages = [r.getMessage() for r in caplog.records]
    assert any("helper process 4242 failed; checking its half here" in m for m in messages)
    assert sum("Content will be ignored" in m for m in messages) == 1
