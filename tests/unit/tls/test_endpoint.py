"""The memory-BIO endpoint and the contexts, pumped against a pyOpenSSL client in memory."""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from OpenSSL import SSL

from staplegate.config.model import TlsVersion
from staplegate.tls import _openssl_compat
from staplegate.tls.contexts import (
    CertificateBinding,
    ServerContext,
    TlsBindSettings,
    TlsSetupError,
    TlsSetupErrorReason,
    build_context,
    build_tls_bind,
)
from staplegate.tls.endpoint import (
    AlertDescription,
    TlsEndpoint,
    TlsEndpointError,
    TlsErrorReason,
    fatal_alert,
)
from staplegate.tls.staples import StapleOutcome, StapleStats, StapleTable

from .tls_unit_pki import UnitPki


def good_staple(pki: UnitPki, leaf: x509.Certificate) -> bytes:
    now = dt.datetime.now(dt.UTC)
    response = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf,
            issuer=pki.ca.certificate,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=now,
            next_update=now + dt.timedelta(hours=1),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, pki.ca.certificate)
        .sign(pki.ca.private_key, hashes.SHA256())
    )
    return response.public_bytes(Encoding.DER)


class Client:
    """A pyOpenSSL client on memory BIOs that records the staple it receives."""

    def __init__(
        self,
        alpn: list[bytes] | None = None,
        max_version: int | None = None,
        ciphers: bytes | None = None,
    ) -> None:
        self.staples: list[bytes] = []
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        if ciphers:
            context.set_cipher_list(ciphers)
        context.set_ocsp_client_callback(self._record)
        if alpn:
            context.set_alpn_protos(alpn)
        if max_version:
            context.set_max_proto_version(max_version)
        self.conn = SSL.Connection(context, None)
        self.conn.set_connect_state()
        self.conn.request_ocsp()

    def _record(self, conn: SSL.Connection, staple: bytes, data: object) -> bool:
        self.staples.append(staple)
        return True

    def step(self) -> bytes:
        with contextlib.suppress(SSL.WantReadError):
            self.conn.do_handshake()
        try:
            return self.conn.bio_read(65536)
        except SSL.WantReadError:
            return b""


def handshake(client: Client, server: TlsEndpoint) -> None:
    for _ in range(10):
        out = client.step()
        if out:
            result = server.receive(out)
            if result.to_peer:
                client.conn.bio_write(result.to_peer)
        if server.handshake_complete:
            client.step()
            return
    raise AssertionError("handshake did not complete")


def server_for(pki: UnitPki, **settings: Any) -> ServerContext:
    return build_context(
        CertificateBinding(pki.ec),
        TlsBindSettings(**settings),
        generation=1,
    )


def test_fast_path_is_available() -> None:
    assert _openssl_compat.fast_path_available()


def test_staple_reaches_the_client_and_data_flows(unit_pki: UnitPki) -> None:
    assert unit_pki.ec.cert_id is not None
    staple = good_staple(unit_pki, unit_pki.ec.leaf)
    stats = StapleStats()
    server = TlsEndpoint(server_for(unit_pki), StapleTable({unit_pki.ec.cert_id: staple}), stats)
    client = Client()
    handshake(client, server)
    assert client.staples == [staple]
    assert stats.stapled == 1
    info = server.session_info()
    assert (info.version, info.resumed, info.staple) == ("TLSv1.3", False, StapleOutcome.STAPLED)

    client.conn.sendall(b"x" * 100_000)
    received = server.receive(client.conn.bio_read(1 << 20))
    assert b"".join(received.plaintext) == b"x" * 100_000
    client.conn.bio_write(server.send(b"reply"))
    assert client.conn.recv(100) == b"reply"

    client.conn.shutdown()
    closing = server.receive(client.conn.bio_read(65536))
    assert closing.peer_closed
    assert server.close_notify()  # our own close_notify bytes


def test_no_staple_and_must_staple(unit_pki: UnitPki) -> None:
    stats = StapleStats()
    server_ctx = build_context(CertificateBinding(unit_pki.must), TlsBindSettings(), generation=1)
    server = TlsEndpoint(server_ctx, StapleTable(), stats)
    client = Client()
    handshake(client, server)
    assert client.staples == [b""]
    assert stats.must_staple_missing == 1


def test_alpn_and_versions(unit_pki: UnitPki) -> None:
    context = server_for(unit_pki, alpn=("h2", "http/1.1"), max_version=TlsVersion.TLSV12)
    server = TlsEndpoint(context, StapleTable(), StapleStats())
    client = Client(alpn=[b"http/1.1", b"h2"])
    handshake(client, server)
    info = server.session_info()
    assert (info.alpn, info.version) == (b"h2", "TLSv1.2")


