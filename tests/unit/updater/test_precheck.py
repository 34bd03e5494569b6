"""precheck: the stored staples verified ahead of time (in a forked child at start-up), and
the updater starting from them: what is installed and logged is what checking them at start
would install and log."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
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
from staplegate.ocsp.verify import VerifiedStaple
from staplegate.process.forked import ForkedCall
from staplegate.store import FileStapleStore
from staplegate.testpki.ca import CertificateAuthority, IssuedCertificate
from staplegate.updater.driver import UpdaterEntry
from staplegate.updater.precheck import precheck
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


def entries(pki: Fixture) -> list[UpdaterEntry]:
    return [
        UpdaterEntry(leaf.certificate, leaf.issuer, f"/c/{leaf.name}.pem", None)
        for leaf in pki.leaves
    ]


def start(
    pki: Fixture, state: Path, prechecked: Mapping[bytes, VerifiedStaple]
) -> Mapping[CertId, bytes]:
    tables: list[Mapping[CertId, bytes]] = []
    updater = OcspUpdater(
        entries(pki),
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

    updater.use_prechecked(prechecked)
    asyncio.run(scenario())
    return tables[-1]


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


def test_precheck_returns_the_staples_that_verify_keyed_by_der(
    pki: Fixture, tmp_path: Path
) -> None:
    good = store_staples(pki, tmp_path / "state", forged={1, 4})
    stored = FileStapleStore(tmp_path / "state").load_all()

    verified = precheck(entries(pki), stored, now=pki.now)

    assert set(verified) == set(good.values())
    assert all(verified[der].cert_id == cert_id for cert_id, der in good.items())


def test_precheck_runs_in_a_forked_child_and_gives_the_same(pki: Fixture, tmp_path: Path) -> None:
    store_staples(pki, tmp_path / "state", forged={0})
    stored = FileStapleStore(tmp_path / "state").load_all()
    here = precheck(entries(pki), stored, now=pki.now)

    there = ForkedCall(lambda: precheck(entries(pki), stored, now=pki.now)).result()

    assert there == here


def test_the_updater_starts_from_prechecked_staples_and_refuses_the_rest_itself(
    pki: Fixture, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    forged = {1, COUNT - 1}
    good = store_staples(pki, tmp_path / "state", forged)
    stored = FileStapleStore(tmp_path / "state").load_all()
    verified = precheck(entries(pki), stored, now=pki.now)
    caplog.set_level(logging.DEBUG, logger="staplegate.ocsp")

    table = start(pki, tmp_path / "state", verified)

    assert dict(table) == good
    messages = [r.getMessage() for r in caplog.records]
    refused = [m for m in messages if "Content will be ignored" in m]
    assert sorted(m.split(":")[0] for m in refused) == [
        f"/c/{pki.leaves[i].name}.pem" for i in sorted(forged)
    ]
    (summary,) = [m for m in messages if "certificates started" in m]
    assert f"({COUNT - len(forged)} staples verified beforehand)" in summary


def test_a_prechecked_staple_of_another_certificate_is_verified_as_stored(
    pki: Fixture, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = store_staples(pki, tmp_path / "state", forged=set())
    stored = FileStapleStore(tmp_path / "state").load_all()
    verified = precheck(entries(pki), stored, now=pki.now)
    first, second = list(good)[:2]
    # a (buggy) precheck that filed the second certificate's staple under the first's DER
    verified[good[first]] = verified[good[second]]
    caplog.set_level(logging.DEBUG, logger="staplegate.ocsp")

    table = start(pki, tmp_path / "state", verified)

    assert dict(table) == good
    (summary,) = [
        r.getMessage() for r in caplog.records if "certificates started" in r.getMessage()
    ]
    assert f"({COUNT - 1} staples verified beforehand)" in summary


def test_without_prechecked_staples_every_one_is_verified_at_start(
    pki: Fixture, tmp_path: Path
) -> None:
    good = store_staples(pki, tmp_path / "state", forged={2})
    assert dict(start(pki, tmp_path / "state", {})) == good
