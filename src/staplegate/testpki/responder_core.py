"""The test OCSP responder's pure part: request DER + CA databases + signer + now -> response.

No sockets, no files, no clock: `responder.py` reads index.txt, keeps the cache and speaks
HTTP. Behaviour follows `openssl ocsp -index` so the same CA directory answers the same way:

- the issuer is found by the request's CertId hashes (SHA-1, SHA-256, ... whatever the client
  used, and the answer uses the same algorithm); an issuer we don't serve -> `unauthorized`;
- index.txt `V` -> good, `R` -> revoked with its time and reason, `E` (expired, never revoked)
  -> good, a serial missing from the index -> unknown;
- garbage, several requests in one, or an unsupported hash -> `malformedRequest`;
- a nonce in the request is echoed, which makes the answer uncacheable;
- thisUpdate = now (whole seconds), nextUpdate = now + validity; the responder ID is the
  signer's name (openssl's default; `by_key_hash` = `-resp_key_id`), the signer certificate is
  embedded unless `include_certificate` is off (`-resp_no_certs`).

Faults that change the OCSP answer itself (tryLater, rogue signer, stale times, ...) are
applied here; HTTP-level faults belong to the server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from staplegate.testpki.faults import Fault, FaultKind
from staplegate.testpki.index import EntryStatus, IndexEntry, crl_reason

SignerKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)

HASH_ALGORITHMS: Final[tuple[type[hashes.HashAlgorithm], ...]] = (
    hashes.SHA1,
    hashes.SHA224,
    hashes.SHA256,
    hashes.SHA384,
    hashes.SHA512,
)
STALE_BY: Final = dt.timedelta(hours=1)
FUTURE_BY: Final = dt.timedelta(days=1)


class CertState(enum.Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Signer:
    """The key that signs responses and the certificate clients check it with."""

    certificate: x509.Certificate
    private_key: SignerKey
    by_key_hash: bool = False
    include_certificate: bool = True

    @property
    def digest(self) -> hashes.SHA256 | hashes.SHA384 | None:
        """The signature digest: none for EdDSA, SHA-384 for P-384 and up, else SHA-256."""
        if isinstance(self.private_key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
            return None
        key = self.private_key
        if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
            return hashes.SHA384()
        return hashes.SHA256()

    @property
    def key_description(self) -> str:
        key = self.private_key
        if isinstance(key, rsa.RSAPrivateKey):
            return f"RSA-{key.key_size}"
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return {"secp256r1": "P-256", "secp384r1": "P-384"}.get(key.curve.name, key.curve.name)
        return type(key).__name__.removesuffix("PrivateKey")


def rogue_signer(like: Signer, *, now: dt.datetime) -> Signer:
    """A self-signed responder no CA vouches for, with the same kind of key as `like`."""
    old = like.private_key
    key: SignerKey
    if isinstance(old, rsa.RSAPrivateKey):
        key = rsa.generate_private_key(public_exponent=65537, key_size=old.key_size)
    elif isinstance(old, ec.EllipticCurvePrivateKey):
        key = ec.generate_private_key(old.curve)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "staplegate rogue OCSP responder")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, Signer(like.certificate, key).digest)
    )
    return Signer(certificate, key, like.by_key_hash, like.include_certificate)


@dataclass(frozen=True, slots=True)
class ServedIssuer:
    """A CA this responder answers for, and its database as last read."""

    certificate: x509.Certificate
    entries: Mapping[int, IndexEntry]

    @classmethod
    def from_entries(
        cls, certificate: x509.Certificate, entries: Iterable[IndexEntry]
    ) -> ServedIssuer:
        return cls(certificate, {entry.serial: entry for entry in entries})

    def lookup_keys(self) -> list[tuple[str, bytes, bytes]]:
        """(hash name, issuerNameHash, issuerKeyHash) for every hash a client may use."""
        name_der = self.certificate.subject.public_bytes()
        # issuerKeyHash covers the BIT STRING contents of subjectPublicKey; cryptography's
        # request builder computes it, so build a request naming the CA as its own issuer.
        keys = []
        for algorithm_type in HASH_ALGORITHMS:
            algorithm = algorithm_type()
            request = (
                ocsp.OCSPRequestBuilder()
                .add_certificate(self.certificate, self.certificate, algorithm)
                .build()
            )
            digest = hashes.Hash(algorithm)
            digest.update(name_der)
            keys.append((algorithm.name, digest.finalize(), request.issuer_key_hash))
        return keys


@dataclass(frozen=True, slots=True)
class Answer:
    """What the responder decided for one request; `der` is the HTTP body."""

    der: bytes
    response_status: ocsp.OCSPResponseStatus
    cert_state: CertState | None = None
    serial: int | None = None
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None
    has_nonce: bool = False
    fault: FaultKind | None = None

    @property
    def cacheable(self) -> bool:
        """Answers that may be reused for the same request bytes until they need re-signing."""
        return (
            self.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
            and not self.has_nonce
            and self.fault is None
        )


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """The parts of an OCSP request the responder uses."""

    hash_algorithm: hashes.HashAlgorithm
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    nonce: bytes | None


class MalformedRequest(ValueError):
    """The request bytes are not one OCSP request we can answer."""


def parse_request(der: bytes) -> ParsedRequest:
    try:
        request = ocsp.load_der_ocsp_request(der)
        algorithm = request.hash_algorithm
        nonce = None
        with contextlib.suppress(x509.ExtensionNotFound):
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        return ParsedRequest(
            algorithm,
            request.issuer_name_hash,
            request.issuer_key_hash,
            request.serial_number,
            nonce,
        )
    except (ValueError, UnsupportedAlgorithm) as error:
        raise MalformedRequest(str(error)) from None


class ResponderCore:
    """Answers OCSP requests for a set of issuers; swap `issuers` when an index changes."""

    def __init__(
        self,
        *,
        issuers: Iterable[ServedIssuer],
        signer: Signer,
        validity: dt.timedelta,
    ) -> None:
        if validity <= dt.timedelta(0):
            raise ValueError("validity must be positive")
        self.signer = signer
        self.validity = validity
        self._lookup: dict[tuple[str, bytes, bytes], ServedIssuer] = {}
        self._rogue: Signer | None = None
        self.set_issuers(issuers)

    def set_issuers(self, issuers: Iterable[ServedIssuer]) -> None:
        lookup = {}
        for issuer in issuers:
            for key in issuer.lookup_keys():
                lookup[key] = issuer
        self._lookup = lookup

    def answer(self, request_der: bytes, *, now: dt.datetime, fault: Fault | None = None) -> Answer:
        """The response to `request_der`; `fault` (an OCSP-level one) bends it on purpose."""
        kind = fault.kind if fault is not None and not fault.kind.is_http_level else None
        try:
            request = parse_request(request_der)
        except MalformedRequest:
            return unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        simple = {
            FaultKind.TRY_LATER: ocsp.OCSPResponseStatus.TRY_LATER,
            FaultKind.UNAUTHORIZED: ocsp.OCSPResponseStatus.UNAUTHORIZED,
            FaultKind.INTERNAL_ERROR: ocsp.OCSPResponseStatus.INTERNAL_ERROR,
        }
        if kind in simple:
            return unsuccessful(simple[kind], serial=request.serial, fault=kind)
        issuer = self._lookup.get(
            (request.hash_algorithm.name, request.issuer_name_hash, request.issuer_key_hash)
        )
        if issuer is None:
            return unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED, serial=request.serial)

        answered_serial = request.serial
        if kind is FaultKind.WRONG_CERTID:
            answered_serial = _another_serial(issuer, request.serial)
        entry = issuer.entries.get(answered_serial)
        state, revoked_at, reason = _status_of(entry)

        this_update = now.replace(microsecond=0)
        if kind is FaultKind.STALE:
            this_update -= self.validity + STALE_BY
        elif kind is FaultKind.FUTURE:
            this_update += FUTURE_BY
        next_update = this_update + self.validity

        signer = self.signer
        if kind is FaultKind.ROGUE_SIGNER:
            if self._rogue is None:
                self._rogue = rogue_signer(self.signer, now=now)
            signer = self._rogue

        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=answered_serial,
            algorithm=request.hash_algorithm,
            cert_status={
                CertState.GOOD: ocsp.OCSPCertStatus.GOOD,
                CertState.REVOKED: ocsp.OCSPCertStatus.REVOKED,
                CertState.UNKNOWN: ocsp.OCSPCertStatus.UNKNOWN,
            }[state],
            this_update=this_update,
            next_update=next_update,
            revocation_time=revoked_at,
            revocation_reason=reason,
        )
        builder = builder.responder_id(
            ocsp.OCSPResponderEncoding.HASH
            if signer.by_key_hash
            else ocsp.OCSPResponderEncoding.NAME,
            signer.certificate,
        )
        if signer.include_certificate:
            builder = builder.certificates([signer.certificate])
        if request.nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(request.nonce), critical=False)
        response = builder.sign(signer.private_key, signer.digest)
        return Answer(
            der=response.public_bytes(serialization.Encoding.DER),
            response_status=ocsp.OCSPResponseStatus.SUCCESSFUL,
            cert_state=state,
            serial=request.serial,
            this_update=this_update,
            next_update=next_update,
            has_nonce=request.nonce is not None,
            fault=kind,
        )


def unsuccessful(
    status: ocsp.OCSPResponseStatus, *, serial: int | None = None, fault: FaultKind | None = None
) -> Answer:
    der = ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )
    return Answer(der=der, response_status=status, serial=serial, fault=fault)


def _status_of(
    entry: IndexEntry | None,
) -> tuple[CertState, dt.datetime | None, x509.ReasonFlags | None]:
    if entry is None:
        return CertState.UNKNOWN, None, None
    if entry.status is EntryStatus.REVOKED and entry.revoked_at is not None:
        return CertState.REVOKED, entry.revoked_at, crl_reason(entry.revocation_reason)
    return CertState.GOOD, None, None


def _another_serial(issuer: ServedIssuer, serial: int) -> int:
    """A serial of another certificate of the same issuer (or serial+1 when it has none)."""
    others = sorted(s for s in issuer.entries if s != serial)
    return others[0] if others else serial + 1
