"""Decide whether DER bytes are an OCSP response we may staple for one certificate.

Theory of operation. Every staple candidate, whatever its source (sidecar `.ocsp`, state
directory, runtime API, fetch), goes through `verify_response` before it can reach a staple
table. The checks run in HAProxy 3.2's order for a fetched response (first
the fetch checks, then those every loaded response gets):

1. parse the DER                         -> UNPARSABLE
2. responseStatus is successful          -> NOT_SUCCESSFUL (which status in `.detail`)
3. the body is a BasicOCSPResponse       -> NOT_BASIC
4. signature and responder authorization -> SIGNER_NOT_AUTHORIZED / SIGNATURE_INVALID
5. exactly one SingleResponse            -> MULTIPLE_RESPONSES / NO_SINGLE_RESPONSE
6. certStatus good or revoked            -> STATUS_UNKNOWN
7. nextUpdate present                    -> NEXT_UPDATE_MISSING
8. time window with `skew` tolerance     -> NOT_VALID_NOW
9. CertId names our certificate          -> CERT_ID_MISMATCH
10. nextUpdate - 300 s is not past       -> EXPIRES_TOO_SOON (HAProxy 3.2's rule)

HAProxy checks the signature (step 4) only for fetched responses; we check it for every
source, because a staple read from disk or pushed over the runtime API is served to clients
just the same. The first failure raises `VerificationError` with one specific reason; its
`.message` is HAProxy's text for that check, so logs and warnings read like HAProxy's.

cryptography parses lazily: a ResponderID name or an embedded certificate's subject is only
decoded when first read, and an attribute of the wrong ASN.1 type raises ValueError or
TypeError there, in the middle of the checks. The bytes are untrusted (anyone on the path to
the responder can send them), so `verify_response` turns every exception other than a misuse
of its own parameters into `VerificationError`: a malformed ResponderID name is UNPARSABLE,
an included certificate that does not parse is simply not the responder, and anything else
unexpected is UNPARSABLE with the exception in `.detail`. Only VerificationError escapes.

Cost. At start-up every stored staple is verified (50,000 in the scale benchmark), so the
per-staple work that depends only on certificates, not on the response, is cached by the
certificates' DER (cryptography's `Certificate` hashes and compares its DER): whether a
responder certificate was directly issued by the issuer (one signature check per responder
certificate, not per staple), its OCSPSigning usage, subject text and public key, and a
certificate's key hash. What depends on the response or the time (its own signature, the
responder certificate's validity at `now`, CertId, times) is checked every time. The caches
are bounded (`CERT_CACHE_SIZE` entries each) and hold verdicts on exact bytes, so a forged
certificate can never share an entry with a genuine one.

A revoked answer verifies: it is the truth, and stapling it is what clients expect. An
`unknown` answer does not: it tells a client nothing and HAProxy rejects it too.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from dataclasses import dataclass

from cryptography import exceptions, x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from staplegate.ocsp.certid import CertId

#: HAProxy stops serving a staple this long before its nextUpdate (its `expire`); a response
#: closer than this to its nextUpdate is refused. The one place this margin is written.
WITHDRAWAL_MARGIN_S = 300
WITHDRAWAL_MARGIN = dt.timedelta(seconds=WITHDRAWAL_MARGIN_S)
#: Default tolerance between our clock and the responder's for thisUpdate/nextUpdate.
DEFAULT_SKEW = dt.timedelta(seconds=300)

#: CertId hash algorithms we accept in a response (HAProxy asks in SHA-1; some CAs answer in
#: SHA-256, which RFC 6960 allows).
ACCEPTED_CERTID_HASHES = ("sha1", "sha256")

#: Entries in each per-certificate cache (see "Cost" above): issuers and responder
#: certificates are few; a bound keeps hostile input from growing them.
CERT_CACHE_SIZE = 256


class CertStatus(enum.Enum):
    """The certStatus of a staple we accept; `unknown` never verifies."""

    GOOD = "good"
    REVOKED = "revoked"


class FailureReason(enum.Enum):
    """One member per check of `verify_response`, in the order they run."""

    UNPARSABLE = "unparsable"
    NOT_SUCCESSFUL = "not-successful"
    NOT_BASIC = "not-basic"
    SIGNER_NOT_AUTHORIZED = "signer-not-authorized"
    SIGNATURE_INVALID = "signature-invalid"
    MULTIPLE_RESPONSES = "multiple-responses"
    NO_SINGLE_RESPONSE = "no-single-response"
    STATUS_UNKNOWN = "status-unknown"
    NEXT_UPDATE_MISSING = "next-update-missing"
    NOT_VALID_NOW = "not-valid-now"
    CERT_ID_MISMATCH = "cert-id-mismatch"
    EXPIRES_TOO_SOON = "expires-too-soon"

    @property
    def is_check_failure(self) -> bool:
        """True for HAProxy's status 4 ("check failure"), False for status 5 ("insertion")."""
        return self in _CHECK_FAILURES


