"""Client certificates on the memory-BIO endpoint: verify modes, CRLs, ignore lists,
and the verify result kept for `ssl_c_verify`."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from OpenSSL import SSL

from staplegate.testpki.ca import CertificateAuthority
from staplegate.tls.contexts import (
    CertificateBinding,
    ClientVerification,
    ClientVerify,
    ServerContext,
    TlsBindSettings,
    TlsSetupError,
    TlsSetupErrorReason,
    build_context,
    load_client_ca,
    load_crls,
)
from staplegate.tls.endpoint import TlsEndpoint, TlsEndpointError
from staplegate.tls.staples import StapleStats, StapleTable

from .tls_unit_pki import UnitPki

REVOKED = 23  # X509_V_ERR_CERT_REVOKED
UNKNOWN_ISSUER = 20  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    directory = tmp_path_factory.mktemp("clients")
    ca = CertificateAuthority.init(directory / "ca")
    other = CertificateAuthority.init(directory / "other")
    good = ca.issue("alice")
    revoked = ca.issue("mallory")
    ca.revoke("mallory")
    crl = ca.crl()
    stranger = other.issue("eve")
    return {
        "ca": str(ca.root_cert_path),
        "crl": str(crl),
        "good": good,
        "revoked": revoked,
        "stranger": stranger,
    }


def server(
    unit_pki: UnitPki,
    clients: dict[str, object],
    verify: ClientVerify,
    *,
    crl: bool = False,
    crt_ignore: frozenset[int] = frozenset(),
) -> ServerContext:
    verification = ClientVerification(
        verify=verify,
        ca_certificates=load_client_ca(str(clients["ca"])),
        crls=load_crls(str(clients["crl"])) if crl else (),
        crt_ignore=crt_ignore,
    )
    return build_context(
        CertificateBinding(unit_pki.ec, client=verification), TlsBindSettings(), generation=1
    )


def client_context(issued: object | None) -> SSL.Context:
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if issued is not None:
        context.use_certificate(issued.certificate)  # type: ignore[attr-defined]
        context.use_privatekey(issued.private_key)  # type: ignore[attr-defined]
    return context


def run(
    context: ServerContext, client: SSL.Context, session: SSL.Session | None = None
) -> tuple[TlsEndpoint, SSL.Session | None]:
    """Handshake plus one request (TLS 1.3 reports a client certificate failure after the
    client's Finished, so the server has to read once more)."""
    endpoint = TlsEndpoint(context, StapleTable(), StapleStats())
    conn = SSL.Connection(client, None)
    conn.set_connect_state()
    if session is not None:
        conn.set_session(session)
    for _ in range(10):
        with contextlib.suppress(SSL.WantReadError):
            conn.do_handshake()
        with contextlib.suppress(SSL.WantReadError, SSL.Error):
            conn.send(b"x")
        try:
            out = conn.bio_read(65536)
        except SSL.WantReadError:
            out = b""
        if out:
            result = endpoint.receive(out)
            if result.to_peer:
                conn.bio_write(result.to_peer)
            if result.plaintext:
                return endpoint, conn.get_session()
    raise AssertionError("the handshake did not finish")


def test_required_refuses_no_certificate_revoked_and_foreign(
    unit_pki: UnitPki, clients: dict[str, object]
) -> None:
    context = server(unit_pki, clients, ClientVerify.REQUIRED, crl=True)
    for who in (None, "revoked", "stranger"):
        with pytest.raises(TlsEndpointError):
            run(context, client_context(clients[who] if who else None))
    endpoint, _ = run(context, client_context(clients["good"]))
    cert = endpoint.session_info().client_certificate
    assert cert is not None
    assert (cert.verify_result, cert.subject.oneline()) == (0, "/CN=alice")


def test_optional_accepts_no_certificate(unit_pki: UnitPki, clients: dict[str, object]) -> None:
    context = server(unit_pki, clients, ClientVerify.OPTIONAL)
    endpoint, _ = run(context, client_context(None))
    assert endpoint.session_info().client_certificate is None
    with pytest.raises(TlsEndpointError):
        run(context, client_context(clients["stranger"]))


def test_ignored_error_is_kept_for_ssl_c_verify(
    unit_pki: UnitPki, clients: dict[str, object]
) -> None:
    context = server(
        unit_pki,
        clients,
        ClientVerify.REQUIRED,
        crl=True,
        crt_ignore=frozenset({REVOKED}),
    )
    endpoint, _ = run(context, client_context(clients["revoked"]))
    cert = endpoint.session_info().client_certificate
    assert cert is not None
    assert cert.verify_result == REVOKED
    with pytest.raises(TlsEndpointError):  # only the listed error is forgiven
        run(context, client_context(clients["stranger"]))


def test_verify_without_ca_is_a_setup_error(unit_pki: UnitPki, tmp_path: Path) -> None:
    with pytest.raises(TlsSetupError) as error:
        build_context(
            CertificateBinding(
                unit_pki.ec, client=ClientVerification(verify=ClientVerify.OPTIONAL)
            ),
            TlsBindSettings(),
            generation=1,
        )
    assert error.value.reason is TlsSetupErrorReason.NO_CLIENT_CA
    empty = tmp_path / "empty.pem"
    empty.write_text("nothing\n")
    with pytest.raises(ValueError, match="PEM"):
        load_client_ca(str(empty))
    with pytest.raises(ValueError, match="no PEM CRL"):
        load_crls(str(empty))
