"""Certificates and an updater without the network, shared by the updater's unit tests."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping

import pytest

from staplegate.clock import ManualClock
from staplegate.fetch.client import FetchSettings
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.testpki.ca import CertificateAuthority, IssuedCertificate
from staplegate.updater.driver import UpdaterEntry
from staplegate.updater.service import OcspUpdater

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def leaves(tmp_path_factory: pytest.TempPathFactory) -> tuple[IssuedCertificate, ...]:
    ca = CertificateAuthority.init(tmp_path_factory.mktemp("ca"), ocsp_url="http://127.0.0.1:9")
    no_uri = ca.issue("no-uri.test", ocsp_url=None)
    return ca.issue("a.test"), ca.issue("b.test"), no_uri


def entry(leaf: IssuedCertificate, path: str, *, uri: str | None, auto: bool) -> UpdaterEntry:
    return UpdaterEntry(leaf.certificate, leaf.issuer, path, uri, auto_update=auto)


def make_updater(entries: list[UpdaterEntry], tables: list[Mapping[CertId, bytes]]) -> OcspUpdater:
    return OcspUpdater(
        entries,
        update_settings=UpdateSettings(),
        fetch_settings=FetchSettings(),
        on_staples=tables.append,
        clock=ManualClock(NOW),
        rng=random.Random(1),
    )
