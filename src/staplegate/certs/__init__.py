"""Certificates: PEM bundles, sidecar files, issuer choice, OCSP readiness."""

from staplegate.certs.errors import CertificateError, CertificateErrorReason
from staplegate.certs.loader import expand_bundle, issued_by, load_certificate
from staplegate.certs.model import (
    CertificateFiles,
    IssuerSource,
    KeyAlgorithm,
    KeyType,
    LoadedCertificate,
    OcspFile,
)
from staplegate.certs.names import certificate_names, names_match
from staplegate.certs.readiness import (
    OcspDisposition,
    OcspReadiness,
    SidecarCheck,
    SidecarOutcome,
    assess_ocsp,
    check_ocsp_sidecar,
)
from staplegate.certs.source import CertificateSource, ExtraFiles

__all__ = [
    "CertificateError",
    "CertificateErrorReason",
    "CertificateFiles",
    "CertificateSource",
    "ExtraFiles",
    "IssuerSource",
    "KeyAlgorithm",
    "KeyType",
    "LoadedCertificate",
    "OcspDisposition",
    "OcspFile",
    "OcspReadiness",
    "SidecarCheck",
    "SidecarOutcome",
    "assess_ocsp",
    "certificate_names",
    "check_ocsp_sidecar",
    "expand_bundle",
    "issued_by",
    "load_certificate",
    "names_match",
]