_CHECK_FAILURES = frozenset(
    {
        FailureReason.UNPARSABLE,
        FailureReason.NOT_SUCCESSFUL,
        FailureReason.NOT_BASIC,
        FailureReason.SIGNER_NOT_AUTHORIZED,
        FailureReason.SIGNATURE_INVALID,
    }
)

# HAProxy 3.2's texts: the load-time/insertion form (§3.5) is `.message`.
_MESSAGES: dict[FailureReason, str] = {
    FailureReason.UNPARSABLE: "Unable to parse OCSP response",
    FailureReason.NOT_SUCCESSFUL: "OCSP response status not successful",
    FailureReason.NOT_BASIC: "Failed to get basic response from OCSP Response",
    FailureReason.SIGNER_NOT_AUTHORIZED: "OCSP response signer not authorized",
    FailureReason.SIGNATURE_INVALID: "OCSP response signature invalid",
    FailureReason.MULTIPLE_RESPONSES: (
        "OCSP response ignored because contains multiple single responses"
    ),
    FailureReason.NO_SINGLE_RESPONSE: "Failed to get OCSP single response",
    FailureReason.STATUS_UNKNOWN: "OCSP single response: certificate status is unknown",
    FailureReason.NEXT_UPDATE_MISSING: "OCSP single response: missing nextupdate",
    FailureReason.NOT_VALID_NOW: "OCSP single response: no longer valid.",
    FailureReason.CERT_ID_MISMATCH: (
        "OCSP single response: Certificate ID does not match certificate and issuer"
    ),
    FailureReason.EXPIRES_TOO_SOON: (
        "OCSP single response: no longer valid. "
        f"Must be valid during at least {WITHDRAWAL_MARGIN_S}s."
    ),
}

_HINTS: dict[FailureReason, str] = {
    FailureReason.UNPARSABLE: "the bytes are not a DER OCSPResponse; fetch it again",
    FailureReason.NOT_SUCCESSFUL: "the responder refused to answer; retry later or ask the CA",
    FailureReason.NOT_BASIC: "only id-pkix-ocsp-basic responses can be stapled",
    FailureReason.SIGNER_NOT_AUTHORIZED: (
        "the response must be signed by the issuer or by a responder certificate it issued "
        "with the OCSPSigning EKU; check the issuer (.issuer file or chain) and the responder"
    ),
    FailureReason.SIGNATURE_INVALID: "the response was altered or signed with another key",
    FailureReason.MULTIPLE_RESPONSES: "ask the responder for this certificate alone",
    FailureReason.NO_SINGLE_RESPONSE: "the responder answered about no certificate",
    FailureReason.STATUS_UNKNOWN: "the responder does not know this certificate; check the "
    "OCSP URI and the issuer",
    FailureReason.NEXT_UPDATE_MISSING: "responses without nextUpdate cannot be stapled; "
    "configure the responder to set it",
    FailureReason.NOT_VALID_NOW: "check this machine's clock and the responder's",
    FailureReason.CERT_ID_MISMATCH: "the response is for another certificate or issuer",
    FailureReason.EXPIRES_TOO_SOON: "the responder must issue responses valid for more than "
    f"{WITHDRAWAL_MARGIN_S} s (plus the refresh margin)",
}

