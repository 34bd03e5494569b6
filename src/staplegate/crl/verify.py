"""Decide what a CRL says about one certificate, or exactly why it cannot say anything.

Theory of operation. A CRL is untrusted bytes (a file, or whatever an HTTP server sent), so
`verify_crl` runs RFC 5280 §6.3's checks that apply to a direct, complete CRL and raises
`CrlError` with one specific reason at the first failure:

1. parse DER, or PEM (`-----BEGIN X509 CRL-----`)      -> UNPARSABLE
2. the issuer certificate may sign CRLs (keyUsage)      -> ISSUER_NOT_CRL_SIGNER
3. the CRL is direct (not marked indirect) and its issuer
   is the certificate's issuer                          -> INDIRECT_CRL_UNSUPPORTED, WRONG_ISSUER
4. signed by the issuer's key (AKI, then the signature) -> SIGNER_KEY_MISMATCH, SIGNATURE_INVALID
5. a complete CRL: not a delta, no critical extension
   we do not understand                       -> DELTA_CRL, UNHANDLED_CRITICAL_EXTENSION
6. nextUpdate present; thisUpdate - skew <= now < nextUpdate + skew
                                              -> NEXT_UPDATE_MISSING, NOT_YET_VALID, EXPIRED

and `VerifiedCrl.verdict_for` (per certificate; one verified CRL serves every certificate
that names its URL):

7. the certificate was issued by that issuer  -> CERTIFICATE_NOT_FROM_ISSUER
8. the CRL's scope covers it: issuing distribution point
   names one of the certificate's, all reasons, the right
   kind of certificate                        -> DISTRIBUTION_POINT_MISMATCH, PARTIAL_REASONS,
                                                 SCOPE_MISMATCH
9. the serial is listed -> REVOKED (reason, time), else GOOD.

Unlike an OCSP staple there is no withdrawal margin: CAs often publish the next CRL minutes
before the current one's nextUpdate, and a CRL is only consulted, never served to clients.

Indirect CRLs (signed by another authority, RFC 5280 §5.2.5 / cRLIssuer in the certificate's
distribution point) would need the CRL issuer's certificate and its own path to the trust
anchor, which cryptography does not build for CRLs; they are refused with
INDIRECT_CRL_UNSUPPORTED rather than half-checked.

cryptography parses lazily (a name, an entry, an extension is decoded when first read), so
every step runs under one guard that turns any exception into `CrlError`: only `CrlError`
escapes, whatever the bytes.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID

#: Default tolerance between our clock and the CRL issuer's, as for OCSP.
DEFAULT_SKEW = dt.timedelta(seconds=300)

_PEM_MARKER = b"-----BEGIN"

# CRL extensions whose meaning we honour (RFC 5280 §5.2); a critical one outside this set
# means the CRL says something we cannot check, so it is refused (§5.2: MUST reject).
_UNDERSTOOD_CRL_EXTENSIONS = frozenset(
    {
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.ISSUER_ALTERNATIVE_NAME,
        ExtensionOID.CRL_NUMBER,
        ExtensionOID.DELTA_CRL_INDICATOR,
        ExtensionOID.ISSUING_DISTRIBUTION_POINT,
        ExtensionOID.FRESHEST_CRL,
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
    }
)
_UNDERSTOOD_ENTRY_EXTENSIONS = frozenset(
    {
        CRLEntryExtensionOID.CRL_REASON,
        CRLEntryExtensionOID.INVALIDITY_DATE,
        CRLEntryExtensionOID.CERTIFICATE_ISSUER,
    }
)


class CrlFailure(enum.Enum):
    """Why a CRL tells us nothing about a certificate; one member per check, in order."""

    UNPARSABLE = "unparsable"
    ISSUER_NOT_CRL_SIGNER = "issuer-not-crl-signer"
    INDIRECT_CRL_UNSUPPORTED = "indirect-crl-unsupported"
    WRONG_ISSUER = "wrong-issuer"
    SIGNER_KEY_MISMATCH = "signer-key-mismatch"
    SIGNATURE_INVALID = "signature-invalid"
    DELTA_CRL = "delta-crl"
    UNHANDLED_CRITICAL_EXTENSION = "unhandled-critical-extension"
    NEXT_UPDATE_MISSING = "next-update-missing"
    NOT_YET_VALID = "not-yet-valid"
    EXPIRED = "expired"
    CERTIFICATE_NOT_FROM_ISSUER = "certificate-not-from-issuer"
    DISTRIBUTION_POINT_MISMATCH = "distribution-point-mismatch"
    PARTIAL_REASONS = "partial-reasons"
    SCOPE_MISMATCH = "scope-mismatch"


_HINTS: dict[CrlFailure, str] = {
    CrlFailure.UNPARSABLE: "the bytes are not a DER or PEM CRL (truncated download?)",
    CrlFailure.ISSUER_NOT_CRL_SIGNER: "the issuer certificate's keyUsage lacks cRLSign",
    CrlFailure.INDIRECT_CRL_UNSUPPORTED: "indirect CRLs (signed by another authority) are "
    "not supported; use OCSP or the issuer's own CRL",
    CrlFailure.WRONG_ISSUER: "the CRL comes from another CA; check the URL and the issuer",
    CrlFailure.SIGNER_KEY_MISMATCH: "the CRL is signed by another key of that CA "
    "(key rollover?); use the matching issuer certificate",
    CrlFailure.SIGNATURE_INVALID: "the CRL was altered or signed with another key",
    CrlFailure.DELTA_CRL: "a delta CRL only lists changes; fetch the complete CRL",
    CrlFailure.UNHANDLED_CRITICAL_EXTENSION: "the CRL carries a critical extension "
    "staplegate does not understand",
    CrlFailure.NEXT_UPDATE_MISSING: "a CRL without nextUpdate cannot be refreshed on time",
    CrlFailure.NOT_YET_VALID: "check this machine's clock and the CA's",
    CrlFailure.EXPIRED: "the CRL is past its nextUpdate; the CA has not published a new one "
    "or an old copy was served",
    CrlFailure.CERTIFICATE_NOT_FROM_ISSUER: "the issuer certificate did not sign this "
    "certificate; check the .issuer file or the chain",
    CrlFailure.DISTRIBUTION_POINT_MISMATCH: "the CRL is a partition that does not cover this "
    "certificate's distribution point",
    CrlFailure.PARTIAL_REASONS: "the CRL covers only some revocation reasons",
    CrlFailure.SCOPE_MISMATCH: "the CRL covers only another kind of certificate",
}


class CrlError(Exception):
    """The CRL was refused: `reason` says which check, `detail` what it found."""

    def __init__(self, reason: CrlFailure, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        self.hint = _HINTS[reason]
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)


class CrlStatus(enum.Enum):
    GOOD = "good"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class CrlVerdict:
    """What a verified CRL says about one certificate."""

    status: CrlStatus
    serial: int
    this_update: dt.datetime
    next_update: dt.datetime
    crl_number: int | None
    revocation_time: dt.datetime | None = None
    revocation_reason: str | None = None
    """The CRLReason's RFC 5280 name (`keyCompromise`), None when the entry gives none."""


