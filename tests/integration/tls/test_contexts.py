"""The TLS data plane against real clients: staples, SNI, ALPN, key types, versions, resumption."""

from __future__ import annotations

import logging
import re
import socket
import ssl

import pytest
from cryptography.x509 import ocsp

from staplegate.config.model import TlsVersion
from staplegate.tls.staples import StapleOutcome, StapleTable

from .tls_harness import (
    RunningProxy,
    TlsPki,
    client_context,
    s_client,
    tls_bind,
    tls_connect,
)

pytestmark = pytest.mark.openssl


def _peer_cn(output: str) -> str:
    match = re.search(r"^subject=CN\s*=\s*(\S+)", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def _stapled(output: str) -> bool:
    if "OCSP response: no response sent" in output:
        return False
    assert "OCSP Response Status: successful" in output, output
    return True


def test_staple_served_withdrawn_and_replaced(tls_pki: TlsPki) -> None:
    cert_id = tls_pki.certs["exact.test"].cert_id
    assert cert_id is not None
    with RunningProxy(tls_bind(tls_pki, "default.test", "exact.test")) as proxy:
        proxy.call(lambda: proxy.staples.replace({cert_id: tls_pki.staple("exact.test")}))
        first = s_client(
            proxy.port, "-status", "-CAfile", str(tls_pki.root_path), servername="exact.test"
        )
        assert _stapled(first.output)
        assert "Cert Status: good" in first.output
        assert "Verify return code: 0 (ok)" in first.output

        proxy.call(lambda: proxy.staples.replace({}))
        second = s_client(proxy.port, "-status", servername="exact.test")
        assert "OCSP response: no response sent" in second.output

        revoked = tls_pki.staple("exact.test", status=ocsp.OCSPCertStatus.REVOKED)
        proxy.call(lambda: proxy.staples.replace({cert_id: revoked}))
        third = s_client(proxy.port, "-status", servername="exact.test")
        assert _stapled(third.output)
        assert "Cert Status: revoked" in third.output
        stats = proxy.call(lambda: proxy.frontend.stats.staples)
        assert (stats.stapled, stats.not_stapled) == (2, 1)


def test_no_staple_without_status_request_is_not_counted(tls_pki: TlsPki) -> None:
    cert_id = tls_pki.certs["exact.test"].cert_id
    assert cert_id is not None
    with RunningProxy(tls_bind(tls_pki, "exact.test")) as proxy:
        proxy.call(lambda: proxy.staples.replace({cert_id: tls_pki.staple("exact.test")}))
        result = s_client(proxy.port, servername="exact.test")
        assert result.returncode == 0
        assert "OCSP response" not in result.output
        stats = proxy.call(lambda: proxy.frontend.stats.staples)
        assert (stats.stapled, stats.failed) == (0, 0)
        assert proxy.records[-1].tls is not None
        assert proxy.records[-1].tls.staple is StapleOutcome.NOT_REQUESTED


@pytest.mark.parametrize(
    ("servername", "expected"),
    [
        ("exact.test", "exact.test"),
        ("EXACT.test", "exact.test"),
        ("a.wild.test", "wild"),
        ("secret.wild.test", "default.test"),  # excluded by `!secret.wild.test`
        ("a.b.wild.test", "default.test"),  # a wildcard covers one label only
        ("unknown.test", "default.test"),
        (None, "default.test"),
    ],
)
def test_sni_chooses_the_certificate(
    tls_pki: TlsPki, servername: str | None, expected: str
) -> None:
    tls = tls_bind(
        tls_pki,
        "default.test",
        "exact.test",
        ("wild", ("*.wild.test", "!secret.wild.test")),
    )
    with RunningProxy(tls) as proxy:
        result = s_client(proxy.port, servername=servername)
        assert result.returncode == 0, result.output
        assert _peer_cn(result.output) == expected


@pytest.mark.parametrize("servername", ["unknown.test", None])
def test_strict_sni_refuses_unknown_names(tls_pki: TlsPki, servername: str | None) -> None:
    with RunningProxy(tls_bind(tls_pki, "default.test", "exact.test", strict_sni=True)) as proxy:
        refused = s_client(proxy.port, servername=servername)
        assert refused.returncode != 0
        assert "unrecognized name" in refused.output
        accepted = s_client(proxy.port, servername="exact.test")
        assert _peer_cn(accepted.output) == "exact.test"
        stats = proxy.call(lambda: proxy.frontend.stats)
        assert (stats.strict_sni_refusals, stats.handshakes) == (1, 1)


def test_alpn_server_preference_and_no_overlap(tls_pki: TlsPki) -> None:
    with RunningProxy(tls_bind(tls_pki, "default.test", alpn=("h2", "http/1.1"))) as proxy:
        both = s_client(proxy.port, "-alpn", "http/1.1,h2", servername="default.test")
        assert "ALPN protocol: h2" in both.output
        context = client_context(tls_pki)
        context.set_alpn_protocols(["http/1.1"])
        with tls_connect(proxy.port, context, "default.test") as sock:
            assert sock.selected_alpn_protocol() == "http/1.1"
        none = s_client(proxy.port, "-alpn", "spdy/3", servername="default.test")
        assert none.returncode == 0
        assert "No ALPN negotiated" in none.output


@pytest.mark.parametrize(
    ("sigalgs", "expected", "signature"),
    [
        ("ECDSA+SHA256", "dual-ec", "ECDSA"),
        ("RSA-PSS+SHA256", "dual-rsa", "RSA-PSS"),
        ("ECDSA+SHA256:RSA-PSS+SHA256", "dual-ec", "ECDSA"),
    ],
)
def test_ecdsa_or_rsa_by_signature_algorithms(
    tls_pki: TlsPki, sigalgs: str, expected: str, signature: str
) -> None:
    rsa_id, ec_id = tls_pki.certs["dual-rsa"].cert_id, tls_pki.certs["dual-ec"].cert_id
    assert rsa_id is not None
    assert ec_id is not None
    tls = tls_bind(tls_pki, "default.test", "dual-rsa", "dual-ec")
    with RunningProxy(tls) as proxy:
        table = {rsa_id: tls_pki.staple("dual-rsa"), ec_id: tls_pki.staple("dual-ec")}
        proxy.call(lambda: proxy.staples.replace(table))
        result = s_client(proxy.port, "-status", "-sigalgs", sigalgs, servername="dual.test")
        assert _peer_cn(result.output) == expected
        assert f"Peer signature type: {signature}" in result.output
        serial = tls_pki.certs[expected].serial_hex
        assert f"Serial Number: {serial}" in result.output  # the staple of that certificate


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_staple_in_tls12_and_tls13(tls_pki: TlsPki, version: str) -> None:
    cert_id = tls_pki.certs["default.test"].cert_id
    assert cert_id is not None
    with RunningProxy(tls_bind(tls_pki, "default.test")) as proxy:
        proxy.call(lambda: proxy.staples.replace({cert_id: tls_pki.staple("default.test")}))
        result = s_client(proxy.port, "-status", version, servername="default.test")
        assert _stapled(result.output)
        expected = "TLSv1.2" if version == "-tls1_2" else "TLSv1.3"
        assert f"New, {expected}, Cipher is" in result.output


def test_max_version_is_applied(tls_pki: TlsPki) -> None:
    tls = tls_bind(tls_pki, "default.test", max_version=TlsVersion.TLSV12)
    with RunningProxy(tls) as proxy:
        with tls_connect(proxy.port, client_context(tls_pki), "default.test") as sock:
            assert sock.version() == "TLSv1.2"
        refused = s_client(proxy.port, "-tls1_3", servername="default.test")
        assert refused.returncode != 0


@pytest.mark.parametrize("maximum", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_session_resumption(tls_pki: TlsPki, maximum: ssl.TLSVersion) -> None:
    context = client_context(tls_pki, maximum_version=maximum)
    with RunningProxy(tls_bind(tls_pki, "default.test")) as proxy:
        with tls_connect(proxy.port, context, "default.test") as first:
            first.sendall(b"ping")
            assert first.recv(100) == b"ping"  # TLS 1.3 tickets arrive with the data
            session = first.session
        assert session is not None
        raw = tls_connect_raw(proxy.port)
        with context.wrap_socket(raw, server_hostname="default.test", session=session) as second:
            second.sendall(b"pong")
            assert second.recv(100) == b"pong"
            assert second.session_reused
        proxy.wait_until(lambda: len(proxy.records) == 2)
        assert [r.tls.resumed for r in proxy.records if r.tls] == [False, True]
        assert proxy.call(lambda: proxy.frontend.stats.resumed) == 1


def tls_connect_raw(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


class _RaisingTable:
    def lookup(self, key: bytes) -> bytes:
        raise RuntimeError("table exploded")


class _StrTable:
    def lookup(self, key: bytes) -> bytes:
        return "not bytes"  # type: ignore[return-value]  # the fault under test


@pytest.mark.parametrize("broken", [_RaisingTable(), _StrTable()])
def test_broken_table_still_completes_the_handshake(
    tls_pki: TlsPki, broken: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="staplegate.tls.staples")
    proxy = RunningProxy(tls_bind(tls_pki, "default.test"))
    proxy.staples = broken  # type: ignore[assignment]  # a deliberately broken table
    with proxy:
        for _ in range(2):
            result = s_client(proxy.port, "-status", servername="default.test")
            assert result.returncode == 0
            assert "OCSP response: no response sent" in result.output
            assert "CONNECTED" in result.output
        stats = proxy.call(lambda: proxy.frontend.stats)
        assert (stats.handshakes, stats.handshake_failures) == (2, 0)
        assert stats.staples.callback_errors == 2
    failures = [r for r in caplog.records if "OCSP status callback failed" in r.getMessage()]
    assert len(failures) == 1  # once per certificate and generation, not per handshake


def test_must_staple_without_staple_is_counted_and_logged_once(
    tls_pki: TlsPki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="staplegate.tls.staples")
    must_id = tls_pki.certs["must.test"].cert_id
    assert must_id is not None
    with RunningProxy(tls_bind(tls_pki, "must.test"), staples=StapleTable()) as proxy:
        for _ in range(3):
            assert not _stapled(s_client(proxy.port, "-status", servername="must.test").output)
        stats = proxy.call(lambda: proxy.frontend.stats.staples)
        assert stats.must_staple_missing == 3
        proxy.call(lambda: proxy.staples.replace({must_id: tls_pki.staple("must.test")}))
        assert _stapled(s_client(proxy.port, "-status", servername="must.test").output)
    warnings = [r for r in caplog.records if "must-staple" in r.getMessage()]
    assert len(warnings) == 1
    assert "must.test" in warnings[0].getMessage()