def test_version_refused_gives_an_alert(unit_pki: UnitPki) -> None:
    context = server_for(unit_pki, min_version=TlsVersion.TLSV13)
    server = TlsEndpoint(context, StapleTable(), StapleStats())
    client = Client(max_version=SSL.TLS1_2_VERSION)
    with pytest.raises(TlsEndpointError) as error:
        server.receive(client.step())
    assert error.value.reason is TlsErrorReason.HANDSHAKE_FAILED
    assert error.value.to_peer[:1] == b"\x15"  # an alert record for the client


def test_garbage_after_handshake_is_a_protocol_error(unit_pki: UnitPki) -> None:
    server = TlsEndpoint(server_for(unit_pki), StapleTable(), StapleStats())
    handshake(Client(), server)
    with pytest.raises(TlsEndpointError) as error:
        server.receive(b"\x17\x03\x03\x00\x05hello")
    assert error.value.reason is TlsErrorReason.PROTOCOL_ERROR


def test_contexts_are_built_once_per_certificate(unit_pki: UnitPki) -> None:
    bind = build_tls_bind(
        "bind :443",
        [CertificateBinding(unit_pki.ec), CertificateBinding(unit_pki.rsa)],
        TlsBindSettings(),
        generation=3,
    )
    assert [c.certificate for c in bind.contexts] == [unit_pki.ec, unit_pki.rsa]
    assert bind.sni.default is bind.contexts[0]
    assert {c.slot.generation for c in bind.contexts} == {3}
    assert unit_pki.rsa.cert_id is not None
    assert bind.contexts[1].slot.key == unit_pki.rsa.cert_id.der


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        (TlsBindSettings(ciphers="NOT-A-CIPHER"), TlsSetupErrorReason.BAD_CIPHERS),
        (TlsBindSettings(ciphersuites="TLS_NOPE"), TlsSetupErrorReason.BAD_CIPHERSUITES),
        (
            TlsBindSettings(min_version=TlsVersion.TLSV13, max_version=TlsVersion.TLSV12),
            TlsSetupErrorReason.BAD_VERSIONS,
        ),
    ],
)
def test_bad_settings_are_refused_with_a_reason(
    unit_pki: UnitPki, settings: TlsBindSettings, reason: TlsSetupErrorReason
) -> None:
    with pytest.raises(TlsSetupError) as error:
        build_context(CertificateBinding(unit_pki.ec), settings, generation=1, where="bind :443")
    assert error.value.reason is reason
    assert "bind :443" in str(error.value)


def test_empty_bind_is_refused() -> None:
    with pytest.raises(TlsSetupError) as error:
        build_tls_bind("bind :443", [], TlsBindSettings(), generation=1)
    assert error.value.reason is TlsSetupErrorReason.NO_CERTIFICATE


def test_fatal_alert_record() -> None:
    assert fatal_alert(AlertDescription.UNRECOGNIZED_NAME) == b"\x15\x03\x03\x00\x02\x02\x70"


def test_disabled_version_is_a_hole_in_the_range(unit_pki: UnitPki) -> None:
    """`no-tlsv13` (on a bind or in ssl-default-bind-options) was accepted and ignored."""
    context = server_for(unit_pki, disabled=frozenset({TlsVersion.TLSV13}))
    server = TlsEndpoint(context, StapleTable(), StapleStats())
    client = Client()
    handshake(client, server)
    assert server.session_info().version == "TLSv1.2"


def test_dh_param_file_offers_dhe(unit_pki: UnitPki, tmp_path: Any) -> None:
    """`ssl-dh-param-file` was parsed and ignored; now its parameters are loaded."""
    params = tmp_path / "dh.pem"
    subprocess.run(
        ["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048",
         "-out", str(params)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = build_context(
        CertificateBinding(unit_pki.rsa),
        TlsBindSettings(dh_param_file=str(params)),
        generation=1,
    )
    server = TlsEndpoint(context, StapleTable(), StapleStats())
    client = Client(max_version=SSL.TLS1_2_VERSION, ciphers=b"DHE-RSA-AES128-GCM-SHA256")
    handshake(client, server)
    assert server.session_info().cipher == "DHE-RSA-AES128-GCM-SHA256"


def test_bad_dh_param_file_is_a_setup_error(unit_pki: UnitPki, tmp_path: Any) -> None:
    bad = tmp_path / "dh.pem"
    bad.write_text("not DH parameters\n")
    with pytest.raises(TlsSetupError) as error:
        build_context(
            CertificateBinding(unit_pki.rsa), TlsBindSettings(dh_param_file=str(bad)), generation=1
        )
    assert error.value.reason is TlsSetupErrorReason.BAD_DH_PARAMS
