"""The one exception certificate loading raises, with a reason per way a file can be wrong.

Messages follow HAProxy's texts (so an operator who knows HAProxy recognises them and scripts
matching on them keep working), minus HAProxy's stray quotes; `hint` says what to do next.
"""

from __future__ import annotations

import enum
from pathlib import Path


class CertificateErrorReason(enum.Enum):
    """Why a certificate could not be loaded: one member per check, each tested."""

    MISSING_FILE = "missing-file"
    UNREADABLE_FILE = "unreadable-file"
    NOT_PEM = "not-pem"
    MALFORMED_PEM = "malformed-pem"
    NO_CERTIFICATE = "no-certificate"
    NO_PRIVATE_KEY = "no-private-key"
    KEY_MISMATCH = "key-mismatch"
    ENCRYPTED_KEY = "encrypted-key"
    ISSUER_NOT_ISSUER = "issuer-not-issuer"
    ISSUER_UNREADABLE = "issuer-unreadable"
    OCSP_UNREADABLE = "ocsp-unreadable"


class CertificateError(Exception):
    """A certificate (or one of its sidecar files) cannot be loaded.

    `path` is the file at fault, `message` HAProxy's wording, `hint` what the operator can do.
    """

    def __init__(
        self,
        reason: CertificateErrorReason,
        path: Path,
        message: str,
        *,
        hint: str | None = None,
    ) -> None:
        self.reason = reason
        self.path = path
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")
