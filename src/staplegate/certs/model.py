"""The value a loaded certificate becomes: leaf, key, chain, issuer, OCSP facts, file names.

Immutable, so a certificate store generation can be shared by the TLS contexts, the OCSP
updater and the runtime API without copies. The private key never appears in `repr()`/`str()`.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)

from staplegate.ocsp.certid import CertId


class KeyAlgorithm(enum.Enum):
    """The leaf's public key algorithm (picks the TLS context slot, as HAProxy's key types)."""

    RSA = "RSA"
    ECDSA = "EC"
    DSA = "DSA"
    ED25519 = "ED25519"
    ED448 = "ED448"


@dataclass(frozen=True)
class KeyType:
    """Algorithm plus size (RSA, DSA) or curve (ECDSA)."""

    algorithm: KeyAlgorithm
    bits: int | None = None
    curve: str | None = None

    @classmethod
    def of(cls, key: CertificatePublicKeyTypes) -> KeyType:
        if isinstance(key, rsa.RSAPublicKey):
            return cls(KeyAlgorithm.RSA, bits=key.key_size)
        if isinstance(key, ec.EllipticCurvePublicKey):
            return cls(KeyAlgorithm.ECDSA, bits=key.curve.key_size, curve=key.curve.name)
        if isinstance(key, dsa.DSAPublicKey):
            return cls(KeyAlgorithm.DSA, bits=key.key_size)
        if isinstance(key, ed25519.Ed25519PublicKey):
            return cls(KeyAlgorithm.ED25519)
        if isinstance(key, ed448.Ed448PublicKey):
            return cls(KeyAlgorithm.ED448)
        raise TypeError(f"unsupported certificate key type {type(key).__name__}")

    @property
    def haproxy_name(self) -> str:
        """What HAProxy's `show ssl cert` prints as `Algorithm:` (`RSA2048`, `EC256`)."""
        return f"{self.algorithm.value}{self.bits}" if self.bits else self.algorithm.value


class IssuerSource(enum.Enum):
    """Where the issuer used for the CertId came from (HAProxy's order: a chain
    certificate that issued the leaf, else the `.issuer` sidecar or `issuer` keyword file)."""

    CHAIN = "chain"
    ISSUER_SIDECAR = "issuer-sidecar"
    ISSUER_KEYWORD = "issuer-keyword"
    NONE = "none"


@dataclass(frozen=True)
class OcspFile:
    """Raw bytes of a `.ocsp` sidecar or `ocsp` keyword file, unparsed.

    As HAProxy does, the loader only reads them; `certs.readiness.check_ocsp_sidecar` verifies
    them once the issuer is known.
    """

    path: Path
    der: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"OcspFile(path={str(self.path)!r}, {len(self.der)} bytes)"


@dataclass(frozen=True)
class CertificateFiles:
    """The file names HAProxy 3.2 records for a store (`show ssl cert` filename lines).

    In discovery mode these are candidate names, set even when the file does not exist; with
    explicit file keywords only the named files are set.
    """

    crt: Path
    key: Path | None = None
    ocsp: Path | None = None
    issuer: Path | None = None
    sctl: Path | None = None


@dataclass(frozen=True)
class LoadedCertificate:
    """One certificate store entry (HAProxy's "ckch store"), ready for TLS and OCSP.

    `chain` is in file order without the leaf. `issuer` is what the CertId is computed from;
    `cert_id` is None when no issuer was found. `read_paths` lists the files actually read,
    in reading order.
    """

    name: str
    files: CertificateFiles
    read_paths: tuple[Path, ...]
    leaf: x509.Certificate
    private_key: PrivateKeyTypes = field(repr=False, compare=False)
    chain: tuple[x509.Certificate, ...]
    names: tuple[str, ...]
    key_type: KeyType
    not_before: dt.datetime
    not_after: dt.datetime
    ocsp_uri: str | None
    """The first OCSP URL of the AIA, verbatim (the one HAProxy uses)."""
    must_staple: bool
    issuer: x509.Certificate | None
    issuer_source: IssuerSource
    issuer_path: Path | None
    cert_id: CertId | None
    ocsp: OcspFile | None
    sctl_path: Path | None
    has_dh_params: bool
    warnings: tuple[str, ...] = ()
    ocsp_uris: tuple[str, ...] = ()
    """Every OCSP URL of the AIA in order (ours: the later ones are tried when one fails)."""

    @property
    def serial_hex(self) -> str:
        """Uppercase hex serial in whole bytes, as HAProxy prints it (`0A1B2C3D`)."""
        text = f"{self.leaf.serial_number:X}"
        return "0" + text if len(text) % 2 else text

    def __str__(self) -> str:
        return (
            f"{self.name} ({self.key_type.haproxy_name}, "
            f"{', '.join(self.names) or 'no names'}, serial {self.serial_hex})"
        )
