"""serving: how global TLS defaults reach server connections (issue 14 keyword audit)."""

from __future__ import annotations

import ssl

from staplegate.config.model import SslOptions, TlsVersion
from staplegate.deploy.plan import _server_versions
from staplegate.proxy.backends import ServerTls
from staplegate.proxy.upstream import client_context


def test_server_versions_follow_ssl_default_server_options() -> None:
    assert _server_versions(SslOptions()) == (None, None)
    assert _server_versions(SslOptions(min_ver=TlsVersion.TLSV13)) == (TlsVersion.TLSV13, None)
    no_12 = SslOptions(disabled=frozenset({TlsVersion.TLSV12}))
    assert _server_versions(no_12) == (TlsVersion.TLSV13, TlsVersion.TLSV13)
    no_13 = SslOptions(disabled=frozenset({TlsVersion.TLSV13}))
    assert _server_versions(no_13) == (TlsVersion.TLSV12, TlsVersion.TLSV12)
    old = SslOptions(min_ver=TlsVersion.TLSV10, disabled=frozenset({TlsVersion.TLSV11}))
    assert _server_versions(old) == (TlsVersion.TLSV10, TlsVersion.TLSV13)


def test_server_context_applies_ciphers_and_versions() -> None:
    """ssl-default-server-ciphers/options were parsed and never applied."""
    context = client_context(
        ServerTls(
            verify=False, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256", min_version=TlsVersion.TLSV13
        )
    )
    assert context.minimum_version is ssl.TLSVersion.TLSv1_3
    tls12 = [c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 == ["ECDHE-ECDSA-AES128-GCM-SHA256"]