# OpenSSL's lowercase names, as HAProxy prints them in "OCSP response not successful (3: x)".
_STATUS_NAMES: dict[ocsp.OCSPResponseStatus, str] = {
    ocsp.OCSPResponseStatus.MALFORMED_REQUEST: "malformedrequest",
    ocsp.OCSPResponseStatus.INTERNAL_ERROR: "internalerror",
    ocsp.OCSPResponseStatus.TRY_LATER: "trylater",
    ocsp.OCSPResponseStatus.SIG_REQUIRED: "sigrequired",
    ocsp.OCSPResponseStatus.UNAUTHORIZED: "unauthorized",
}


class VerificationError(Exception):
    """A staple candidate failed one check; `.reason` says which, `.detail` says why."""

    def __init__(
        self,
        reason: FailureReason,
        detail: str | None = None,
        *,
        status: ocsp.OCSPResponseStatus | None = None,
    ) -> None:
        self.reason = reason
        self.message = _MESSAGES[reason]
        self.detail = detail
        #: for NOT_SUCCESSFUL: the responseStatus the responder sent
        self.status = status
        super().__init__(self.message if detail is None else f"{self.message} ({detail})")

    @property
    def hint(self) -> str:
        """What an operator can do about it."""
        return _HINTS[self.reason]

    @property
    def haproxy_status(self) -> int:
        """HAProxy's update status code for a fetched response failing this way (4 or 5)."""
        return 4 if self.reason.is_check_failure else 5

    @property
    def haproxy_detail(self) -> str:
        """The ` (detail)` text HAProxy 3.2 logs for a fetched response failing this way.

        Check failures (status 4) carry OpenSSL function names in HAProxy; insertion failures
        (status 5) carry the §3.5 message. We keep those exact strings for the log line.
        """
        if self.reason is FailureReason.UNPARSABLE:
            return "d2i_OCSP_RESPONSE() failed"
        if self.reason is FailureReason.NOT_SUCCESSFUL:
            if self.status is None:
                return "OCSP response not successful"
            name = _STATUS_NAMES.get(self.status, self.status.name.lower())
            return f"OCSP response not successful ({self.status.value}: {name})"
        if self.reason is FailureReason.NOT_BASIC:
            return "OCSP_response_get1_basic() failed"
        if self.reason in (FailureReason.SIGNER_NOT_AUTHORIZED, FailureReason.SIGNATURE_INVALID):
            return "OCSP_basic_verify() failed"
        if self.reason is FailureReason.MULTIPLE_RESPONSES and self.detail is not None:
            return f"{self.message} ({self.detail})"
        return self.message


@dataclass(frozen=True)
class VerifiedStaple:
    """An OCSP response that passed every check for one certificate at one moment.

    `cert_id` is the certificate's SHA-1 CertId (the staple table key, as HAProxy's entry
    key), even when the responder answered with a SHA-256 CertId.
    """

    der: bytes
    cert_id: CertId
    status: CertStatus
    this_update: dt.datetime
    next_update: dt.datetime
    produced_at: dt.datetime
    revocation_time: dt.datetime | None
    revocation_reason: str | None
    responder: str
    #: the delegated responder certificate's notBefore and notAfter (None: the issuer signed)
    signer_valid: tuple[dt.datetime, dt.datetime] | None = None

    def expire(self) -> dt.datetime:
        """When we stop serving it: nextUpdate - WITHDRAWAL_MARGIN, HAProxy's `expire`."""
        return self.next_update - WITHDRAWAL_MARGIN

    def servable(self, now: dt.datetime) -> bool:
        """True while HAProxy's stapler would send it (`expire >= now`)."""
        return self.expire() >= now


