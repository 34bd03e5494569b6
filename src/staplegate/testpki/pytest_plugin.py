"""pytest fixtures for a whole test PKI: a CA, a delegated OCSP signer, and a live responder.

Register with `pytest_plugins = ["staplegate.testpki.pytest_plugin"]` (tests/conftest.py
does). Fixtures:

- `pki` — a fresh `Pki` in the test's tmp_path, responder running;
- `pki_factory` — make several (`pki_factory(name="other", key=KeyKind.RSA2048, clock=...)`),
  all stopped at teardown.

The responder runs in-process on its own thread and event loop (`BackgroundResponder`), not as
a subprocess, because tests then (1) can give it a `ManualClock` shared with the CA, (2) set
faults and read the request log as plain Python calls, with no control-port round trip,
(3) start it in milliseconds instead of paying an interpreter start and imports per test, and
(4) never leave an orphan process behind a failed test. It still listens on a real
127.0.0.1 socket, so anything (openssl, curl, a staplegate subprocess) can query it. End-to-end
tests of the `staplegate responder` command itself start it as a subprocess instead.

The responder binds first (port 0), then the CA's default OCSP URL is set to its URL, so every
certificate issued afterwards carries it; `stop()` and `start()` reuse the same port.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from staplegate.clock import Clock, SystemClock
from staplegate.testpki.ca import (
    CertificateAuthority,
    IssuedCertificate,
    KeyKind,
    SignerFiles,
)
from staplegate.testpki.faults import Fault, FaultKind, FaultPlan
from staplegate.testpki.index import IndexEntry
from staplegate.testpki.responder import (
    BackgroundResponder,
    IssuerIndex,
    OcspResponder,
    RequestRecord,
    ResponderConfig,
)
from staplegate.testpki.responder_core import Signer

DEFAULT_VALIDITY = dt.timedelta(hours=1)


class ResponderHandle:
    """The running responder of a `Pki`: URL, lifecycle, faults and the request log."""

    def __init__(self, background: BackgroundResponder) -> None:
        self._background = background

    @property
    def url(self) -> str:
        return self._background.url

    @property
    def port(self) -> int:
        return self._background.port

    @property
    def running(self) -> bool:
        return self._background.running

    @property
    def server(self) -> OcspResponder:
        return self._background.responder

    def start(self) -> None:
        self._background.start()

    def stop(self) -> None:
        self._background.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def set_fault(
        self, kind: FaultKind | str | Fault, *, serial: int | None = None, **options: Any
    ) -> None:
        """Make every later request (for `serial`, if given) fail in the way `kind` says."""
        fault = kind if isinstance(kind, Fault) else Fault(FaultKind(kind), serial, **options)
        self.set_faults(fault)

    def set_faults(self, *faults: Fault) -> None:
        self._background.set_faults(FaultPlan.of(faults))

    def clear_faults(self) -> None:
        self._background.set_faults(FaultPlan())

    @property
    def requests(self) -> list[RequestRecord]:
        return list(self._background.responder.requests)

    def clear_requests(self) -> None:
        self._background.call(self._background.responder.requests.clear)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[RequestRecord]:
        """Poll (briefly) until at least `count` requests were logged; for background fetchers."""
        deadline = time.monotonic() + timeout
        while len(self._background.responder.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"responder saw {len(self.requests)} request(s), expected {count}"
                )
            time.sleep(0.005)
        return self.requests


@dataclass
class Pki:
    """A CA directory, its delegated signer and the responder serving its index.txt."""

    ca: CertificateAuthority
    signer: SignerFiles
    responder: ResponderHandle
    clock: Clock
    directory: Path
    issued: dict[str, IssuedCertificate] = field(default_factory=dict)

    def issue(self, name: str, **options: Any) -> IssuedCertificate:
        """Issue CN=`name` (see `CertificateAuthority.issue`); it carries the responder URL."""
        certificate = self.ca.issue(name, **options)
        self.issued[name] = certificate
        return certificate

    def revoke(self, name_or_serial: str | int, *, reason: str | None = None) -> IndexEntry:
        """Revoke in index.txt; the responder sees it on its next request."""
        return self.ca.revoke(name_or_serial, reason=reason)


def make_pki(
    directory: Path,
    *,
    key: KeyKind = KeyKind.EC256,
    signer_key: KeyKind = KeyKind.EC256,
    intermediate: bool = False,
    clock: Clock | None = None,
    validity: dt.timedelta = DEFAULT_VALIDITY,
    delegated: bool = True,
) -> Pki:
    """Build a CA in `directory`, a delegated signer, and start a responder for them.

    `delegated=False` signs responses with the CA key itself.
    """
    clock = clock or SystemClock()
    ca = CertificateAuthority.init(
        directory, key=key, intermediate=intermediate, ocsp_url=None, clock=clock
    )
    signer_files = ca.ocsp_signer(key=signer_key)
    if delegated:
        signer = Signer(signer_files.certificate, signer_files.private_key)
    else:
        signer = Signer(ca.certificate, ca.private_key)
    config = ResponderConfig(
        sources=(IssuerIndex(ca.certificate, ca.index_path),),
        signer=signer,
        validity=validity,
    )
    background = BackgroundResponder(OcspResponder(config, clock=clock))
    background.start()
    try:
        ca.set_default_ocsp_url(background.url)
    except BaseException:
        background.stop()
        raise
    return Pki(ca, signer_files, ResponderHandle(background), clock, directory)


@pytest.fixture
def pki_factory(tmp_path: Path) -> Iterator[Callable[..., Pki]]:
    """Make `Pki`s (`pki_factory(name="ca", **make_pki options)`); stops them all afterwards."""
    made: list[Pki] = []

    def factory(name: str = "ca", **options: Any) -> Pki:
        pki = make_pki(tmp_path / name, **options)
        made.append(pki)
        return pki

    yield factory
    for pki in made:
        pki.responder.stop()


@pytest.fixture
def pki(pki_factory: Callable[..., Pki]) -> Pki:
    """A CA (P-256) with a delegated P-256 signer and a running responder."""
    return pki_factory()