_T = TypeVar("_T")


def _guarded(step: Callable[[], _T]) -> _T:
    """Run one step over the lazily parsed CRL; anything but CrlError is unparsable bytes."""
    try:
        return step()
    except CrlError:
        raise
    except Exception as error:  # untrusted bytes: every failure is a reason
        raise CrlError(CrlFailure.UNPARSABLE, f"{type(error).__name__}: {error}") from None


def parse_crl(data: bytes) -> x509.CertificateRevocationList:
    """DER or PEM bytes as a CRL whose outer fields all decode, else CrlError(UNPARSABLE)."""

    def parse() -> x509.CertificateRevocationList:
        stripped = data.lstrip()
        if stripped.startswith(_PEM_MARKER):
            crl = x509.load_pem_x509_crl(stripped)
        else:
            crl = x509.load_der_x509_crl(data)
        # touch every lazily decoded field once, so later steps meet decoded values
        _ = (crl.issuer.rfc4514_string(), crl.last_update_utc, crl.next_update_utc)
        _ = [(extension.oid, extension.critical, extension.value) for extension in crl.extensions]
        return crl

    return _guarded(parse)


_PublicKey = (
    rsa.RSAPublicKey
    | ec.EllipticCurvePublicKey
    | dsa.DSAPublicKey
    | ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey
)


def _extension(extensions: x509.Extensions, oid: x509.ObjectIdentifier) -> object | None:
    try:
        return extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None