def verify_response(
    der: bytes,
    *,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    now: dt.datetime,
    skew: dt.timedelta = DEFAULT_SKEW,
    check_signature: bool = True,
) -> VerifiedStaple:
    """Return the staple if `der` answers for `certificate` at `now`, else raise.

    Raises VerificationError with the first failing check's reason (see the module docstring).
    `check_signature=False` exists only for diagnostics (showing what a response says); never
    install a staple verified without it.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    try:
        return _verify(
            der,
            certificate=certificate,
            issuer=issuer,
            now=now,
            skew=skew,
            check_signature=check_signature,
        )
    except VerificationError:
        raise
    except Exception as exc:
        # cryptography parses names, certificates and extensions lazily, on first access,
        # and raises ValueError, TypeError or UnsupportedAlgorithm from there: anywhere in
        # the checks. These bytes are untrusted, so no such failure may escape as a crash.
        raise VerificationError(
            FailureReason.UNPARSABLE, f"malformed response: {_exception_text(exc)}"
        ) from exc


def _verify(
    der: bytes,
    *,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    now: dt.datetime,
    skew: dt.timedelta,
    check_signature: bool,
) -> VerifiedStaple:
    response = _parse(der)
    signer_valid = None
    if check_signature:
        responder, signer_valid = _check_signature(response, issuer=issuer, now=now, skew=skew)
    else:
        responder = "unchecked"
    single = _single(response)
    status = _status(single)
    next_update = single.next_update_utc
    if next_update is None:
        raise VerificationError(FailureReason.NEXT_UPDATE_MISSING)
    this_update = single.this_update_utc
    _check_window(this_update, next_update, now=now, skew=skew)
    cert_id = _check_cert_id(single, certificate=certificate, issuer=issuer)
    expire = next_update - WITHDRAWAL_MARGIN
    if expire < now:
        raise VerificationError(
            FailureReason.EXPIRES_TOO_SOON,
            f"nextUpdate {_iso(next_update)} is less than {WITHDRAWAL_MARGIN_S} s after now "
            f"{_iso(now)}",
        )
    revocation_time = single.revocation_time_utc if status is CertStatus.REVOKED else None
    reason = single.revocation_reason if status is CertStatus.REVOKED else None
    return VerifiedStaple(
        der=der,
        cert_id=cert_id,
        status=status,
        this_update=this_update,
        next_update=next_update,
        produced_at=response.produced_at_utc,
        revocation_time=revocation_time,
        revocation_reason=reason.value if reason is not None else None,
        responder=responder,
        signer_valid=signer_valid,
    )


def still_valid_at(staple: VerifiedStaple, *, now: dt.datetime, skew: dt.timedelta) -> bool:
    """True when `staple`, verified at another moment, passes at `now` every check that
    depends on the time: the delegated responder certificate's validity, the thisUpdate and
    nextUpdate window, the withdrawal margin. Every other check gives the same verdict at
    any time, so `verify_response(staple.der, ...)` at `now` would accept it too.

    The updater checks stored staples ahead of time, in a forked process, while the master
    builds its TLS contexts (updater/precheck.py); this is what is left to do at start."""
    if staple.signer_valid is not None:
        not_before, not_after = staple.signer_valid
        if not (not_before - skew <= now <= not_after + skew):
            return False
    if staple.this_update > now + skew or staple.next_update < now - skew:
        return False
    return staple.expire() >= now


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(der: bytes) -> ocsp.OCSPResponse:
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        text = str(exc)
        # cryptography parses only id-pkix-ocsp-basic bodies; another responseType fails
        # while decoding ResponseBytes.response, which is HAProxy's "get1_basic" step.
        if "ResponseBytes::response" in text and "UnknownDefinedBy" in text:
            raise VerificationError(FailureReason.NOT_BASIC, "responseType is not basic") from exc
        raise VerificationError(FailureReason.UNPARSABLE, _short(text)) from exc
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        status = response.response_status
        raise VerificationError(
            FailureReason.NOT_SUCCESSFUL,
            f"{status.value}: {_STATUS_NAMES.get(status, status.name.lower())}",
            status=status,
        )
    return response


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _exception_text(exc: Exception) -> str:
    return _short(f"{type(exc).__name__}: {exc}")


def _responder_name(response: ocsp.OCSPResponse) -> x509.Name | None:
    """The ResponderID byName, or None for byKey; a malformed name is UNPARSABLE."""
    try:
        return response.responder_name
    except Exception as exc:  # lazy parsing of untrusted bytes: see verify_response
        raise VerificationError(
            FailureReason.UNPARSABLE, f"malformed ResponderID name: {_exception_text(exc)}"
        ) from exc


def _subject(certificate: x509.Certificate) -> x509.Name | None:
    """The subject of a certificate from the response, or None when it does not parse."""
    try:
        return certificate.subject
    except Exception:  # lazy parsing of untrusted bytes: see verify_response
        return None


def _subject_text(certificate: x509.Certificate) -> str:
    subject = _subject(certificate)
    if subject is None:
        return "<malformed subject>"
    try:
        return subject.rfc4514_string()
    except Exception:  # an attribute value that does not print
        return "<malformed subject>"


@functools.lru_cache(maxsize=CERT_CACHE_SIZE)
def _key_hash(certificate: x509.Certificate) -> bytes:
    """SHA-1 of the subjectPublicKey BIT STRING: what ResponderID byKey carries."""
    return x509.SubjectKeyIdentifier.from_public_key(_public_key(certificate)).digest


@functools.lru_cache(maxsize=CERT_CACHE_SIZE)
def _public_key(certificate: x509.Certificate) -> CertificatePublicKeyTypes:
    return certificate.public_key()


@dataclass(frozen=True)
class _Delegate:
    """What a responder certificate is, whatever the response carrying it: the cached part
    of authorizing it (its validity at `now` is checked per response)."""

    subject: str
    issued_by_issuer: bool
    ocsp_signing: bool


@functools.lru_cache(maxsize=CERT_CACHE_SIZE)
def _delegate(delegate: x509.Certificate, issuer: x509.Certificate) -> _Delegate:
    try:
        delegate.verify_directly_issued_by(issuer)
    except Exception:  # InvalidSignature, or a certificate that does not parse
        return _Delegate(_subject_text(delegate), issued_by_issuer=False, ocsp_signing=False)
    try:
        eku = delegate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    ocsp_signing = eku is not None and ExtendedKeyUsageOID.OCSP_SIGNING in eku
    return _Delegate(_subject_text(delegate), issued_by_issuer=True, ocsp_signing=ocsp_signing)


def _names_responder(response: ocsp.OCSPResponse, candidate: x509.Certificate) -> bool:
    """True when the ResponderID names `candidate`; a certificate that does not parse is
    not the responder (an authorized one was issued by the issuer and parses)."""
    name = _responder_name(response)
    try:
        if name is not None:
            return _subject(candidate) == name
        return response.responder_key_hash == _key_hash(candidate)
    except Exception:  # e.g. a public key cryptography cannot load
        return False


def _responder_id_text(response: ocsp.OCSPResponse) -> str:
    name = _responder_name(response)
    if name is not None:
        try:
            return f"responder name {name.rfc4514_string()!r}"
        except Exception:  # an attribute value that does not print
            return "responder name <not printable>"
    key_hash = response.responder_key_hash or b""
    return f"responder key hash {key_hash.hex()}"


def _check_signature(
    response: ocsp.OCSPResponse,
    *,
    issuer: x509.Certificate,
    now: dt.datetime,
    skew: dt.timedelta,
) -> tuple[str, tuple[dt.datetime, dt.datetime] | None]:
    """Find the responder certificate, authorize it, check the signature; return who signed
    and, for a delegated responder, its validity."""
    if _names_responder(response, issuer):
        _check_signed_by(response, issuer)
        return "issuer", None
    candidates = [c for c in response.certificates if _names_responder(response, c)]
    if not candidates:
        raise VerificationError(
            FailureReason.SIGNER_NOT_AUTHORIZED,
            f"{_responder_id_text(response)} is neither the issuer "
            f"{issuer.subject.rfc4514_string()!r} nor a certificate included in the response",
        )
    delegate = candidates[0]
    profile = _delegate(delegate, issuer)
    subject = profile.subject
    if not profile.issued_by_issuer:
        raise VerificationError(
            FailureReason.SIGNER_NOT_AUTHORIZED,
            f"responder certificate {subject!r} was not issued by "
            f"{issuer.subject.rfc4514_string()!r}",
        )
    if not profile.ocsp_signing:
        raise VerificationError(
            FailureReason.SIGNER_NOT_AUTHORIZED,
            f"responder certificate {subject!r} lacks the OCSPSigning extended key usage",
        )
    if not (delegate.not_valid_before_utc - skew <= now <= delegate.not_valid_after_utc + skew):
        raise VerificationError(
            FailureReason.SIGNER_NOT_AUTHORIZED,
            f"responder certificate {subject!r} is valid from "
            f"{_iso(delegate.not_valid_before_utc)} to {_iso(delegate.not_valid_after_utc)}, "
            f"not at {_iso(now)}",
        )
    _check_signed_by(response, delegate)
    return subject, (delegate.not_valid_before_utc, delegate.not_valid_after_utc)


def _check_signed_by(response: ocsp.OCSPResponse, signer: x509.Certificate) -> None:
    key = _public_key(signer)
    try:
        algorithm = response.signature_hash_algorithm
    except exceptions.UnsupportedAlgorithm as exc:
        raise VerificationError(
            FailureReason.SIGNATURE_INVALID,
            f"unsupported signature algorithm {response.signature_algorithm_oid.dotted_string}",
        ) from exc
    signature, data = response.signature, response.tbs_response_bytes
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, dsa.DSAPublicKey) and algorithm is not None:
            key.verify(signature, data, algorithm)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            if algorithm is not None:
                raise exceptions.InvalidSignature
            key.verify(signature, data)
        else:
            raise exceptions.InvalidSignature
    except exceptions.InvalidSignature as exc:
        raise VerificationError(
            FailureReason.SIGNATURE_INVALID,
            f"signature ({response.signature_algorithm_oid.dotted_string}) does not verify "
            f"with the key of {_subject_text(signer)!r}",
        ) from exc


def _single(response: ocsp.OCSPResponse) -> ocsp.OCSPSingleResponse:
    singles = list(response.responses)
    if len(singles) > 1:
        raise VerificationError(FailureReason.MULTIPLE_RESPONSES, str(len(singles)))
    if not singles:
        raise VerificationError(FailureReason.NO_SINGLE_RESPONSE)
    return singles[0]


def _status(single: ocsp.OCSPSingleResponse) -> CertStatus:
    if single.certificate_status is ocsp.OCSPCertStatus.GOOD:
        return CertStatus.GOOD
    if single.certificate_status is ocsp.OCSPCertStatus.REVOKED:
        return CertStatus.REVOKED
    raise VerificationError(FailureReason.STATUS_UNKNOWN)


def _check_window(
    this_update: dt.datetime, next_update: dt.datetime, *, now: dt.datetime, skew: dt.timedelta
) -> None:
    seconds = int(skew.total_seconds())
    if this_update > now + skew:
        detail = f"thisUpdate {_iso(this_update)} is more than {seconds} s after {_iso(now)}"
    elif next_update < now - skew:
        detail = f"nextUpdate {_iso(next_update)} is more than {seconds} s before {_iso(now)}"
    elif next_update < this_update:
        detail = f"nextUpdate {_iso(next_update)} is before thisUpdate {_iso(this_update)}"
    else:
        return
    raise VerificationError(FailureReason.NOT_VALID_NOW, detail)


def _check_cert_id(
    single: ocsp.OCSPSingleResponse,
    *,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
) -> CertId:
    """The certificate's SHA-1 CertId (the table key) when the response names it, else raise."""
    try:
        answered = CertId.from_single_response(single)
    except exceptions.UnsupportedAlgorithm as exc:
        raise VerificationError(
            FailureReason.CERT_ID_MISMATCH, "the CertId uses an unsupported hash algorithm"
        ) from exc
    if answered.hash_algorithm not in ACCEPTED_CERTID_HASHES:
        raise VerificationError(
            FailureReason.CERT_ID_MISMATCH,
            f"the CertId uses {answered.hash_algorithm}; accepted: "
            + ", ".join(ACCEPTED_CERTID_HASHES),
        )
    expected = CertId.for_certificate(certificate, issuer, answered.hash_algorithm)
    if answered != expected:
        raise VerificationError(
            FailureReason.CERT_ID_MISMATCH,
            f"response names serial {answered.serial_number:X}, "
            f"certificate has serial {certificate.serial_number:X}"
            if answered.serial_number != expected.serial_number
            else "response names another issuer",
        )
    if expected.hash_algorithm == "sha1":
        return expected
    return CertId.for_certificate(certificate, issuer)
