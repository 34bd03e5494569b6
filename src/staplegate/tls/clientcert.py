"""What a connection's client certificate says, for the `ssl_c_*` sample fetches.

Read once when the handshake completes (`TlsEndpoint.session_info`) and only on contexts
that ask for a certificate. The DER is kept; names and serial are parsed on first use, and
a certificate cryptography cannot parse gives empty names rather than an exception (with
`crt-ignore-err all` its bytes are the client's). Names are rendered as OpenSSL's "oneline"
form (`/C=FR/O=Org/CN=name`, what HAProxy's `ssl_c_s_dn` returns) with every byte outside
printable ASCII escaped as `\\xHH`, so a hostile name cannot split a header or a log line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

from cryptography import x509

from staplegate.certs.names import OPENSSL_SHORT_NAMES


def escape(text: str) -> str:
    """Printable ASCII stays; anything else becomes `\\xHH` of its UTF-8 bytes."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02X}" for b in text.encode("utf-8", "replace")
    )


@dataclass(frozen=True)
class DistinguishedName:
    """A parsed name: (short name, value) pairs in certificate order."""

    attributes: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_name(cls, name: x509.Name) -> DistinguishedName:
        pairs = []
        for attribute in name:
            short = OPENSSL_SHORT_NAMES.get(attribute.oid, attribute.oid.dotted_string)
            value = attribute.value
            text = value if isinstance(value, str) else value.hex()
            pairs.append((short, escape(text)))
        return cls(tuple(pairs))

    def oneline(self) -> str:
        return "".join(f"/{short}={value}" for short, value in self.attributes)

    def rfc2253(self) -> str:
        return ",".join(f"{short}={value}" for short, value in reversed(self.attributes))

    def entry(self, name: str, occurrence: int = 1) -> str | None:
        """The `occurrence`-th value of `name` (negative: from the end), as HAProxy counts."""
        values = [v for short, v in self.attributes if short.lower() == name.lower()]
        index = occurrence - 1 if occurrence > 0 else occurrence
        try:
            return values[index]
        except IndexError:
            return None


@dataclass(frozen=True)
class ClientCertificate:
    """The certificate a client presented (DER) and the verify result (an X509_V_ERR code)."""

    der: bytes
    verify_result: int = 0

    @cached_property
    def _certificate(self) -> x509.Certificate | None:
        try:
            return x509.load_der_x509_certificate(self.der)
        except Exception:  # untrusted bytes: never raise past the parser
            return None

    def _name(self, issuer: bool) -> DistinguishedName:
        cert = self._certificate
        if cert is None:
            return DistinguishedName()
        try:
            return DistinguishedName.from_name(cert.issuer if issuer else cert.subject)
        except Exception:  # cryptography parses names lazily and may refuse them here
            return DistinguishedName()

    @cached_property
    def subject(self) -> DistinguishedName:
        return self._name(issuer=False)

    @cached_property
    def issuer(self) -> DistinguishedName:
        return self._name(issuer=True)

    @cached_property
    def sha1(self) -> bytes:
        """SHA-1 of the DER, HAProxy's binary `ssl_c_sha1` (the usual fingerprint)."""
        return hashlib.sha1(self.der).digest()  # a fingerprint, not a signature

    def validity(self, end: bool) -> str:
        """`ssl_c_notbefore`/`ssl_c_notafter`: ASN.1 time text, `YYMMDDhhmmssZ` (UTCTime)
        before 2050, `YYYYMMDDhhmmssZ` (GeneralizedTime) from then on, as HAProxy prints."""
        cert = self._certificate
        if cert is None:
            return ""
        try:
            moment = cert.not_valid_after_utc if end else cert.not_valid_before_utc
        except Exception:
            return ""
        return moment.strftime("%y%m%d%H%M%SZ" if moment.year < 2050 else "%Y%m%d%H%M%SZ")

    @cached_property
    def serial(self) -> bytes:
        """The serial number's big-endian bytes, as HAProxy's binary `ssl_c_serial`."""
        cert = self._certificate
        if cert is None:
            return b""
        try:
            number = cert.serial_number
        except Exception:
            return b""
        length = max(1, (number.bit_length() + 7) // 8) if number >= 0 else 0
        return number.to_bytes(length, "big") if length else b""