@dataclass(frozen=True, slots=True)
class VerifiedCrl:
    """A CRL that passed steps 1-6 for `issuer` at one time; ask it about certificates."""

    crl: x509.CertificateRevocationList
    issuer: x509.Certificate
    this_update: dt.datetime
    next_update: dt.datetime
    crl_number: int | None
    distribution_point: x509.IssuingDistributionPoint | None

    def verdict_for(self, certificate: x509.Certificate) -> CrlVerdict:
        """Steps 7-9 for one certificate; raises CrlError when the CRL cannot judge it."""
        return _guarded(lambda: self._verdict_for(certificate))

    def _verdict_for(self, certificate: x509.Certificate) -> CrlVerdict:
        try:
            certificate.verify_directly_issued_by(self.issuer)
        except Exception as error:  # ValueError, TypeError, InvalidSignature
            raise CrlError(
                CrlFailure.CERTIFICATE_NOT_FROM_ISSUER,
                f"{certificate.issuer.rfc4514_string()} / {type(error).__name__}",
            ) from None
        certificate_points = _distribution_points(certificate)
        if any(point.crl_issuer for point in certificate_points):
            raise CrlError(CrlFailure.INDIRECT_CRL_UNSUPPORTED, "the certificate names a cRLIssuer")
        self._check_scope(certificate, certificate_points)
        serial = certificate.serial_number
        entry = self.crl.get_revoked_certificate_by_serial_number(serial)
        if entry is None:
            return CrlVerdict(
                CrlStatus.GOOD, serial, self.this_update, self.next_update, self.crl_number
            )
        reason: str | None = None
        for extension in entry.extensions:
            if extension.critical and extension.oid not in _UNDERSTOOD_ENTRY_EXTENSIONS:
                raise CrlError(
                    CrlFailure.UNHANDLED_CRITICAL_EXTENSION,
                    f"entry extension {extension.oid.dotted_string}",
                )
            if extension.oid == CRLEntryExtensionOID.CERTIFICATE_ISSUER:
                raise CrlError(
                    CrlFailure.INDIRECT_CRL_UNSUPPORTED, "entry names a certificateIssuer"
                )
            if isinstance(extension.value, x509.CRLReason):
                reason = _REASON_NAMES[extension.value.reason]
        if reason == "removeFromCRL":  # only meaningful in a delta CRL, which we refused
            return CrlVerdict(
                CrlStatus.GOOD, serial, self.this_update, self.next_update, self.crl_number
            )
        return CrlVerdict(
            CrlStatus.REVOKED,
            serial,
            self.this_update,
            self.next_update,
            self.crl_number,
            revocation_time=entry.revocation_date_utc,
            revocation_reason=reason,
        )

    def _check_scope(
        self, certificate: x509.Certificate, certificate_points: list[x509.DistributionPoint]
    ) -> None:
        """RFC 5280 §6.3.3 (b)(2): the issuing distribution point must cover the certificate."""
        point = self.distribution_point
        if point is None:
            return
        if point.only_some_reasons:
            raise CrlError(
                CrlFailure.PARTIAL_REASONS,
                ", ".join(sorted(flag.value for flag in point.only_some_reasons)),
            )
        constraints = _extension(certificate.extensions, ExtensionOID.BASIC_CONSTRAINTS)
        is_ca = isinstance(constraints, x509.BasicConstraints) and constraints.ca
        if point.only_contains_attribute_certs:
            raise CrlError(CrlFailure.SCOPE_MISMATCH, "onlyContainsAttributeCerts")
        if point.only_contains_ca_certs and not is_ca:
            raise CrlError(CrlFailure.SCOPE_MISMATCH, "onlyContainsCACerts")
        if point.only_contains_user_certs and is_ca:
            raise CrlError(CrlFailure.SCOPE_MISMATCH, "onlyContainsUserCerts")
        if point.full_name is not None:
            wanted = set(point.full_name)
            offered = {name for p in certificate_points for name in p.full_name or ()}
            if not wanted & offered:
                raise CrlError(
                    CrlFailure.DISTRIBUTION_POINT_MISMATCH,
                    "issuing distribution point " + _names(point.full_name),
                )
        elif point.relative_name is not None:
            relatives = {p.relative_name for p in certificate_points if p.relative_name}
            if point.relative_name not in relatives:
                raise CrlError(
                    CrlFailure.DISTRIBUTION_POINT_MISMATCH,
                    "issuing distribution point " + point.relative_name.rfc4514_string(),
                )


_REASON_NAMES: dict[x509.ReasonFlags, str] = {
    x509.ReasonFlags.unspecified: "unspecified",
    x509.ReasonFlags.key_compromise: "keyCompromise",
    x509.ReasonFlags.ca_compromise: "cACompromise",
    x509.ReasonFlags.affiliation_changed: "affiliationChanged",
    x509.ReasonFlags.superseded: "superseded",
    x509.ReasonFlags.cessation_of_operation: "cessationOfOperation",
    x509.ReasonFlags.certificate_hold: "certificateHold",
    x509.ReasonFlags.privilege_withdrawn: "privilegeWithdrawn",
    x509.ReasonFlags.aa_compromise: "aACompromise",
    x509.ReasonFlags.remove_from_crl: "removeFromCRL",
}


def _names(names: list[x509.GeneralName]) -> str:
    return ", ".join(str(getattr(name, "value", name)) for name in names)


