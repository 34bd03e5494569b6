"""Reading nginx's configuration for the certificates whose ssl_stapling_file we keep.

Real files from the test CA, parsed by crossplane; nothing here starts nginx (the
end-to-end test does: tests/e2e/test_sidecar_nginx_e2e.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from staplegate.ocsp.certid import CertId
from staplegate.sidecar.nginx_config import discover
from staplegate.testpki.ca import KeyKind
from staplegate.testpki.pytest_plugin import Pki
from tests.nginx_sites import write_ca_file, write_site


def _conf(directory: Path, http_body: str, name: str = "nginx.conf") -> Path:
    path = directory / name
    path.write_text(f"events {{}}\nhttp {{\n{http_body}\n}}\n")
    return path


def _server(name: str, body: str) -> str:
    return f"""
    server {{
        listen 127.0.0.1:8443 ssl;
        server_name {name};
{body}
    }}"""


def _line_of(path: Path, text: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


def test_two_servers_with_stapling_files_are_found(pki: Pki, tmp_path: Path) -> None:
    a = write_site(pki, tmp_path, "a.test")
    b = write_site(pki, tmp_path, "b.test")
    conf = _conf(
        tmp_path,
        _server(
            "a.test",
            f"ssl_certificate {a.crt}; ssl_certificate_key {a.key};\n"
            "ssl_stapling on; ssl_stapling_file a.ocsp;",
        )
        + _server(
            "b.test",
            f"ssl_certificate {b.crt}; ssl_certificate_key {b.key};\n"
            "ssl_stapling on; ssl_stapling_file staples/b.ocsp;",
        ),
    )
    discovery = discover([conf])
    assert discovery.ok, discovery.errors
    assert discovery.messages == ()
    found = {c.entry.path: c for c in discovery.certificates}
    assert set(found) == {str(a.crt), str(b.crt)}
    first = found[str(a.crt)]
    # relative paths are relative to the main file's directory, as nginx -c does
    assert first.ocsp_file == tmp_path / "a.ocsp"
    assert found[str(b.crt)].ocsp_file == tmp_path / "staples" / "b.ocsp"
    assert first.source == f"{conf}:{_line_of(conf, f'ssl_certificate {a.crt}')}"
    assert first.entry.uri == pki.responder.url
    assert first.entry.auto_update
    assert first.entry.sidecar_ocsp is None
    assert first.cert_id == CertId.for_certificate(a.issued.certificate, pki.ca.certificate)


def test_includes_are_followed_and_lines_name_the_included_file(pki: Pki, tmp_path: Path) -> None:
    a = write_site(pki, tmp_path, "a.test")
    sites = tmp_path / "sites-enabled"
    sites.mkdir()
    (sites / "a.conf").write_text(
        _server(
            "a.test",
            f"ssl_certificate {a.crt};\nssl_certificate_key {a.key};\n"
            "ssl_stapling on;\nssl_stapling_file /tmp/never-written-a.ocsp;",
        )
    )
    conf = _conf(tmp_path, "include sites-enabled/*.conf;\nserver { listen 8080; }")
    discovery = discover([conf])
    assert discovery.ok, discovery.errors
    (certificate,) = discovery.certificates
    included = sites / "a.conf"
    assert certificate.source == f"{included}:{_line_of(included, 'ssl_certificate ')}"


def test_issuer_from_ssl_trusted_certificate_when_the_file_has_no_chain(
    pki: Pki, tmp_path: Path
) -> None:
    a = write_site(pki, tmp_path, "a.test", fullchain=False)
    ca = write_ca_file(pki, tmp_path / "ca.pem")
    body = f"ssl_certificate {a.crt}; ssl_certificate_key {a.key};\nssl_stapling on;\n"
    conf = _conf(tmp_path, _server("a.test", body + "ssl_stapling_file a.ocsp;"))
    without = discover([conf])
    assert without.certificates == ()
    assert [s.reason for s in without.skipped] == ["no issuer found"]
    assert "ssl_trusted_certificate" in without.messages[0]

    conf.write_text(
        conf.read_text().replace(
            "ssl_stapling on;", f"ssl_stapling on; ssl_trusted_certificate {ca};"
        )
    )
    (certificate,) = discover([conf]).certificates
    assert certificate.entry.issuer == pki.ca.certificate


def test_ssl_stapling_responder_overrides_the_aia_uri(pki: Pki, tmp_path: Path) -> None:
    a = write_site(pki, tmp_path, "a.test")
    body = (
        f"ssl_certificate {a.crt}; ssl_certificate_key {a.key};\nssl_stapling on;\n"
        "ssl_stapling_file a.ocsp; ssl_stapling_responder http://127.0.0.1:1/override;"
    )
    (certificate,) = discover([_conf(tmp_path, _server("a.test", body))]).certificates
    assert certificate.entry.uri == "http://127.0.0.1:1/override"


def test_http_level_settings_are_inherited_unless_the_server_sets_its_own(
    pki: Pki, tmp_path: Path
) -> None:
    a = write_site(pki, tmp_path, "a.test")
    b = write_site(pki, tmp_path, "b.test")
    conf = _conf(
        tmp_path,
        f"ssl_certificate {a.crt}; ssl_certificate_key {a.key};\nssl_stapling on;\n"
        + _server("a.test", "ssl_stapling_file a.ocsp;")
        + _server("b.test", f"ssl_certificate {b.crt}; ssl_stapling_file b.ocsp;"),
    )
    found = {c.entry.path: c.ocsp_file for c in discover([conf]).certificates}
    assert found == {str(a.crt): tmp_path / "a.ocsp", str(b.crt): tmp_path / "b.ocsp"}


def test_stapling_on_without_a_file_says_which_line_to_add(pki: Pki, tmp_path: Path) -> None:
    a = write_site(pki, tmp_path, "a.test")
    conf = _conf(
        tmp_path,
        _server(
            "a.test", f"ssl_certificate {a.crt}; ssl_certificate_key {a.key};\nssl_stapling on;"
        ),
    )
    discovery = discover([conf])
    assert discovery.ok
    assert discovery.certificates == ()
    (message,) = discovery.messages
    line = _line_of(conf, "ssl_stapling on;")
    assert message.startswith(f"[WARNING] nginx : parsing [{conf}:{line}] : server 'a.test'")
    assert "add 'ssl_stapling_file /var/lib/staplegate-nginx/a.test.ocsp;'" in message
    assert f"after line {line} of {conf}" in message
    assert [s.reason for s in discovery.skipped] == ["no ssl_stapling_file"]


def test_a_stapling_file_without_stapling_on_is_skipped_with_a_warning(
    pki: Pki, tmp_path: Path
) -> None:
    a = write_site(pki, tmp_path, "a.test")
    conf = _conf(
        tmp_path,
        _server(
            "a.test",
            f"ssl_certificate {a.crt}; ssl_certificate_key {a.key};\nssl_stapling_file a.ocsp;",
        ),
    )
    discovery = discover([conf])
    assert discovery.certificates == ()
    assert "add 'ssl_stapling on;'" in discovery.messages[0]


def test_servers_without_stapling_are_listed_as_skipped_quietly(pki: Pki, tmp_path: Path) -> None:
    a = write_site(pki, tmp_path, "a.test")
    conf = _conf(
        tmp_path, _server("a.test", f"ssl_certificate {a.crt}; ssl_certificate_key {a.key};")
    )
    discovery = discover([conf])
    assert (discovery.certificates, discovery.messages) == ((), ())
    assert [s.reason for s in discovery.skipped] == ["ssl_stapling off"]


def test_rsa_and_ecdsa_in_one_server_the_file_goes_to_the_first(pki: Pki, tmp_path: Path) -> None:
    ec = write_site(pki, tmp_path, "ec.test")
    rsa = write_site(pki, tmp_path, "rsa.test", key=KeyKind.RSA2048)
    body = (
        f"ssl_certificate {ec.crt}; ssl_certificate_key {ec.key};\n"
        f"ssl_certificate {rsa.crt}; ssl_certificate_key {rsa.key};\n"
        "ssl_stapling on; ssl_stapling_file both.ocsp;"
    )
    conf = _conf(tmp_path, _server("both.test", body))
    discovery = discover([conf])
    (kept,) = discovery.certificates
    assert kept.entry.path == str(ec.crt)
    (skipped,) = discovery.skipped
    assert skipped.name == str(rsa.crt)
    assert "one file per server" in skipped.reason
    (message,) = discovery.messages
    assert f"[{conf}:{_line_of(conf, f'ssl_certificate {rsa.crt}')}]" in message
    assert "staples its one ssl_stapling_file" in message


def test_variables_in_paths_are_refused_with_a_message(pki: Pki, tmp_path: Path) -> None:
    conf = _conf(
        tmp_path,
        _server(
            "*.test",
            "ssl_certificate /etc/ssl/$ssl_server_name.crt;\n"
            "ssl_certificate_key /etc/ssl/$ssl_server_name.key;\n"
            "ssl_stapling on; ssl_stapling_file x.ocsp;",
        ),
    )
    discovery = discover([conf])
    assert discovery.ok
    assert discovery.certificates == ()
    (message,) = discovery.messages
    assert "holds a variable" in message
    assert f"[{conf}:{_line_of(conf, 'ssl_certificate /etc')}]" in message


def test_a_certificate_without_ocsp_uri_is_skipped(pki: Pki, tmp_path: Path) -> None:
    a = write_site(pki, tmp_path, "a.test", ocsp=False)
    body = f"ssl_certificate {a.crt};\nssl_stapling on; ssl_stapling_file a.ocsp;"
    discovery = discover([_conf(tmp_path, _server("a.test", body))])
    assert [s.reason for s in discovery.skipped] == ["no OCSP URI"]


def test_the_current_staple_file_is_handed_to_the_updater(pki: Pki, tmp_path: Path) -> None:
    a = write_site(pki, tmp_path, "a.test")
    (tmp_path / "a.ocsp").write_bytes(b"whatever is there; the updater verifies it")
    body = f"ssl_certificate {a.crt};\nssl_stapling on; ssl_stapling_file a.ocsp;"
    (certificate,) = discover([_conf(tmp_path, _server("a.test", body))]).certificates
    assert certificate.entry.sidecar_ocsp == b"whatever is there; the updater verifies it"


def test_two_servers_sharing_one_file_for_different_certificates_keep_it_for_the_first(
    pki: Pki, tmp_path: Path
) -> None:
    a = write_site(pki, tmp_path, "a.test")
    b = write_site(pki, tmp_path, "b.test")
    conf = _conf(
        tmp_path,
        _server("a.test", f"ssl_certificate {a.crt}; ssl_stapling on; ssl_stapling_file s.ocsp;")
        + _server("b.test", f"ssl_certificate {b.crt}; ssl_stapling on; ssl_stapling_file s.ocsp;"),
    )
    discovery = discover([conf])
    assert discovery.ok
    assert [c.entry.path for c in discovery.certificates] == [str(a.crt)]
    (message,) = discovery.messages
    assert message.startswith(f"[WARNING] nginx : parsing [{conf}:")
    assert "give each server its own file" in message
    (skipped,) = discovery.skipped
    assert skipped.name == str(b.crt)


# -- bad input: never a traceback -------------------------------------------------------------


def test_a_syntax_error_is_crossplanes_message_with_file_and_line(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\nhttp {\n    server {\n        listen 443 ssl\n    }\n")
    discovery = discover([conf])
    assert not discovery.ok
    assert discovery.errors[0] == (
        f'[ALERT] nginx : parsing [{conf}:4] : directive "listen" is not terminated by ";"'
    )


def test_a_missing_include_and_a_bad_value_are_alerts(tmp_path: Path) -> None:
    conf = _conf(tmp_path, "include missing.conf;\nssl_stapling maybe;")
    errors = discover([conf]).errors
    assert any(f"[{conf}:3]" in e and "No such file" in e for e in errors), errors
    assert any(f"[{conf}:4]" in e and 'must be "on" or "off"' in e for e in errors), errors


def test_a_missing_main_file_is_an_alert(tmp_path: Path) -> None:
    (error,) = discover([tmp_path / "absent.conf"]).errors
    absent = tmp_path / "absent.conf"
    assert error == f"[ALERT] nginx : cannot read configuration file {absent} : no such file"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read ssl_certificate file"),
        (b"not a certificate\n", "no PEM data found"),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "not a valid certificate",
        ),
    ],
)
def test_an_unusable_certificate_file_is_an_alert_naming_the_line(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    crt = tmp_path / "site.crt"
    if content is not None:
        crt.write_bytes(content)
    conf = _conf(
        tmp_path,
        _server("a.test", f"ssl_certificate {crt}; ssl_stapling on; ssl_stapling_file a.ocsp;"),
    )
    discovery = discover([conf])
    (error,) = discovery.errors
    assert error.startswith(f"[ALERT] nginx : parsing [{conf}:{_line_of(conf, 'ssl_certificate')}]")
    assert expected in error
    assert discovery.certificates == ()


def test_a_directory_where_the_certificate_should_be_is_an_alert(tmp_path: Path) -> None:
    (tmp_path / "dir.crt").mkdir()
    conf = _conf(
        tmp_path,
        _server("a.test", "ssl_certificate dir.crt; ssl_stapling on; ssl_stapling_file a.ocsp;"),
    )
    (error,) = discover([conf]).errors
    assert "Is a directory" in error


# -- real layouts -----------------------------------------------------------------------------

DEBIAN_NGINX_CONF = Path("/etc/nginx/nginx.conf")


@pytest.mark.skipif(not DEBIAN_NGINX_CONF.exists(), reason="Debian's nginx is not installed")
def test_debians_stock_configuration_loads_without_a_message() -> None:
    discovery = discover([DEBIAN_NGINX_CONF])
    assert discovery.ok, discovery.errors
    assert discovery.messages == ()


def test_a_certbot_style_site_with_snippets_and_a_chain_file(pki: Pki, tmp_path: Path) -> None:
    """The layout certbot's nginx plugin leaves: live/<name>/{fullchain,chain}.pem, its
    options-ssl-nginx.conf include, an http->https redirect server, a map and upstream."""
    live = tmp_path / "letsencrypt" / "live" / "shop.test"
    site = write_site(pki, live, "shop.test")
    site.crt.rename(live / "fullchain.pem")
    site.key.rename(live / "privkey.pem")
    write_ca_file(pki, live / "chain.pem")
    (tmp_path / "letsencrypt" / "options-ssl-nginx.conf").write_text(
        "ssl_session_cache shared:le_nginx_SSL:10m;\nssl_session_timeout 1440m;\n"
        "ssl_session_tickets off;\nssl_protocols TLSv1.2 TLSv1.3;\n"
        'ssl_ciphers "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";\n'
    )
    sites = tmp_path / "sites-enabled"
    sites.mkdir()
    (sites / "shop").write_text(
        f"""upstream app {{ server 127.0.0.1:8000; keepalive 8; }}
