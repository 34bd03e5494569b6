"""Client certificate facts: OpenSSL-style names, escaping of hostile bytes, serial bytes."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from staplegate.tls.clientcert import ClientCertificate, escape


def _der(subject: x509.Name, serial: int = 0x1234) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_oneline_entries_and_serial() -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "a"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "b"),
            x509.NameAttribute(NameOID.COMMON_NAME, "alice"),
        ]
    )
    cert = ClientCertificate(_der(subject), verify_result=0)
    assert cert.subject.oneline() == "/C=FR/OU=a/OU=b/CN=alice"
    assert cert.subject.rfc2253() == "CN=alice,OU=b,OU=a,C=FR"
    assert cert.issuer.oneline() == "/CN=Test CA"
    assert cert.subject.entry("cn") == "alice"
    assert cert.subject.entry("OU") == "a"
    assert cert.subject.entry("OU", 2) == "b"
    assert cert.subject.entry("OU", -1) == "b"
    assert cert.subject.entry("OU", 3) is None
    assert cert.serial == b"\x12\x34"
    assert (cert.validity(end=False), cert.validity(end=True)) == (
        "260101000000Z",
        "260102000000Z",
    )
    assert len(cert.sha1) == 20


def test_hostile_names_cannot_split_a_header() -> None:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x\r\nX-Admin: 1\u00e9")])
    cert = ClientCertificate(_der(subject))
    assert cert.subject.oneline() == "/CN=x\\x0D\\x0AX-Admin: 1\\xC3\\xA9"
    assert escape("plain") == "plain"


def test_garbage_der_gives_empty_answers() -> None:
    cert = ClientCertificate(b"\x30\x03\x02\x01\x00", verify_result=7)
    assert cert.subject.oneline() == ""
    assert cert.issuer.entry("CN") is None
    assert cert.serial == b""
