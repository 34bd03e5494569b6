"""Parser, `bind` lines: addresses and options, ignored, refused and unknown ones."""

from __future__ import annotations

import pytest

from staplegate.config.model import (
    TlsVersion,
)
from staplegate.config.values import AddressFamily
from tests.unit.config.helpers import BACKEND, A, W, check, one_error, warnings

# ------------------------------------------------------------------ bind


def test_bind_options() -> None:
    config, diags = check(
        "global\n    crt-base certs\n"
        "crt-store web\n    load crt x\n"
        "frontend fe\n"
        '    bind 127.0.0.1:8443 ssl crt a.pem crt /abs/b.pem crt-list l.txt crt "@web/x" '
        "alpn h2,http/1.1 ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3 ciphers ECDHE "
        "ciphersuites TLS_AES_128_GCM_SHA256 strict-sni accept-proxy no-tls-tickets\n"
        "    default_backend app\n" + BACKEND
    )
    assert config is not None, diags
    (bind,) = config.frontend("fe").binds
    assert bind.ssl
    assert bind.strict_sni
    assert bind.accept_proxy
    assert [(s.keyword, s.path) for s in bind.cert_sources] == [
        ("crt", "certs/a.pem"),
        ("crt", "/abs/b.pem"),
        ("crt-list", "l.txt"),
        ("crt", "@web/x"),
    ]
    assert bind.alpn == ("h2", "http/1.1")
    assert (bind.ssl_options.min_ver, bind.ssl_options.max_ver) == (
        TlsVersion.TLSV12,
        TlsVersion.TLSV13,
    )
    assert bind.ssl_options.no_tls_tickets
    assert (bind.ciphers, bind.ciphersuites) == ("ECDHE", "TLS_AES_128_GCM_SHA256")


@pytest.mark.parametrize(
    ("text", "family", "host", "port"),
    [
        (":443", AddressFamily.IPV4, "0.0.0.0", 443),
        ("*:443", AddressFamily.IPV4, "0.0.0.0", 443),
        ("127.0.0.1:8443", AddressFamily.IPV4, "127.0.0.1", 8443),
        ("[::1]:443", AddressFamily.IPV6, "::1", 443),
        ("ipv6@:443", AddressFamily.IPV6, "::", 443),
        ("ipv4@127.0.0.1:444", AddressFamily.IPV4, "127.0.0.1", 444),
    ],
)
def test_bind_address_forms(text: str, family: AddressFamily, host: str, port: int) -> None:
    config, diags = check(f"frontend fe\n    bind {text}\n    default_backend app\n" + BACKEND)
    assert diags == []
    assert config is not None
    (address,) = config.frontend("fe").binds[0].addresses
    assert (address.family, address.host, address.port) == (family, host, port)


def test_bind_errors() -> None:
    cases = {
        ":443 ssl crt x.pem ocsp-update on": "'bind :443' unknown keyword 'ocsp-update'. It is "
        "only valid in a crt-list line or on a crt-store 'load' line.",
        ":443 ssl crt": "'bind :443' : 'crt' : missing certificate location",
        ":443 ssl alpn": "'bind :443' : 'alpn' : missing the comma-delimited ALPN protocol suite",
        ":443 ssl crt x.pem ssl-min-ver TLSv1.4": "'bind :443' : 'ssl-min-ver' : expects "
        "'SSLv3', 'TLSv1.0', 'TLSv1.1', 'TLSv1.2' or 'TLSv1.3'",
        ":443 ssl crt x.pem verify sometimes": "'bind :443' : 'verify' : expects 'none', "
        "'optional' or 'required'.",
        ":443 ssl crt x.pem verify optional crt-ignore-err 10,X509_V_ERR_BOGUS": "'bind :443' "
        ": 'crt-ignore-err' : unknown verify error 'X509_V_ERR_BOGUS': use 'all', a number "
        "from 1 to 127 or an X509_V_ERR_* name.",
        ":443 ssl crt x.pem curves X25519": "'bind :443' : 'curves' is a HAProxy keyword that "
        "staplegate does not support and it would change traffic",
        ":443 ssl crt x.pem strict-snii": "'bind :443' unknown keyword 'strict-snii'. Did you "
        "mean 'strict-sni' maybe ?",
        ":8000-8010": "'bind :8000-8010' : port ranges are not supported by staplegate "
        "(':8000-8010')",
        "abns@sock": "'bind abns@sock' : address family 'abns' in 'abns@sock' is not supported "
        "by staplegate",
        "127.0.0.1": "'bind 127.0.0.1' : missing port number in '127.0.0.1'",
        "/run/sg.sock": "'bind /run/sg.sock' is a HAProxy keyword that staplegate does not "
        "support and it would change traffic (UNIX socket listeners)",
    }
    for line, message in cases.items():
        text = f"frontend fe\n    bind {line}\n    default_backend app\n" + BACKEND
        assert one_error(text) == A.format(2, message), line


def test_bind_warnings() -> None:
    assert warnings(
        "frontend fe\n    bind :443 crt x.pem name web\n    default_backend app\n" + BACKEND
    ) == [
        W.format(
            2,
            "'bind :443' : 'name' is a HAProxy keyword that staplegate does not support "
            "and it is ignored (it only labels statistics)",
        ),
        W.format(
            2,
            "'bind :443' : certificates are configured but 'ssl' is not set: the "
            "listener will accept plain TCP/HTTP. Add 'ssl' to terminate TLS.",
        ),
    ]
