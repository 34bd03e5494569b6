"""`staplegate -c [-V]`: check a configuration and its certificates, report like HAProxy.

Every problem is printed (`[ALERT]`, `[WARNING]`, `[NOTICE]` lines naming file:line), then the
verdict: `Configuration file is valid` and exit 0, or `Fatal errors found in configuration.`
and exit 1. With `-V`, a report of every certificate follows: names, key, expiry, OCSP URI,
issuer and where it was found, CertId, `.ocsp` state and the effective `ocsp-update`, then
the value of each of staplegate's own `global` keywords (extensions HAProxy does not know),
then the stats pages: URI, and `stats admin`'s condition or `read-only`.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence

from staplegate.certs import IssuerSource, OcspDisposition, SidecarOutcome
from staplegate.clock import SystemClock
from staplegate.config.model import Frontend, GlobalSettings
from staplegate.deploy.generation import CertificateEntry, Generation
from staplegate.deploy.plan import validate

NO_URI = "none — certificates without an OCSP URI are not updated"


def run_check(paths: Sequence[str], *, verbose: bool) -> int:
    """Check the configuration at `paths`; exit status 0 when valid, 1 when not."""
    now = SystemClock().now()
    generation, plan = validate(paths, now=now, err=sys.stderr, startup=False)
    valid = plan is not None
    if not valid:
        print("[ALERT] config : Fatal errors found in configuration.", file=sys.stderr)
    else:
        print("Configuration file is valid")
    if verbose and generation is not None:
        print()
        print(certificate_report(generation, now=now))
        print()
        print(extensions_report(generation.config.global_))
        pages = stats_report(generation.config.frontends)
        if pages:
            print()
            print(pages)
    return 0 if valid else 1


def stats_report(frontends: Sequence[Frontend]) -> str:
    """The `-V` list of stats pages: URI, and who may act on servers (`stats admin`)."""
    lines = []
    for frontend in frontends:
        page = frontend.stats
        if page is None:
            continue
        admin = f"stats admin {page.admin_rule}" if page.admin_rule else "read-only"
        lines.append(f"  {frontend.name:<29} {page.uri}  {admin}")
    return "\n".join(["Stats pages:", *lines]) if lines else ""


def extensions_report(settings: GlobalSettings) -> str:
    """The `-V` list of staplegate's own `global` keywords (HAProxy has none of them)."""
    defaults = GlobalSettings()
    rows = [
        ("ocsp-update.maxconn", str(settings.ocsp_update_maxconn)),
        ("ocsp-update.rate-limit", str(settings.ocsp_update_rate_limit)),
        ("ocsp-update.crl-watch", settings.ocsp_update_crl_watch.value),
        ("ocsp-update.revoked-hook", settings.ocsp_update_revoked_hook or "none"),
        ("ocsp-update.responder-url", settings.ocsp_update_responder_url or "none (the AIA)"),
        ("ocsp-update.must-staple-wait", f"{settings.ocsp_update_must_staple_wait_ms / 1000:g}s"),
        ("ocsp-update.shared-store", settings.ocsp_update_shared_store or "none"),
        (
            "ocsp-update.shared-store-password-file",
            settings.ocsp_update_shared_store_password_file or "none",
        ),
    ]
    changed = {
        "ocsp-update.maxconn": settings.ocsp_update_maxconn != defaults.ocsp_update_maxconn,
        "ocsp-update.rate-limit": settings.ocsp_update_rate_limit
        != defaults.ocsp_update_rate_limit,
        "ocsp-update.crl-watch": settings.ocsp_update_crl_watch
        is not defaults.ocsp_update_crl_watch,
        "ocsp-update.revoked-hook": settings.ocsp_update_revoked_hook is not None,
        "ocsp-update.responder-url": settings.ocsp_update_responder_url is not None,
        "ocsp-update.must-staple-wait": settings.ocsp_update_must_staple_wait_ms
        != defaults.ocsp_update_must_staple_wait_ms,
        "ocsp-update.shared-store": settings.ocsp_update_shared_store is not None,
        "ocsp-update.shared-store-password-file": (
            settings.ocsp_update_shared_store_password_file is not None
        ),
    }
    lines = ["staplegate extensions (global):"]
    for name, value in rows:
        lines.append(f"  {name:<29} {value}{'' if changed[name] else ' (default)'}")
    return "\n".join(lines)


