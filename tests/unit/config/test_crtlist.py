"""crt-list parsing: option blocks, SNI filters, comments, path bases, error messages."""

from __future__ import annotations

from staplegate.config.crtlist import parse_crt_list
from staplegate.config.model import CrtList, TlsVersion, Verify

A = "[ALERT] config : parsing [list.txt:{}] : {}"


def parse(
    text: str, crt_base: str | None = None, key_base: str | None = None
) -> tuple[CrtList, list[str]]:
    crt_list, problems = parse_crt_list(text, path="list.txt", crt_base=crt_base, key_base=key_base)
    return crt_list, [str(p) for p in problems]


def test_seed_page_line() -> None:
    crt_list, problems = parse("/etc/haproxy/certs/mysite.pem [alpn h2 ocsp-update on]\n")
    assert problems == []
    (entry,) = crt_list.entries
    assert entry.crt_path == "/etc/haproxy/certs/mysite.pem"
    assert entry.alpn == ("h2",)
    assert entry.ocsp_update is True
    assert entry.uses_store_keywords
    assert not entry.names_files
    assert entry.location.line == 1


def test_comments_blank_lines_filters_and_options() -> None:
    text = (
        "# sites\n"
        "\n"
        "www.pem [ ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3 ciphers ECDHE ciphersuites "
        "TLS_AES_128_GCM_SHA256 verify optional ca-file clients.pem ] www.Example.test "
        "*.example.test !admin.example.test\n"
        "plain.pem\n"
        "keyed.pem [key keyed.key ocsp keyed.der issuer ca.pem sctl keyed.sctl ocsp-update off]\n"
        '"spaced name.pem" []\n'
    )
    crt_list, problems = parse(text, crt_base="certs", key_base="keys")
    assert problems == []
    www, plain, keyed, spaced = crt_list.entries
    assert www.location.line == 3
    assert www.crt_path == "certs/www.pem"
    assert www.sni_filters == ("www.example.test", "*.example.test", "!admin.example.test")
    assert (www.ssl_min_ver, www.ssl_max_ver) == (TlsVersion.TLSV12, TlsVersion.TLSV13)
    assert (www.ciphers, www.ciphersuites) == ("ECDHE", "TLS_AES_128_GCM_SHA256")
    assert (www.verify, www.ca_file) == (Verify.OPTIONAL, "clients.pem")
    assert not www.uses_store_keywords
    assert plain.sni_filters == ()
    assert plain.alpn is None
    assert (keyed.key, keyed.ocsp, keyed.issuer, keyed.sctl) == (
        "keys/keyed.key",
        "certs/keyed.der",
        "certs/ca.pem",
        "certs/keyed.sctl",
    )
    assert keyed.ocsp_update is False
    assert keyed.names_files
    assert spaced.crt_path == "certs/spaced name.pem"


def test_store_names_are_not_prefixed_with_crt_base() -> None:
    crt_list, _ = parse("@web/site [ocsp-update on]\n", crt_base="certs")
    assert crt_list.entries[0].crt_path == "@web/site"


def test_ocsp_update_value_error_uses_haproxy_text() -> None:
    crt_list, problems = parse("ok.pem\nbad.pem [ocsp-update yes]\n")
    assert problems == [
        A.format(2, "cannot parse 'ocsp-update' value 'yes', 'on' or 'off' is expected.")
    ]
    assert [e.crt for e in crt_list.entries] == ["ok.pem"]


def test_line_errors_are_all_reported() -> None:
    _, problems = parse(
        "a.pem [alpn h2\n"
        "b.pem [ocsp-updat on]\n"
        "c.pem [alpn]\n"
        "d.pem [npn h2]\n"
        "e.pem [ssl-min-ver TLSv2]\n"
        "f.pem [verify sometimes]\n"
        "g.pem bad_filter!\n"
        "[alpn h2]\n"
        "h.pem [no-ca-names]\n"
    )
    assert problems == [
        A.format(1, "missing ']' at the end of the option block"),
        A.format(
            2,
            "unknown ssl keyword 'ocsp-updat' in crt-list. Did you mean 'ocsp-update' maybe ?",
        ),
        A.format(3, "'alpn' : missing value"),
        A.format(
            4,
            "'npn' is a HAProxy keyword that staplegate does not support and it would change "
            "traffic",
        ),
        A.format(
            5, "'ssl-min-ver' : expects 'SSLv3', 'TLSv1.0', 'TLSv1.1', 'TLSv1.2' or 'TLSv1.3'"
        ),
        A.format(6, "'verify' : expects 'none', 'optional' or 'required'"),
        A.format(7, "").replace("[ALERT]", "[WARNING]")
        + "SNI filter 'bad_filter!' is not a host name ('name', '*.domain' or '!name'): no "
        "client can send it, so this certificate is never chosen for it",
        A.format(8, "missing certificate path before the option block"),
        A.format(
            9,
            "'no-ca-names' is a HAProxy keyword that staplegate does not support and it would "
            "change traffic",
        ),
    ]


def test_client_certificate_options_use_ca_base() -> None:
    crt_list, problems = parse_crt_list(
        "a.pem [verify required ca-file ca.pem crl-file crl.pem] a.test\n"
        "b.pem [verify optional ca-file /abs/ca.pem] b.test\n",
        path="list.txt",
        crt_base=None,
        key_base=None,
        ca_base="/etc/ssl/ca",
    )
    assert problems == ()
    first, second = crt_list.entries
    assert (first.verify, first.ca_file, first.crl_file) == (
        Verify.REQUIRED,
        "/etc/ssl/ca/ca.pem",
        "/etc/ssl/ca/crl.pem",
    )
    assert (second.verify, second.ca_file, second.crl_file) == (
        Verify.OPTIONAL,
        "/abs/ca.pem",
        None,
    )


def test_ocsp_responder_overrides_the_aia_and_must_be_http() -> None:
    crt_list, problems = parse(
        "a.pem [ocsp-responder http://ocsp.mirror.internal/ca1]\n"
        "b.pem [ocsp-responder ftp://ocsp.mirror.internal]\n"
        "c.pem [ocsp-responder https:///no-host]\n"
    )
    assert [e.ocsp_responder for e in crt_list.entries] == ["http://ocsp.mirror.internal/ca1"]
    assert problems == [
        A.format(
            2,
            "'ocsp-responder' expects an http:// or https:// URL with a host, "
            "not 'ftp://ocsp.mirror.internal'.",
        ),
        A.format(
            3,
            "'ocsp-responder' expects an http:// or https:// URL with a host, "
            "not 'https:///no-host'.",
        ),
    ]