map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
server {{
    listen 80; listen [::]:80;
    server_name shop.test www.shop.test;
    return 301 https://$host$request_uri;
}}
server {{
    listen 443 ssl http2; listen [::]:443 ssl http2;
    server_name shop.test www.shop.test;
    root /var/www/shop; index index.html;
    location / {{ try_files $uri $uri/ @app; }}
    location @app {{ proxy_pass http://app; proxy_set_header Upgrade $http_upgrade; }}
    ssl_certificate {live / "fullchain.pem"}; # managed by Certbot
    ssl_certificate_key {live / "privkey.pem"}; # managed by Certbot
    include {tmp_path / "letsencrypt" / "options-ssl-nginx.conf"}; # managed by Certbot
    ssl_trusted_certificate {live / "chain.pem"};
    ssl_stapling on; ssl_stapling_verify on;
    ssl_stapling_file /var/lib/staplegate-nginx/shop.test.ocsp;
    resolver 127.0.0.53 valid=300s;
}}
"""
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "user www-data;\nworker_processes auto;\npid /run/nginx.pid;\n"
        "include /etc/nginx/modules-enabled/*.conf;\n"
        "events { worker_connections 768; }\n"
        "http {\n    sendfile on;\n    include mime.types.missing-is-fine-with-a-glob*;\n"
        "    gzip on;\n    include sites-enabled/*;\n}\n"
    )
    discovery = discover([conf])
    assert discovery.ok, discovery.errors
    assert discovery.messages == ()
    (certificate,) = discovery.certificates
    assert certificate.entry.path == str(live / "fullchain.pem")
    assert certificate.ocsp_file == Path("/var/lib/staplegate-nginx/shop.test.ocsp")
    assert certificate.entry.issuer == pki.ca.certificate


def test_the_files_read_are_listed_for_the_renewal_watch(pki: Pki, tmp_path: Path) -> None:
    a = write_site(pki, tmp_path, "a.test", fullchain=False)
    ca = write_ca_file(pki, tmp_path / "ca.pem")
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "a.conf").write_text(
        _server(
            "a.test",
            f"ssl_certificate {a.crt}; ssl_certificate_key {a.key}; ssl_trusted_certificate {ca};"
            "\nssl_stapling on; ssl_stapling_file a.ocsp;",
        )
    )
    conf = _conf(tmp_path, "include sites/*.conf;")
    discovery = discover([conf])
    assert discovery.files == (
        str(conf),
        str(tmp_path / "sites" / "a.conf"),
        str(a.crt),
        str(ca),
    )
    assert str(tmp_path / "a.ocsp") not in discovery.files  # what the sidecar writes


def test_a_file_named_by_two_servers_is_read_once_and_its_problem_said_once(
    tmp_path: Path,
) -> None:
    gone = tmp_path / "gone.crt"
    conf = _conf(
        tmp_path,
        "ssl_stapling on;\n"
        + _server("a.test", f"ssl_certificate {gone}; ssl_stapling_file a.ocsp;")
        + _server("b.test", f"ssl_certificate {gone}; ssl_stapling_file b.ocsp;"),
    )
    discovery = discover([conf])
    (error,) = discovery.errors
    assert f"cannot read ssl_certificate file '{gone}'" in error
    assert len(discovery.skipped) == 2


def test_blocks_nested_beyond_pythons_stack_are_an_alert_not_a_traceback(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    depth = 3000
    conf.write_text("events {}\nhttp { server {" + "x {" * depth + "}" * depth + "}}\n")
    (error,) = discover([conf]).errors
    assert error.startswith(f"[ALERT] nginx : parsing [{conf}]")
    assert "recursion" in error


_TOKENS = st.sampled_from(
    [
        "http", "server", "events", "{", "}", ";", "include", "ssl_certificate",
        "ssl_stapling", "on", "off", "ssl_stapling_file", "ssl_trusted_certificate",
        "ssl_stapling_responder", "server_name", "listen", '"', "'", "#", "\\", "$x",
        "data:x", "/dev/null", "/nonexistent", "*.conf", "\n", " ", "\udcff",
    ]
)  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_TOKENS, max_size=40))
def test_any_token_soup_gives_a_discovery_never_a_traceback(
    tmp_path: Path, tokens: list[str]
) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_bytes(" ".join(tokens).encode("utf-8", "surrogateescape"))
    discovery = discover([conf])
    assert all(line.startswith("[ALERT] nginx : ") for line in discovery.errors)
    assert all(line.startswith("[WARNING] nginx : ") for line in discovery.messages)


def test_data_values_are_skipped_with_a_message(tmp_path: Path) -> None:
    conf = _conf(
        tmp_path,
        _server("a.test", "ssl_certificate data:$cert_pem; ssl_stapling on; ssl_stapling_file a;"),
    )
    discovery = discover([conf])
    assert discovery.certificates == ()
    assert any("holds a variable" in m or "is not a file" in m for m in discovery.messages)

    conf = _conf(
        tmp_path,
        _server("a.test", "ssl_certificate engine:pkcs11:x; ssl_stapling on; ssl_stapling_file a;"),
    )
    (message,) = discover([conf]).messages
    assert "ssl_certificate 'engine:...' is not a file" in message


def test_an_encrypted_key_in_the_certificate_file_is_not_our_business(
    pki: Pki, tmp_path: Path
) -> None:
    """nginx takes a passphrase (ssl_password_file); the sidecar needs the certificates only."""
    a = write_site(pki, tmp_path, "a.test")
    encrypted = a.issued.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    a.crt.write_bytes(a.crt.read_bytes() + encrypted)
    body = f"ssl_certificate {a.crt};\nssl_stapling on; ssl_stapling_file a.ocsp;"
    discovery = discover([_conf(tmp_path, _server("a.test", body))])
    assert discovery.ok, discovery.errors
    (certificate,) = discovery.certificates
    assert certificate.entry.certificate == a.issued.certificate


def test_a_file_ending_inside_a_quoted_string_is_an_alert(tmp_path: Path) -> None:
    """nginx -t refuses it; crossplane 0.5.8 said "ok", the maintained 0.5.14 does not."""
    conf = tmp_path / "nginx.conf"
    conf.write_text('events {}\nhttp { server { server_name "a.test')
    (error,) = discover([conf]).errors
    assert error.startswith(f"[ALERT] nginx : parsing [{conf}:2] : unexpected end of file")
