"""What every staple store promises, and how a store reports trouble."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from staplegate.ocsp.certid import CertId


class StapleStore(Protocol):
    """Persisted OCSP responses (DER), keyed by CertId.

    A store does not verify what it holds: the engine verifies every candidate before it
    installs it, whatever its source. A store only promises never to return bytes it did not
    write whole.
    """

    def load_all(self) -> dict[CertId, bytes]:
        """Every staple persisted so far; unreadable entries are skipped and reported."""
        ...

    def save(self, cert_id: CertId, der: bytes) -> None:
        """Persist `der` for `cert_id`, replacing any previous staple atomically."""
        ...

    def delete(self, cert_id: CertId) -> None:
        """Forget the staple of `cert_id`; no error when there is none."""
        ...


class StoreErrorReason(enum.Enum):
    """Why a store operation failed as a whole."""

    NOT_A_DIRECTORY = "not-a-directory"
    CREATE_DIRECTORY_FAILED = "create-directory-failed"
    READ_DIRECTORY_FAILED = "read-directory-failed"
    WRITE_FAILED = "write-failed"
    DELETE_FAILED = "delete-failed"
    NAME_TOO_LONG = "name-too-long"


class StoreError(Exception):
    """A store operation failed; the message names the path and what to do about it."""

    def __init__(self, reason: StoreErrorReason, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.reason = reason
        self.path = path


class StoreProblemReason(enum.Enum):
    """Why one file in the state directory was skipped while loading."""

    LEFTOVER_TEMPORARY = "leftover-temporary"
    """A temporary file from a write that never finished (crash, power loss); safe to delete."""
    FOREIGN_NAME = "foreign-name"
    """A file whose name is not `<certid-hex>.ocsp`; not ours, left alone."""
    NOT_A_REGULAR_FILE = "not-a-regular-file"
    """A directory, symlink, socket... where a staple file should be."""
    UNREADABLE = "unreadable"
    TOO_LARGE = "too-large"
    CORRUPT = "corrupt"
    """Not a DER OCSPResponse (truncated or garbage)."""
    NOT_SUCCESSFUL = "not-successful"
    """An OCSPResponse whose status is not `successful`: it carries no staple."""
    CERTID_MISMATCH = "certid-mismatch"
    """The response does not answer for the CertId in the file name."""
    UNSUPPORTED_CERTID = "unsupported-certid"
    """A CertId (in the name or the response) in a hash algorithm we cannot use, e.g. MD5."""
    DIRECTORY_WRITABLE_BY_OTHERS = "directory-writable-by-others"


@dataclass(frozen=True)
class StoreProblem:
    """One thing skipped or worth a warning while loading a store."""

    path: Path
    reason: StoreProblemReason
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}"
