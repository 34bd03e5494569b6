"""A generation: one validated configuration with every certificate it names, loaded.

`staplegate -c` and the running proxy both need the same thing: parse the configuration,
load each certificate once (a certificate referenced from several places is one store entry,
as in HAProxy), decide its OCSP fate and check its `.ocsp` file by HAProxy 3.2's load-time rules
(certs/readiness.py, docs/reference/certificates.md).
Problems become the same HAProxy-style diagnostics as configuration errors, located at the
first line that references the certificate. This module wires `config/` to `certs/`; it does
file reads through those packages only.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from staplegate.certs import (
    CertificateError,
    CertificateSource,
    ExtraFiles,
    LoadedCertificate,
    OcspDisposition,
    OcspReadiness,
    SidecarCheck,
    SidecarOutcome,
    assess_ocsp,
    check_ocsp_sidecar,
    load_certificate,
)
from staplegate.config.diagnostics import Diagnostic, Reason, Severity
from staplegate.config.loader import load_config
from staplegate.config.model import CertificateReference, Config


@dataclass(frozen=True)
class CertificateEntry:
    """One certificate store entry: loaded once, with every place that uses it."""

    name: str
    references: tuple[CertificateReference, ...]
    certificate: LoadedCertificate | None
    error: CertificateError | None
    readiness: OcspReadiness | None
    sidecar: SidecarCheck | None

    @property
    def ocsp_update(self) -> bool:
        """Auto-update is on when any reference turns it on (HAProxy: one OCSP entry per cert)."""
        return any(ref.effective_ocsp_update for ref in self.references)


@dataclass(frozen=True)
class Generation:
    """A configuration and its certificates, ready to serve (when `ok`)."""

    config: Config
    certificates: tuple[CertificateEntry, ...]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)

    def loaded(self) -> tuple[CertificateEntry, ...]:
        return tuple(e for e in self.certificates if e.certificate is not None)


def extra_files_of(config: Config) -> ExtraFiles:
    words = sorted(config.global_.ssl_load_extra_files) or ["none"]
    if set(words) >= {"bundle", "sctl", "ocsp", "issuer", "key"}:
        words = ["all"]
    return ExtraFiles.parse(words, config.global_.ssl_load_extra_del_ext)


def _source_of(reference: CertificateReference) -> CertificateSource:
    return CertificateSource(
        name=reference.name,
        crt_path=reference.crt_path,
        key_path=reference.key_path,
        ocsp_path=reference.ocsp_path,
        issuer_path=reference.issuer_path,
        sctl_path=reference.sctl_path,
        discover_sidecars=reference.discover_sidecars,
    )


def _diagnostic(
    severity: Severity, reference: CertificateReference, message: str, reason: Reason
) -> Diagnostic:
    return Diagnostic(severity, reference.file, reference.line, "crt", message, reason)


def build_generation(config: Config, *, now: dt.datetime) -> Generation:
    """Load every certificate of `config` and collect what an operator must hear about."""
    extra = extra_files_of(config)
    grouped: dict[str, list[CertificateReference]] = {}
    for reference in config.certificate_references():
        grouped.setdefault(reference.name, []).append(reference)

    entries: list[CertificateEntry] = []
    diagnostics: list[Diagnostic] = []
    for name, references in grouped.items():
        first = references[0]
        try:
            certificate = load_certificate(_source_of(first), extra=extra, now=now)
        except CertificateError as error:
            text = str(error)
            diagnostics.append(_diagnostic(Severity.ERROR, first, text, Reason.IO))
            entries.append(CertificateEntry(name, tuple(references), None, error, None, None))
            continue
        for warning in certificate.warnings:
            diagnostics.append(_diagnostic(Severity.WARNING, first, warning, Reason.IO))
        entry_update = any(ref.effective_ocsp_update for ref in references)
        responder = next((r.ocsp_responder for r in references if r.ocsp_responder), None)
        readiness = assess_ocsp(certificate, ocsp_update=entry_update, responder=responder)
        sidecar = check_ocsp_sidecar(certificate, now)
        if readiness.disposition is OcspDisposition.FATAL and readiness.fatal:
            diagnostics.append(_diagnostic(Severity.ERROR, first, readiness.fatal, Reason.IO))
        for warning in readiness.warnings:
            diagnostics.append(_diagnostic(Severity.WARNING, first, warning, Reason.IO))
        for info in readiness.info:
            diagnostics.append(_diagnostic(Severity.INFO, first, info, Reason.IO))
        if sidecar.outcome is SidecarOutcome.IGNORED and sidecar.warning:
            diagnostics.append(_diagnostic(Severity.WARNING, first, sidecar.warning, Reason.IO))
        entries.append(
            CertificateEntry(name, tuple(references), certificate, None, readiness, sidecar)
        )
    return Generation(config=config, certificates=tuple(entries), diagnostics=tuple(diagnostics))


def load_generation(paths: Sequence[str], *, now: dt.datetime, err: TextIO) -> Generation | None:
    """Parse and load; print every diagnostic to `err`; None when anything is fatal."""
    result = load_config([Path(p) for p in paths], env=os.environ)
    for diagnostic in result.diagnostics:
        print(diagnostic, file=err)
    if result.config is None:
        return None
    generation = build_generation(result.config, now=now)
    for diagnostic in generation.diagnostics:
        print(diagnostic, file=err)
    return generation
