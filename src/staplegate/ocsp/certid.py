"""CertId: the identity of one certificate in OCSP, and the key of every staple table.

HAProxy keys its OCSP entries by the DER encoding of the SHA-1 CertID and prints it as
lowercase hex everywhere (runtime API, logs). We do the same so operators can compare
outputs. The DER comes from cryptography's request builder: an unsigned single-request
OCSPRequest is four nested SEQUENCEs around the CertID, so peeling four TLV headers yields
the CertID's own encoding without writing any ASN.1 encoder of our own.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _skip_header(der: bytes, offset: int) -> int:
    """Return the offset of the contents of the DER TLV starting at `offset`."""
    length_byte = der[offset + 1]
    if length_byte < 0x80:
        return offset + 2
    return offset + 2 + (length_byte & 0x7F)


@dataclass(frozen=True, slots=True)
class CertId:
    """Hash algorithm, issuer name hash, issuer key hash and serial number (RFC 6960 §4.1.1)."""

    hash_algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial_number: int

    @classmethod
    def for_certificate(
        cls, certificate: x509.Certificate, issuer: x509.Certificate, hash_algorithm: str = "sha1"
    ) -> CertId:
        """The CertId of `certificate` issued by `issuer` (SHA-1 by default, as HAProxy)."""
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(certificate, issuer, _HASHES[hash_algorithm]())
            .build()
        )
        return cls.from_request(request)

    @classmethod
    def from_request(cls, request: ocsp.OCSPRequest) -> CertId:
        return cls(
            hash_algorithm=request.hash_algorithm.name,
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number,
        )

    @classmethod
    def from_single_response(cls, single: ocsp.OCSPSingleResponse) -> CertId:
        return cls(
            hash_algorithm=single.hash_algorithm.name,
            issuer_name_hash=single.issuer_name_hash,
            issuer_key_hash=single.issuer_key_hash,
            serial_number=single.serial_number,
        )

    def request(self) -> ocsp.OCSPRequest:
        """An unsigned OCSPRequest for this CertId with no extensions (no nonce), like HAProxy."""
        return (
            ocsp.OCSPRequestBuilder()
            .add_certificate_by_hash(
                self.issuer_name_hash,
                self.issuer_key_hash,
                self.serial_number,
                _HASHES[self.hash_algorithm](),
            )
            .build()
        )

    @property
    def der(self) -> bytes:
        """The DER encoding of the CertID structure (HAProxy's OCSP entry key)."""
        from cryptography.hazmat.primitives.serialization import Encoding

        request_der = self.request().public_bytes(Encoding.DER)
        offset = 0
        for _ in range(4):  # OCSPRequest, TBSRequest, requestList, Request
            offset = _skip_header(request_der, offset)
        return request_der[offset:]

    @property
    def hex(self) -> str:
        """Lowercase hex of the DER CertID, as HAProxy prints it."""
        return self.der.hex()

    def matches(self, certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
        """True when this CertId (in whatever hash algorithm it uses) names `certificate`."""
        if self.hash_algorithm not in _HASHES:
            return False
        return self == CertId.for_certificate(certificate, issuer, self.hash_algorithm)