def _when(moment: dt.datetime, now: dt.datetime) -> str:
    days = (moment - now).total_seconds() / 86400
    relation = f"in {days:.0f} days" if days >= 0 else f"EXPIRED {-days:.0f} days ago"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({relation})"


def _issuer_line(entry: CertificateEntry) -> str:
    cert = entry.certificate
    assert cert is not None
    if cert.issuer is None or cert.issuer_source is IssuerSource.NONE:
        return "not found (add the intermediate to the PEM or a <cert>.issuer file)"
    where = {
        IssuerSource.CHAIN: "from the PEM chain",
        IssuerSource.ISSUER_SIDECAR: f"from {cert.issuer_path}",
        IssuerSource.ISSUER_KEYWORD: f"from the issuer keyword ({cert.issuer_path})",
    }[cert.issuer_source]
    return f"{cert.issuer.subject.rfc4514_string()} ({where})"


def _ocsp_file_line(entry: CertificateEntry) -> str:
    sidecar = entry.sidecar
    cert = entry.certificate
    if sidecar is None or cert is None or sidecar.outcome is SidecarOutcome.ABSENT:
        return "none"
    path = cert.ocsp.path if cert.ocsp else "?"
    if sidecar.outcome is SidecarOutcome.LOADED and sidecar.staple is not None:
        staple = sidecar.staple
        return (
            f"{path}: {staple.status.name.lower()}, verified, nextUpdate "
            f"{staple.next_update:%Y-%m-%d %H:%M:%S} UTC"
        )
    if sidecar.outcome is SidecarOutcome.NO_ISSUER:
        return f"{path}: cannot be checked (no issuer)"
    return f"{path}: ignored ({sidecar.warning})"


def _uri_line(entry: CertificateEntry) -> str:
    cert = entry.certificate
    assert cert is not None
    aia = ", then ".join(cert.ocsp_uris) or NO_URI
    override = next((r for r in entry.references if r.ocsp_responder), None)
    if override is None:
        return aia
    return f"{override.ocsp_responder} (ocsp-responder override; the AIA says: {aia})"


def _update_line(entry: CertificateEntry) -> str:
    readiness = entry.readiness
    places = ", ".join(
        f"{ref.origin.value} {ref.file}:{ref.line}"
        + ("" if ref.ocsp_update is None else f" says {'on' if ref.ocsp_update else 'off'}")
        for ref in entry.references
    )
    state = "on" if entry.ocsp_update else "off"
    if readiness is None:
        return f"{state} ({places})"
    if readiness.disposition is OcspDisposition.FATAL:
        outcome = "cannot work (see the alert above)"
    elif readiness.auto_update:
        outcome = "refreshed automatically"
    elif readiness.disposition is OcspDisposition.ENTRY:
        outcome = "stapled from the .ocsp file, not refreshed"
    else:
        outcome = "no stapling"
    return f"{state} → {outcome} ({places})"


def certificate_report(generation: Generation, *, now: dt.datetime) -> str:
    """The `-V` report: one block per certificate store entry."""
    lines = [f"Certificates ({len(generation.certificates)}):"]
    for entry in generation.certificates:
        lines.append(f"  {entry.name}")
        cert = entry.certificate
        if cert is None:
            lines.append(f"    error:        {entry.error}")
            continue
        lines.append(f"    names:        {', '.join(cert.names) or '(none)'}")
        lines.append(f"    key:          {cert.key_type.haproxy_name}")
        lines.append(f"    serial:       {cert.serial_hex}")
        lines.append(f"    expires:      {_when(cert.not_after, now)}")
        lines.append(f"    must-staple:  {'yes' if cert.must_staple else 'no'}")
        lines.append(f"    OCSP URI:     {_uri_line(entry)}")
        lines.append(f"    issuer:       {_issuer_line(entry)}")
        lines.append(f"    CertId:       {cert.cert_id.hex if cert.cert_id else '-'}")
        lines.append(f"    .ocsp:        {_ocsp_file_line(entry)}")
        lines.append(f"    ocsp-update:  {_update_line(entry)}")
    return "\n".join(lines)
