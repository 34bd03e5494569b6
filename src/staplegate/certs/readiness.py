"""Decide, for one loaded certificate, what OCSP will do with it (HAProxy's rules).

The rules, and where we differ, are in docs/reference/certificates.md.

Pure functions for `staplegate -c -V` and the engine: `assess_ocsp` applies HAProxy 3.2's
load-time rules (is an OCSP entry created, is it auto-updated, or is the configuration fatal),
and `check_ocsp_sidecar` verifies a `.ocsp` file's bytes with the OCSP verifier, turning a
failure into HAProxy's `Loading: <reason>. Content will be ignored.` warning.

Differences from HAProxy 3.2, on purpose:

- `ocsp-update on` for a certificate without an OCSP URI is not silent: one INFO line says
  it is not updated (HAProxy 3.x says nothing; 2.8 refused to start).
- a short-lived certificate (valid 10 days or less) with neither an OCSP URI nor a CRL is
  reported as such in one INFO line, whatever `ocsp-update` says: nothing is wrong with it.
- a `.ocsp` file on a certificate without an OCSP URI creates an entry (the staple is served)
  but the entry is never auto-updated, instead of failing on every update attempt.
- a `.ocsp` file's signature is verified like any other staple (HAProxy skips that).
- HAProxy's stray quote after `)` and its doubled period are not reproduced.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from cryptography import x509

from staplegate.certs.model import LoadedCertificate
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.verify import VerificationError, VerifiedStaple, verify_response

NO_URI_INFO = "certificates without an OCSP URI are not updated"
#: A certificate valid this long or less is short-lived: the CA/Browser Forum requires
#: neither OCSP nor a CRL for it (Baseline Requirements 7.1.2.11.2, 4.9.7).
SHORT_LIVED = dt.timedelta(days=10)


def is_short_lived(cert: LoadedCertificate) -> bool:
    return cert.not_after - cert.not_before <= SHORT_LIVED


def has_crl_distribution_point(cert: LoadedCertificate) -> bool:
    try:
        cert.leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    except (x509.ExtensionNotFound, ValueError):
        return False
    return True


class OcspDisposition(enum.Enum):
    """What happens to a certificate's OCSP at load time."""

    #: no `.ocsp` data and auto-update off (or no OCSP URI): no entry, no stapling callback
    NOT_USED = "not-used"
    #: an entry keyed by the CertId exists; `auto_update` says whether it is refreshed
    ENTRY = "entry"
    #: the configuration cannot be loaded (`fatal` holds the message)
    FATAL = "fatal"


@dataclass(frozen=True)
class OcspReadiness:
    """The load-time OCSP decision for one certificate in one context.

    `info` lines are for `-c -V` and the startup log; `warnings` are shown by `-c`; `fatal`
    is set exactly when `disposition` is FATAL.
    """

    disposition: OcspDisposition
    auto_update: bool
    cert_id: CertId | None
    ocsp_uri: str | None
    fatal: str | None = None
    info: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.disposition is not OcspDisposition.FATAL


