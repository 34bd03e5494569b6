"""OcspUpdater's runtime hooks without the network: refusals before `run()`, no-URI updates."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import pytest

from staplegate.ocsp.certid import CertId
from staplegate.ocsp.machine import State
from staplegate.testpki.ca import IssuedCertificate
from staplegate.updater.results import UpdaterNotRunning

from .conftest import entry as _entry
from .conftest import make_updater as _updater


def test_runtime_hooks_refuse_before_run(leaves: tuple[IssuedCertificate, ...]) -> None:
    a, _, _ = leaves
    updater = _updater([_entry(a, "/c/a.pem", uri="http://127.0.0.1:9", auto=True)], [])
    with pytest.raises(UpdaterNotRunning, match="not running"):
        updater.set_response(b"")
    cert_id = CertId.for_certificate(a.certificate, a.issuer)
    with pytest.raises(UpdaterNotRunning):
        asyncio.run(updater.update_now(cert_id, timeout=1))


def test_certificate_without_uri_is_idle_and_update_now_says_why(
    leaves: tuple[IssuedCertificate, ...], tmp_path: Path
) -> None:
    _, _, no_uri = leaves
    tables: list[Mapping[CertId, bytes]] = []
    updater = _updater([_entry(no_uri, "/c/n.pem", uri=None, auto=True)], tables)
    cert_id = CertId.for_certificate(no_uri.certificate, no_uri.issuer)

    async def scenario() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(updater.run(started=started))
        await started.wait()
        outcome = await updater.update_now(cert_id, timeout=1)
        (row,) = updater.snapshot()
        updater.stop()
        await task
        assert outcome.result.value == "cannot-fetch"
        assert outcome.text == (
            "/c/n.pem: cannot update: the certificate has no OCSP URI; "
            "check the certificate's AIA extension"
        )
        assert row.state is State.IDLE
        assert row.next_attempt is None

    asyncio.run(scenario())
    assert tables == [{}]
