"""Fuzz target: the OCSP verifier on mutated real DER (issue 14).

Every staple candidate (fetched, sidecar, state directory, runtime API) is untrusted and goes
through `verify_response`. Two properties, for any input:

- only `VerificationError` escapes, with or without the signature check (cryptography parses
  lazily, so a bad name or certificate deep inside used to raise TypeError/ValueError);
- an accepted response's signed part (tbsResponseData) is byte for byte one that the
  responder signed (a seed's): an altered signed part that verifies raises `Disagreement`.

The seeds are real responses built with cryptography, deterministic (Ed25519 and RFC 6979
ECDSA signatures, fixed keys, serials and times) so a run is reproducible: good, revoked and
unknown answers, byName and byKey responder IDs, a delegated responder with its certificate,
SHA-256 and MD5 CertIds, no nextUpdate, a nonce, another certificate's answer, tryLater, and
the malformed ResponderID name of defect 2.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from staplegate.ocsp.verify import VerificationError, verify_response
from tests.fuzz_targets import Disagreement
from tests.ocsp_der import (
    BOOLEAN,
    resign,
    retag_string,
    tbs_response_data,
    with_md5_cert_id,
    with_produced_at,
)

NAME = "ocsp_verify"

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)

Key = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class _Pki:
    ca_key: Key
    ca: x509.Certificate
    leaf: x509.Certificate
    other_leaf: x509.Certificate
    delegate_key: Key
    delegate: x509.Certificate
    ec_ca_key: ec.EllipticCurvePrivateKey
    ec_ca: x509.Certificate
    ec_leaf: x509.Certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: Key, issuer: str, issuer_key: Key, serial: int, *, eku: bool = False
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW - dt.timedelta(days=30))
        .not_valid_after(NOW + dt.timedelta(days=365))
    )
    if eku:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False
        )
    if isinstance(issuer_key, ed25519.Ed25519PrivateKey):
        return builder.sign(issuer_key, None)
    # ECDSA certificate signatures are random, but only the issuer's own certificate is
    # signed this way (self-signed): the test below never depends on its bytes being stable.
    return builder.sign(issuer_key, hashes.SHA256())


@functools.cache
def _pki() -> _Pki:
    ca_key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    leaf_key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(33, 65)))
    delegate_key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(65, 97)))
    ec_ca_key = ec.derive_private_key(0x5EED, ec.SECP256R1())
    ca_name = "Fuzz Ed25519 CA"
    ec_name = "Fuzz EC CA"
    return _Pki(
        ca_key=ca_key,
        ca=_certificate(ca_name, ca_key, ca_name, ca_key, 1),
        leaf=_certificate("www.fuzz.test", leaf_key, ca_name, ca_key, 0x1001),
        other_leaf=_certificate("other.fuzz.test", leaf_key, ca_name, ca_key, 0x1002),
        delegate_key=delegate_key,
        delegate=_certificate("Fuzz OCSP Responder", delegate_key, ca_name, ca_key, 7, eku=True),
        ec_ca_key=ec_ca_key,
        ec_ca=_certificate(ec_name, ec_ca_key, ec_name, ec_ca_key, 2),
        ec_leaf=_certificate("ec.fuzz.test", leaf_key, ec_name, ec_ca_key, 0x2001),
    )


def _response(
    *,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    signer_key: Key,
    signer: x509.Certificate,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    encoding: ocsp.OCSPResponderEncoding = ocsp.OCSPResponderEncoding.NAME,
    certid_hash: hashes.HashAlgorithm | None = None,
    next_update: dt.datetime | None = NOW + dt.timedelta(days=7),
    include: bool = False,
    nonce: bool = False,
) -> bytes:
    revoked = status is ocsp.OCSPCertStatus.REVOKED
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            certificate,
            issuer,
            certid_hash or hashes.SHA1(),
            status,
            NOW - dt.timedelta(hours=1),
            next_update,
            NOW - dt.timedelta(days=2) if revoked else None,
            x509.ReasonFlags.key_compromise if revoked else None,
        )
        .responder_id(encoding, signer)
    )
    if include:
        builder = builder.certificates([signer])
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(b"\x04" * 16), critical=False)
    algorithm = None if isinstance(signer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    draft = builder.sign(signer_key, algorithm).public_bytes(serialization.Encoding.DER)
    # producedAt is the builder's wall clock: pin it, and sign again (Ed25519 and RFC 6979
    # ECDSA are deterministic) so the seeds are the same bytes on every run.
    return resign(with_produced_at(draft, NOW), signer_key, deterministic=True)


@functools.cache
def _seeds() -> tuple[bytes, ...]:
    pki = _pki()
    by_ca = functools.partial(
        _response, certificate=pki.leaf, issuer=pki.ca, signer_key=pki.ca_key, signer=pki.ca
    )
    good = by_ca()
    ec_good = _response(
        certificate=pki.ec_leaf, issuer=pki.ec_ca, signer_key=pki.ec_ca_key, signer=pki.ec_ca
    )
    return (
        good,
        by_ca(encoding=ocsp.OCSPResponderEncoding.HASH),
        by_ca(status=ocsp.OCSPCertStatus.REVOKED),
        by_ca(status=ocsp.OCSPCertStatus.UNKNOWN),
        by_ca(certid_hash=hashes.SHA256()),
        by_ca(next_update=None),
        by_ca(nonce=True),
        _response(
            certificate=pki.leaf,
            issuer=pki.ca,
            signer_key=pki.delegate_key,
            signer=pki.delegate,
            include=True,
        ),
        _response(
            certificate=pki.leaf,
            issuer=pki.ca,
            signer_key=pki.delegate_key,
            signer=pki.delegate,
            encoding=ocsp.OCSPResponderEncoding.HASH,
            include=True,
        ),
        _response(  # another certificate of the same CA
            certificate=pki.other_leaf, issuer=pki.ca, signer_key=pki.ca_key, signer=pki.ca
        ),
        ec_good,
        ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(
            serialization.Encoding.DER
        ),
        with_md5_cert_id(good),
        retag_string(good, "Fuzz Ed25519 CA", tag=BOOLEAN),
    )


@functools.cache
def _signed_parts() -> frozenset[bytes]:
    """Every tbsResponseData a key really signed (the seeds' own)."""
    parts = set()
    for seed in _seeds():
        try:
            parts.add(tbs_response_data(seed))
        except (IndexError, ValueError):
            continue  # an unsuccessful response has no signed part
    return frozenset(parts)


def seeds() -> list[bytes]:
    return list(_seeds())


def run_one(data: bytes) -> None:
    """Verify `data` for the Ed25519 CA's leaf and the EC CA's leaf, with and without the
    signature check; only VerificationError may escape, and nothing altered is accepted."""
    pki = _pki()
    for certificate, issuer in ((pki.leaf, pki.ca), (pki.ec_leaf, pki.ec_ca)):
        for check_signature in (True, False):
            try:
                staple = verify_response(
                    data,
                    certificate=certificate,
                    issuer=issuer,
                    now=NOW,
                    check_signature=check_signature,
                )
            except VerificationError:
                continue
            if staple.der != data:
                raise Disagreement("the staple is not the bytes that were verified")
            if not check_signature:
                continue
            signed = ocsp.load_der_ocsp_response(data).tbs_response_bytes
            if signed not in _signed_parts():
                raise Disagreement(
                    "accepted a response whose signed part (tbsResponseData) was altered: "
                    + data.hex()
                )