def assess_ocsp(
    cert: LoadedCertificate, *, ocsp_update: bool, responder: str | None = None
) -> OcspReadiness:
    """Apply HAProxy 3.2's load-time OCSP rules to `cert` with its effective `ocsp-update`.

    `responder` (staplegate's `ocsp-responder` / `ocsp-update.responder-url`) stands in for
    the AIA's URI: a certificate without one is updated from it too.
    """
    has_data = cert.ocsp is not None
    uri = responder or cert.ocsp_uri
    info: list[str] = []
    warnings: list[str] = []

    if cert.ocsp is not None and cert.cert_id is None:
        return _fatal(
            cert,
            f"'{cert.ocsp.path}' is present and activates OCSP but it is impossible to "
            "compute the OCSP certificate ID (maybe the issuer could not be found).",
        )
    if not has_data and ocsp_update and uri is not None and cert.cert_id is None:
        return _fatal(
            cert,
            f"'{cert.name}' has an OCSP auto-update set to 'on' but an error occurred "
            "(maybe the OCSP URI or the issuer could not be found).",
        )

    if uri is None and is_short_lived(cert) and not has_crl_distribution_point(cert):
        days = (cert.not_after - cert.not_before).total_seconds() / 86400
        info.append(
            f"'{cert.name}' is short-lived (valid {days:.1f} days) with no OCSP URI and no "
            "CRL: there is nothing to staple or watch, as the CA/Browser Forum allows; "
            "replace it before it expires."
        )
    elif ocsp_update and uri is None:
        info.append(f"'{cert.name}' has no OCSP URI: {NO_URI_INFO}.")
    creates_entry = has_data or (ocsp_update and uri is not None)
    auto_update = creates_entry and ocsp_update and uri is not None
    if cert.must_staple and not creates_entry:
        warnings.append(
            f"'{cert.name}' is a must-staple certificate but nothing will be stapled "
            "(no .ocsp file and no OCSP auto-update): clients will reject it; set "
            "'ocsp-update on' or provide a .ocsp file."
        )
    return OcspReadiness(
        disposition=OcspDisposition.ENTRY if creates_entry else OcspDisposition.NOT_USED,
        auto_update=auto_update,
        cert_id=cert.cert_id if creates_entry else None,
        ocsp_uri=uri,
        info=tuple(info),
        warnings=tuple(warnings),
    )


def _fatal(cert: LoadedCertificate, message: str) -> OcspReadiness:
    """HAProxy refuses the configuration: no issuer, so no CertId for an entry it must create."""
    return OcspReadiness(
        disposition=OcspDisposition.FATAL,
        auto_update=False,
        cert_id=None,
        ocsp_uri=cert.ocsp_uri,
        fatal=message,
        info=(_issuer_help(cert),),
    )


def _issuer_help(cert: LoadedCertificate) -> str:
    return (
        f"no issuer found for '{cert.name}': put the issuing CA certificate after the leaf in "
        "the PEM file, in a '.issuer' file next to it, or name it with the 'issuer' keyword."
    )


class SidecarOutcome(enum.Enum):
    """What became of a certificate's `.ocsp` bytes at load time."""

    ABSENT = "absent"
    LOADED = "loaded"
    IGNORED = "ignored"
    NO_ISSUER = "no-issuer"


@dataclass(frozen=True)
class SidecarCheck:
    """The load-time check of a `.ocsp` file (a bad one is ignored with HAProxy's warning).

    `warning` is HAProxy's text for IGNORED; `error` carries the reason enum, its detail and
    a hint. NO_ISSUER is the fatal case `assess_ocsp` reports.
    """

    outcome: SidecarOutcome
    staple: VerifiedStaple | None = None
    warning: str | None = None
    error: VerificationError | None = None


def loading_warning(reason: str) -> str:
    """HAProxy's `Loading: <reason>. Content will be ignored.` (without its doubled period)."""
    reason = reason.removesuffix(".")
    return f"Loading: {reason}. Content will be ignored."


def check_ocsp_sidecar(cert: LoadedCertificate, now: dt.datetime) -> SidecarCheck:
    """Verify the certificate's `.ocsp` bytes (signature included) as a staple at `now`."""
    if cert.ocsp is None:
        return SidecarCheck(SidecarOutcome.ABSENT)
    if cert.issuer is None:
        return SidecarCheck(SidecarOutcome.NO_ISSUER)
    try:
        staple = verify_response(cert.ocsp.der, certificate=cert.leaf, issuer=cert.issuer, now=now)
    except VerificationError as exc:
        return SidecarCheck(SidecarOutcome.IGNORED, warning=loading_warning(exc.message), error=exc)
    return SidecarCheck(SidecarOutcome.LOADED, staple=staple)