def _distribution_points(certificate: x509.Certificate) -> list[x509.DistributionPoint]:
    points = _extension(certificate.extensions, ExtensionOID.CRL_DISTRIBUTION_POINTS)
    return list(points) if isinstance(points, x509.CRLDistributionPoints) else []


def crl_urls(certificate: x509.Certificate) -> list[str]:
    """The http(s) URLs of a certificate's CRL distribution points, in order (may be empty)."""
    urls = []
    for point in _distribution_points(certificate):
        for name in point.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.lower().startswith(
                ("http://", "https://")
            ):
                urls.append(name.value)
    return urls


def verify_crl(
    data: bytes,
    issuer: x509.Certificate,
    *,
    now: dt.datetime,
    skew: dt.timedelta = DEFAULT_SKEW,
) -> VerifiedCrl:
    """Steps 1-6: `data` as a complete, direct CRL of `issuer`, current at `now`."""
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    crl = parse_crl(data)
    return _guarded(lambda: _verify_parsed(crl, issuer, now, skew))


def _verify_parsed(
    crl: x509.CertificateRevocationList,
    issuer: x509.Certificate,
    now: dt.datetime,
    skew: dt.timedelta,
) -> VerifiedCrl:
    usage = _extension(issuer.extensions, ExtensionOID.KEY_USAGE)
    if isinstance(usage, x509.KeyUsage) and not usage.crl_sign:
        raise CrlError(CrlFailure.ISSUER_NOT_CRL_SIGNER, issuer.subject.rfc4514_string())
    point = _extension(crl.extensions, ExtensionOID.ISSUING_DISTRIBUTION_POINT)
    distribution_point = point if isinstance(point, x509.IssuingDistributionPoint) else None
    if distribution_point is not None and distribution_point.indirect_crl:
        raise CrlError(CrlFailure.INDIRECT_CRL_UNSUPPORTED, "the CRL is marked indirect")
    if crl.issuer != issuer.subject:
        raise CrlError(
            CrlFailure.WRONG_ISSUER,
            f"CRL issuer {crl.issuer.rfc4514_string()}, expected {issuer.subject.rfc4514_string()}",
        )
    _check_signer(crl, issuer)
    number: int | None = None
    for extension in crl.extensions:
        if extension.oid == ExtensionOID.DELTA_CRL_INDICATOR:
            raise CrlError(CrlFailure.DELTA_CRL, "deltaCRLIndicator present")
        if extension.critical and extension.oid not in _UNDERSTOOD_CRL_EXTENSIONS:
            raise CrlError(CrlFailure.UNHANDLED_CRITICAL_EXTENSION, extension.oid.dotted_string)
        if isinstance(extension.value, x509.CRLNumber):
            number = extension.value.crl_number
    this_update = crl.last_update_utc
    next_update = crl.next_update_utc
    if next_update is None:
        raise CrlError(CrlFailure.NEXT_UPDATE_MISSING)
    if now < this_update - skew:
        raise CrlError(CrlFailure.NOT_YET_VALID, f"thisUpdate {this_update.isoformat()}")
    if now >= next_update + skew:
        raise CrlError(CrlFailure.EXPIRED, f"nextUpdate {next_update.isoformat()}")
    return VerifiedCrl(
        crl=crl,
        issuer=issuer,
        this_update=this_update,
        next_update=next_update,
        crl_number=number,
        distribution_point=distribution_point,
    )


def _check_signer(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> None:
    """Step 4: a mismatching key identifier says "other key" before the signature is tried."""
    authority = _extension(crl.extensions, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    subject_key = _extension(issuer.extensions, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    if (
        isinstance(authority, x509.AuthorityKeyIdentifier)
        and authority.key_identifier is not None
        and isinstance(subject_key, x509.SubjectKeyIdentifier)
        and authority.key_identifier != subject_key.digest
    ):
        raise CrlError(
            CrlFailure.SIGNER_KEY_MISMATCH,
            f"CRL key id {authority.key_identifier.hex()}, issuer's {subject_key.digest.hex()}",
        )
    public_key = issuer.public_key()
    if not isinstance(public_key, _PublicKey):
        raise CrlError(CrlFailure.SIGNATURE_INVALID, "the issuer's key type cannot sign CRLs")
    if not crl.is_signature_valid(public_key):
        raise CrlError(CrlFailure.SIGNATURE_INVALID)


def check_certificate(
    data: bytes,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    *,
    now: dt.datetime,
    skew: dt.timedelta = DEFAULT_SKEW,
) -> CrlVerdict:
    """Every step for one certificate: what the CRL `data` says about it at `now`."""
    return verify_crl(data, issuer, now=now, skew=skew).verdict_for(certificate)
