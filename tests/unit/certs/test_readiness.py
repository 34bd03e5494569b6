"""assess_ocsp (spec §2.6, 3.2 rules) and check_ocsp_sidecar (spec §3.5) on real files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from staplegate.certs import (
    CertificateSource,
    ExtraFiles,
    LoadedCertificate,
    OcspDisposition,
    SidecarOutcome,
    assess_ocsp,
    check_ocsp_sidecar,
    load_certificate,
)
from staplegate.certs.readiness import NO_URI_INFO, loading_warning
from staplegate.ocsp.verify import FailureReason

from .certs_pki import NOW, OCSP_URI, Issued, Pki, bundle, issue, write


def _load(
    pki: Pki,
    tmp_path: Path,
    leaf: Issued,
    *,
    ocsp: bytes | None = None,
    with_issuer: bool = True,
) -> LoadedCertificate:
    parts = [leaf.cert_pem(), leaf.key_pem()]
    if with_issuer:
        parts.append(pki.intermediate.cert_pem())
    path = write(tmp_path / "site.pem", bundle(*parts))
    if ocsp is not None:
        write(tmp_path / "site.pem.ocsp", ocsp)
    return load_certificate(CertificateSource.from_path(path), extra=ExtraFiles(), now=NOW)


# -- assess_ocsp --------------------------------------------------------------------------


def test_update_off_without_ocsp_file_uses_nothing(pki: Pki, tmp_path: Path) -> None:
    cert = _load(pki, tmp_path, pki.ecdsa_leaf)
    readiness = assess_ocsp(cert, ocsp_update=False)
    assert readiness.disposition is OcspDisposition.NOT_USED
    assert readiness.ok
    assert not readiness.auto_update
    assert readiness.cert_id is None
    assert (readiness.fatal, readiness.info, readiness.warnings) == (None, (), ())


def test_update_off_without_issuer_is_not_fatal(pki: Pki, tmp_path: Path) -> None:
    cert = _load(pki, tmp_path, pki.ecdsa_leaf, with_issuer=False)
    readiness = assess_ocsp(cert, ocsp_update=False)
    assert readiness.disposition is OcspDisposition.NOT_USED
    assert readiness.fatal is None


def test_update_on_with_uri_and_issuer_is_auto_updated(pki: Pki, tmp_path: Path) -> None:
    cert = _load(pki, tmp_path, pki.ecdsa_leaf)
    readiness = assess_ocsp(cert, ocsp_update=True)
    assert readiness.disposition is OcspDisposition.ENTRY
    assert readiness.auto_update
    assert readiness.cert_id == cert.cert_id
    assert readiness.ocsp_uri == OCSP_URI
    assert (readiness.info, readiness.warnings) == ((), ())


def test_update_on_without_uri_is_valid_with_one_info_line(pki: Pki, tmp_path: Path) -> None:
    cert = _load(pki, tmp_path, pki.no_uri_leaf)
    readiness = assess_ocsp(cert, ocsp_update=True)
    assert readiness.ok
    assert readiness.disposition is OcspDisposition.NOT_USED
    assert not readiness.auto_update
    assert readiness.info == (f"'{cert.name}' has no OCSP URI: {NO_URI_INFO}.",)
    assert NO_URI_INFO == "certificates without an OCSP URI are not updated"


def test_update_on_with_uri_but_no_issuer_is_fatal(pki: Pki, tmp_path: Path) -> None:
    cert = _load(pki, tmp_path, pki.ecdsa_leaf, with_issuer=False)
    readiness = assess_ocsp(cert, ocsp_update=True)
    assert readiness.disposition is OcspDisposition.FATAL
    assert not readiness.ok
    assert readiness.fatal == (
        f"'{cert.name}' has an OCSP auto-update set to 'on' but an error occurred "
        "(maybe the OCSP URI or the issuer could not be found)."
    )
    assert any(".issuer" in line for line in readiness.info)


@pytest.mark.parametrize("ocsp_update", [True, False])
def test_ocsp_file_without_issuer_is_fatal(pki: Pki, tmp_path: Path, ocsp_update: bool) -> None:
    cert = _load(pki, tmp_path, pki.ecdsa_leaf, ocsp=b"anything", with_issuer=False)
    readiness = assess_ocsp(cert, ocsp_update=ocsp_update)
    assert readiness.disposition is OcspDisposition.FATAL
    assert readiness.fatal == (
        f"'{tmp_path / 'site.pem.ocsp'}' is present and activates OCSP but it is impossible "
        "to compute the OCSP certificate ID (maybe the issuer could not be found)."
    )


def test_ocsp_file_with_update_off_creates_a_static_entry(pki: Pki, tmp_path: Path) -> None:
    cert = _load(pki, tmp_path, pki.ecdsa_leaf, ocsp=pki.response(pki.ecdsa_leaf))
    readiness = assess_ocsp(cert, ocsp_update=False)
    assert readiness.disposition is OcspDisposition.ENTRY
    assert not readiness.auto_update
    assert readiness.cert_id == cert.cert_id


def test_ocsp_file_without_uri_is_stapled_but_never_updated(pki: Pki, tmp_path: Path) -> None:
    cert = _load(pki, tmp_path, pki.no_uri_leaf, ocsp=pki.response(pki.no_uri_leaf))
    readiness = assess_ocsp(cert, ocsp_update=True)
    assert readiness.disposition is OcspDisposition.ENTRY
    assert not readiness.auto_update
    assert readiness.info == (f"'{cert.name}' has no OCSP URI: {NO_URI_INFO}.",)


def test_must_staple_without_any_staple_source_is_flagged(pki: Pki, tmp_path: Path) -> None:
    cert = _load(pki, tmp_path, pki.must_staple_leaf)
    assert cert.must_staple
    off = assess_ocsp(cert, ocsp_update=False)
    assert len(off.warnings) == 1
    assert "must-staple" in off.warnings[0]
    assert "'ocsp-update on'" in off.warnings[0]
    assert assess_ocsp(cert, ocsp_update=True).warnings == ()


# -- check_ocsp_sidecar -------------------------------------------------------------------


def test_no_sidecar_is_absent(pki: Pki, tmp_path: Path) -> None:
    cert = _load(pki, tmp_path, pki.ecdsa_leaf)
    assert check_ocsp_sidecar(cert, NOW).outcome is SidecarOutcome.ABSENT


def test_valid_sidecar_is_loaded(pki: Pki, tmp_path: Path) -> None:
    der = pki.response(pki.ecdsa_leaf)
    cert = _load(pki, tmp_path, pki.ecdsa_leaf, ocsp=der)
    check = check_ocsp_sidecar(cert, NOW)
    assert check.outcome is SidecarOutcome.LOADED
    assert check.staple is not None
    assert check.staple.der == der
    assert check.staple.cert_id == cert.cert_id
    assert (check.warning, check.error) == (None, None)


def test_sidecar_without_issuer(pki: Pki, tmp_path: Path) -> None:
    cert = _load(pki, tmp_path, pki.ecdsa_leaf, ocsp=b"x", with_issuer=False)
    assert check_ocsp_sidecar(cert, NOW).outcome is SidecarOutcome.NO_ISSUER


def _ignored(cert: LoadedCertificate, now: dt.datetime = NOW) -> tuple[FailureReason, str]:
    check = check_ocsp_sidecar(cert, now)
    assert check.outcome is SidecarOutcome.IGNORED
    assert check.staple is None
    assert check.error is not None
    assert check.warning is not None
    return check.error.reason, check.warning


def test_garbage_sidecar_is_ignored(pki: Pki, tmp_path: Path) -> None:
    cert = _load(pki, tmp_path, pki.ecdsa_leaf, ocsp=b"")
    assert _ignored(cert) == (
        FailureReason.UNPARSABLE,
        "Loading: Unable to parse OCSP response. Content will be ignored.",
    )


def test_sidecar_for_another_certificate_is_ignored(pki: Pki, tmp_path: Path) -> None:
    cert = _load(pki, tmp_path, pki.ecdsa_leaf, ocsp=pki.response(pki.rsa_leaf))
    assert _ignored(cert) == (
        FailureReason.CERT_ID_MISMATCH,
        "Loading: OCSP single response: Certificate ID does not match certificate and issuer. "
        "Content will be ignored.",
    )


def test_stale_sidecar_is_ignored_without_a_doubled_period(pki: Pki, tmp_path: Path) -> None:
    der = pki.response(
        pki.ecdsa_leaf,
        this_update=NOW - dt.timedelta(days=2),
        next_update=NOW - dt.timedelta(seconds=400),
    )
    cert = _load(pki, tmp_path, pki.ecdsa_leaf, ocsp=der)
    assert _ignored(cert) == (
        FailureReason.NOT_VALID_NOW,
        "Loading: OCSP single response: no longer valid. Content will be ignored.",
    )


def test_sidecar_expiring_within_300s_is_ignored(pki: Pki, tmp_path: Path) -> None:
    der = pki.response(pki.ecdsa_leaf, next_update=NOW + dt.timedelta(seconds=200))
    cert = _load(pki, tmp_path, pki.ecdsa_leaf, ocsp=der)
    assert _ignored(cert) == (
        FailureReason.EXPIRES_TOO_SOON,
        "Loading: OCSP single response: no longer valid. Must be valid during at least 300s. "
        "Content will be ignored.",
    )


def test_sidecar_signed_by_a_stranger_is_ignored(pki: Pki, tmp_path: Path) -> None:
    """Divergence: HAProxy does not check a `.ocsp` file's signature; we do."""
    der = pki.response(pki.ecdsa_leaf, signer=pki.other_ca)
    cert = _load(pki, tmp_path, pki.ecdsa_leaf, ocsp=der)
    reason, warning = _ignored(cert)
    assert reason is FailureReason.SIGNER_NOT_AUTHORIZED
    assert warning.startswith("Loading: ")
    assert warning.endswith(". Content will be ignored.")


def test_loading_warning_keeps_one_period() -> None:
    assert loading_warning("a.") == "Loading: a. Content will be ignored."
    assert loading_warning("a") == "Loading: a. Content will be ignored."


@pytest.mark.parametrize("ocsp_update", [True, False])
def test_a_short_lived_certificate_without_ocsp_or_crl_is_reported_as_such(
    pki: Pki, tmp_path: Path, ocsp_update: bool
) -> None:
    short = issue(
        "short.example.test",
        ec.generate_private_key(ec.SECP256R1()),
        issuer=pki.intermediate,
        serial=0x5157,
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=6),
    )
    cert = _load(pki, tmp_path, short)
    readiness = assess_ocsp(cert, ocsp_update=ocsp_update)
    assert readiness.ok
    assert readiness.disposition is OcspDisposition.NOT_USED
    assert readiness.info == (
        f"'{cert.name}' is short-lived (valid 7.0 days) with no OCSP URI and no CRL: there is "
        "nothing to staple or watch, as the CA/Browser Forum allows; replace it before it "
        "expires.",
    )
    assert readiness.warnings == ()
