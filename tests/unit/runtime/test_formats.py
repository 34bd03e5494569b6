"""HAProxy's output formats (dates, names, CSV) and their parsing back for `ctl --json`."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509.oid import NameOID

from staplegate.runtime import formats
from staplegate.runtime.textparse import parse_answer


def test_openssl_date_pads_the_day_with_a_space() -> None:
    when = dt.datetime(2026, 12, 1, 13, 23, 13, tzinfo=dt.UTC)
    assert formats.openssl_date(when) == "Dec  1 13:23:13 2026 GMT"


def test_log_date_layout() -> None:
    when = dt.datetime(2026, 11, 24, 13, 23, 13, tzinfo=dt.UTC)
    text = formats.log_date(when)
    parsed = dt.datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z")
    assert parsed == when


def test_serial_hex_is_the_der_integer_content() -> None:
    assert formats.serial_hex(0x0A1B2C3D) == "0A1B2C3D"
    assert formats.serial_hex(0x80) == "0080"


def test_oneline_name_follows_der_order() -> None:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
            x509.NameAttribute(NameOID.COMMON_NAME, "www.example.test"),
        ]
    )
    assert formats.oneline_name(name) == "/C=FR/O=Example/CN=www.example.test"


def test_oneline_name_uses_openssls_short_names_as_client_certificates_do() -> None:
    # one table (certs.names.OPENSSL_SHORT_NAMES) for `show ssl cert` and `ssl_c_s_dn`
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.USER_ID, "u1"),
            x509.NameAttribute(NameOID.GIVEN_NAME, "Ann"),
            x509.NameAttribute(NameOID.SURNAME, "Lee"),
            x509.NameAttribute(NameOID.TITLE, "ops"),
            x509.NameAttribute(x509.ObjectIdentifier("1.2.3.4"), "x"),
        ]
    )
    assert formats.oneline_name(name) == "/UID=u1/GN=Ann/SN=Lee/title=ops/1.2.3.4=x"


def test_stat_csv_has_haproxys_layout() -> None:
    text = formats.stat_csv([{"pxname": "fe", "svname": "FRONTEND", "ocsp_certs": 2}])
    header, row, end = text.split("\n")
    assert header.startswith("# pxname,svname,qcur,")
    assert header.endswith(
        ",proto,-,ocsp_certs,ocsp_stapled,ocsp_update_ok,ocsp_update_err,ocsp_revoked,"
    )
    assert row.startswith("fe,FRONTEND,,")
    assert row.endswith(",-,2,,,,,")
    assert end == ""
    assert parse_answer("show stat", text.rstrip("\n")) == [
        dict.fromkeys([*formats.STAT_FIELDS, *formats.OCSP_STAT_FIELDS], "")
        | {"pxname": "fe", "svname": "FRONTEND", "ocsp_certs": "2"}
    ]


def test_csv_field_quotes_commas() -> None:
    assert formats.csv_field('a,"b"') == '"a,""b"""'
