"""Split a PEM file into the certificates, private keys and parameters it holds, in order.

HAProxy bundles put certificate, key, intermediates and DH parameters in one file, in any
order. We find the `-----BEGIN X-----` blocks ourselves (the framing is text), hand each block
to cryptography by its label, and keep file order so the caller can tell leaf from chain.
Pure: bytes in, values or a `PemError` out; the caller names the file in its messages.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 .]+)-----\r?\n(.*?)-----END \1-----",
    re.DOTALL,
)

_CERTIFICATE_LABELS = frozenset({b"CERTIFICATE", b"X509 CERTIFICATE"})
_KEY_LABELS = frozenset({b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"DSA PRIVATE KEY"})
_ENCRYPTED_KEY_LABELS = frozenset({b"ENCRYPTED PRIVATE KEY"})
# Parameters openssl writes next to keys; HAProxy reads DH parameters for DHE, we don't.
_PARAMETER_LABELS = frozenset({b"DH PARAMETERS", b"X9.42 DH PARAMETERS", b"EC PARAMETERS"})


class PemErrorKind(enum.Enum):
    """What is wrong with a PEM blob (the loader maps it to a CertificateErrorReason)."""

    NO_PEM = "no-pem"
    BAD_CERTIFICATE = "bad-certificate"
    BAD_KEY = "bad-key"
    ENCRYPTED_KEY = "encrypted-key"


class PemError(Exception):
    """A PEM blob could not be used; `kind` says why, the text says which block."""

    def __init__(self, kind: PemErrorKind, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(detail)


@dataclass(frozen=True)
class PemContents:
    """Everything usable in one PEM file, in file order.

    `keys` holds every private key (HAProxy uses the first); `ignored` names blocks we skipped
    (certificate requests, trusted-certificate aux blocks, ...), for a warning.
    """

    certificates: tuple[x509.Certificate, ...]
    keys: tuple[PrivateKeyTypes, ...]
    has_dh_params: bool
    ignored: tuple[str, ...]

    def __repr__(self) -> str:
        # Never let key objects near a repr, even though cryptography's hide their numbers.
        return (
            f"PemContents(certificates={len(self.certificates)}, keys={len(self.keys)}, "
            f"has_dh_params={self.has_dh_params}, ignored={self.ignored!r})"
        )


def is_encrypted_block(label: bytes, body: bytes) -> bool:
    """True for PKCS#8 encrypted keys and legacy `Proc-Type: 4,ENCRYPTED` keys."""
    return label in _ENCRYPTED_KEY_LABELS or (
        label in _KEY_LABELS and b"Proc-Type: 4,ENCRYPTED" in body
    )


def parse_pem(data: bytes) -> PemContents:
    """Parse every block of `data`; raise PemError for the first unusable one."""
    certificates: list[x509.Certificate] = []
    keys: list[PrivateKeyTypes] = []
    ignored: list[str] = []
    has_dh_params = False
    found = False
    for index, match in enumerate(_BLOCK.finditer(data), start=1):
        found = True
        label, body = match.group(1), match.group(2)
        block = match.group(0) + b"\n"
        name = label.decode("ascii")
        if label in _CERTIFICATE_LABELS:
            try:
                certificates.append(x509.load_pem_x509_certificate(block))
            except ValueError as exc:
                raise PemError(
                    PemErrorKind.BAD_CERTIFICATE,
                    f"PEM block {index} ('{name}') is not a valid certificate: {_short(exc)}",
                ) from exc
        elif is_encrypted_block(label, body):
            raise PemError(PemErrorKind.ENCRYPTED_KEY, f"PEM block {index} ('{name}')")
        elif label in _KEY_LABELS:
            keys.append(_load_key(block, index, name))
        elif label in _PARAMETER_LABELS:
            has_dh_params = has_dh_params or b"DH" in label
        else:
            ignored.append(name)
    if not found:
        raise PemError(PemErrorKind.NO_PEM, "no PEM data found")
    return PemContents(
        certificates=tuple(certificates),
        keys=tuple(keys),
        has_dh_params=has_dh_params,
        ignored=tuple(ignored),
    )


def _load_key(block: bytes, index: int, name: str) -> PrivateKeyTypes:
    try:
        # OpenSSL (and so HAProxy) does not run RSA_check_key on load; cryptography does by
        # default, at ~35 ms per 2048-bit key. The key still has to match the certificate.
        return serialization.load_pem_private_key(
            block, password=None, unsafe_skip_rsa_key_validation=True
        )
    except TypeError as exc:
        # cryptography's signal for "encrypted, and no password given".
        raise PemError(PemErrorKind.ENCRYPTED_KEY, f"PEM block {index} ('{name}')") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        # Never include the block itself: it is key material.
        raise PemError(
            PemErrorKind.BAD_KEY, f"PEM block {index} ('{name}') is not a usable private key"
        ) from exc


def _short(exc: Exception, limit: int = 160) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[: limit - 3] + "..."
