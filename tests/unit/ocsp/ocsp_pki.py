"""Real PKI and real OCSP DER for the OCSP core's tests (no mocked crypto objects).

A module with a unique name (not conftest) so tests can import its helpers unambiguously.

Everything is built with cryptography: two CAs (RSA and ECDSA) with a leaf each, delegated
OCSP signers (with and without the OCSPSigning EKU, and one issued by another CA), and a
rogue key. `Pki.response(...)` signs a response with any of them. Two shapes cryptography's
builder refuses to make (no SingleResponse, two of them) come from `resign_with_singles`,
which rewrites the responses list of a real response and signs it again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
OCSP_URI = "http://ocsp.example.test"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificate(
    *,
    subject: str,
    key: PrivateKey,
    issuer_name: str | None = None,
    issuer_key: PrivateKey | None = None,
    serial: int = 1,
    ca: bool = False,
    ocsp_signing: bool = False,
    not_before: dt.datetime = NOW - dt.timedelta(days=30),
    not_after: dt.datetime = NOW + dt.timedelta(days=365),
    ocsp_uri: str | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name or subject))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ocsp_signing:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False
        )
    if ocsp_uri is not None:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.oid.AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier(ocsp_uri),
                    )
                ]
            ),
            critical=False,
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


@dataclass(frozen=True)
class Signer:
    """A key that signs OCSP responses and the certificate that names it."""

    key: PrivateKey
    certificate: x509.Certificate


@dataclass(frozen=True)
class Authority:
    """A CA, one leaf it issued, and the leaf's key."""

    name: str
    signer: Signer
    leaf: x509.Certificate
    other_leaf: x509.Certificate = field(repr=False)

    @property
    def certificate(self) -> x509.Certificate:
        return self.signer.certificate


def make_authority(name: str, key: PrivateKey, leaf_serial: int) -> Authority:
    ca = make_certificate(subject=name, key=key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = make_certificate(
        subject=f"www.{leaf_serial:x}.test",
        key=leaf_key,
        issuer_name=name,
        issuer_key=key,
        serial=leaf_serial,
        ocsp_uri=OCSP_URI,
    )
    other = make_certificate(
        subject="other.test",
        key=leaf_key,
        issuer_name=name,
        issuer_key=key,
        serial=leaf_serial + 1,
        ocsp_uri=OCSP_URI,
    )
    return Authority(name=name, signer=Signer(key, ca), leaf=leaf, other_leaf=other)


def make_delegate(
    authority: Authority,
    *,
    subject: str,
    ocsp_signing: bool = True,
    not_before: dt.datetime = NOW - dt.timedelta(days=1),
    not_after: dt.datetime = NOW + dt.timedelta(days=30),
) -> Signer:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = make_certificate(
        subject=subject,
        key=key,
        issuer_name=authority.name,
        issuer_key=authority.signer.key,
        serial=0x5151,
        ocsp_signing=ocsp_signing,
        not_before=not_before,
        not_after=not_after,
    )
    return Signer(key, certificate)


def sign_response(
    *,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    signer: Signer,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    this_update: dt.datetime = NOW - dt.timedelta(hours=1),
    next_update: dt.datetime | None = NOW + dt.timedelta(days=7),
    revocation_time: dt.datetime | None = None,
    revocation_reason: x509.ReasonFlags | None = None,
    certid_hash: hashes.HashAlgorithm | None = None,
    encoding: ocsp.OCSPResponderEncoding = ocsp.OCSPResponderEncoding.HASH,
    include: list[x509.Certificate] | None = None,
    signature_hash: hashes.HashAlgorithm | None = None,
) -> bytes:
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            certificate,
            issuer,
            certid_hash or hashes.SHA1(),
            status,
            this_update,
            next_update,
            revocation_time,
            revocation_reason,
        )
        .responder_id(encoding, signer.certificate)
    )
    if include:
        builder = builder.certificates(include)
    response = builder.sign(signer.key, signature_hash or hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER)


# --- a little DER surgery, for response shapes cryptography's builder refuses to make ---


def _read_tlv(der: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, content start, end) of the TLV at `offset`."""
    tag = der[offset]
    length = der[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(der[start : start + count], "big")
        start += count
    return tag, start, start + length


def _children(der: bytes) -> list[bytes]:
    out, offset = [], 0
    while offset < len(der):
        _, _, end = _read_tlv(der, offset)
        out.append(der[offset:end])
        offset = end
    return out


def _content(tlv: bytes) -> bytes:
    _, start, end = _read_tlv(tlv, 0)
    return tlv[start:end]


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def resign_with_singles(der: bytes, signer: Signer, copies: int) -> bytes:
    """`der` with its one SingleResponse repeated `copies` times (0 = none), signed again."""
    status, response_bytes = _children(_content(der))
    oid, octets = _children(_content(_content(response_bytes)))
    tbs, algorithm, _signature, *rest = _children(_content(_content(octets)))
    tbs_fields = _children(_content(tbs))
    # tbsResponseData: [version] responderID producedAt responses [extensions]
    index = next(i for i, f in enumerate(tbs_fields) if f[0] == 0x18) + 1  # after producedAt
    single = _content(tbs_fields[index])
    tbs_fields[index] = _tlv(0x30, single * copies)
    new_tbs = _tlv(0x30, b"".join(tbs_fields))
    if isinstance(signer.key, rsa.RSAPrivateKey):
        signature = signer.key.sign(new_tbs, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = signer.key.sign(new_tbs, ec.ECDSA(hashes.SHA256()))
    basic = _tlv(0x30, new_tbs + algorithm + _tlv(0x03, b"\x00" + signature) + b"".join(rest))
    body = _tlv(0x30, oid + _tlv(0x04, basic))
    return _tlv(0x30, status + _tlv(0xA0, body))


# --- fixtures ---


@dataclass(frozen=True)
class Pki:
    rsa_ca: Authority
    ec_ca: Authority
    foreign_ca: Authority
    delegate: Signer  # issued by ec_ca, OCSPSigning EKU
    delegate_no_eku: Signer  # issued by ec_ca, no EKU
    delegate_expired: Signer  # issued by ec_ca, EKU, validity over
    foreign_delegate: Signer  # issued by foreign_ca (same CA name as ec_ca!), EKU
    rogue: Signer  # self-signed, claims ec_ca's name


@pytest.fixture(scope="session")
def pki() -> Pki:
    rsa_ca = make_authority("Staplegate RSA Test CA", rsa.generate_private_key(65537, 2048), 0x10)
    ec_ca = make_authority("Staplegate EC Test CA", ec.generate_private_key(ec.SECP256R1()), 0x20)
    # Another CA with the *same name* as ec_ca but its own key: only signatures tell them apart.
    foreign_ca = make_authority(
        "Staplegate EC Test CA", ec.generate_private_key(ec.SECP384R1()), 0x30
    )
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = Signer(
        rogue_key, make_certificate(subject="Staplegate EC Test CA", key=rogue_key, ca=True)
    )
    return Pki(
        rsa_ca=rsa_ca,
        ec_ca=ec_ca,
        foreign_ca=foreign_ca,
        delegate=make_delegate(ec_ca, subject="EC CA OCSP Responder"),
        delegate_no_eku=make_delegate(ec_ca, subject="EC CA No EKU", ocsp_signing=False),
        delegate_expired=make_delegate(
            ec_ca,
            subject="EC CA Old Responder",
            not_before=NOW - dt.timedelta(days=60),
            not_after=NOW - dt.timedelta(days=1),
        ),
        foreign_delegate=make_delegate(foreign_ca, subject="EC CA OCSP Responder"),
        rogue=rogue,
    )
