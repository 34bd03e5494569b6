"""The state directory: one `<certid-hex>.ocsp` file of DER per staple, replaced atomically.

Theory of operation. A file's name is the lowercase hex of its CertId's DER (HAProxy's entry
key, so `show ssl ocsp-response` output and file names match) and its content is the DER
OCSPResponse, so `openssl ocsp -respin <file> -resp_text` reads it directly. Writes go through
`write_atomically` (temporary file, fsync, rename, fsync directory), files are 0600 and a
directory we create is 0700.

Loading never fails because of one file: temporary leftovers, foreign names, truncated or
garbage contents, CertIds in a hash we cannot compute (MD5), and responses that do not
answer for the CertId in their name are skipped and reported as `StoreProblem`s (logged by
`load_all`, returned by `scan`); so is any other exception while reading one file. Parsing here is
only a structural check; the engine still verifies every staple's signature and times.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509 import ocsp

from staplegate.ocsp.certid import CertId
from staplegate.store.atomic import fsync_directory, is_temporary_name, write_atomically
from staplegate.store.base import (
    StoreError,
    StoreErrorReason,
    StoreProblem,
    StoreProblemReason,
)

logger = logging.getLogger(__name__)

STAPLE_SUFFIX = ".ocsp"
MAX_STAPLE_BYTES = 1024 * 1024
"""Files larger than this are skipped unread; a real OCSP response is a few KiB."""
FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
_NAME_MAX = 255
_STAPLE_NAME = re.compile(r"^(?P<hex>(?:[0-9a-f]{2})+)\.ocsp$")


@dataclass(frozen=True)
class StoreScan:
    """What a load found: the staples, and every file skipped with the reason."""

    staples: dict[CertId, bytes]
    problems: tuple[StoreProblem, ...]


class FileStapleStore:
    """A `StapleStore` in a directory (see `default_state_dir`); the directory is created on
    the first save, or by `ensure_directory()` at startup to fail early."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._preloaded: StoreScan | None = None

    def use_preloaded(self, scan: StoreScan) -> None:
        """Make the next `scan` (or `load_all`) return `scan` instead of reading the directory:
        a scan of this directory made moments ago, in a child process while the certificates
        loaded (store/preload.py). Only the next one: later loads (a reload) read again."""
        self._preloaded = scan

    @property
    def directory(self) -> Path:
        return self._directory

    def path_for(self, cert_id: CertId) -> Path:
        """The file that holds the staple of `cert_id`."""
        return self._directory / f"{cert_id.hex}{STAPLE_SUFFIX}"

    def ensure_directory(self) -> None:
        """Create the directory (0700, parents as needed) unless it exists; check it is one.

        Create first and look second: writer threads race to create it on a first start, and
        "absent, then present" must read as "someone else created it", not as a stray file.
        """
        directory = self._directory
        try:
            directory.mkdir(mode=DIRECTORY_MODE, parents=True)
        except FileExistsError:
            if directory.is_dir():  # follows a symlink to a directory, as before
                return
            raise StoreError(
                StoreErrorReason.NOT_A_DIRECTORY,
                directory,
                "exists and is not a directory; remove it or choose another --state-dir",
            ) from None
        except OSError as exc:
            raise StoreError(
                StoreErrorReason.CREATE_DIRECTORY_FAILED,
                directory,
                f"cannot create the state directory ({exc.strerror}); create it writable by "
                "this user or choose another --state-dir",
            ) from exc
        try:
            os.chmod(directory, DIRECTORY_MODE)  # whatever the umask did
        except OSError as exc:
            raise StoreError(
                StoreErrorReason.CREATE_DIRECTORY_FAILED,
                directory,
                f"cannot set the state directory's mode ({exc.strerror})",
            ) from exc

    def load_all(self) -> dict[CertId, bytes]:
        """Every staple on disk; skipped files are logged as warnings (see `scan`)."""
        found = self.scan()
        for problem in found.problems:
            if problem.reason is StoreProblemReason.LEFTOVER_TEMPORARY:
                logger.info("state directory: %s", problem)
            else:
                logger.warning("state directory: %s", problem)
        return found.staples

    def scan(self) -> StoreScan:
        """Read the directory; a missing directory is an empty store (first start)."""
        if self._preloaded is not None:
            preloaded, self._preloaded = self._preloaded, None
            return preloaded
        directory = self._directory
        problems: list[StoreProblem] = []
        staples: dict[CertId, bytes] = {}
        try:
            names = sorted(os.listdir(directory))
            directory_mode = stat.S_IMODE(os.stat(directory).st_mode)
        except FileNotFoundError:
            return StoreScan(staples={}, problems=())
        except OSError as exc:
            raise StoreError(
                StoreErrorReason.READ_DIRECTORY_FAILED,
                directory,
                f"cannot read the state directory ({exc.strerror}); fix its permissions or "
                "choose another --state-dir",
            ) from exc
        if directory_mode & 0o022:
            problems.append(
                StoreProblem(
                    directory,
                    StoreProblemReason.DIRECTORY_WRITABLE_BY_OTHERS,
                    f"state directory mode is {directory_mode:04o}, writable by other users; "
                    f"run 'chmod 0700 {directory}' (staples are verified anyway)",
                )
            )
        for name in names:
            path = directory / name
            try:
                outcome = self._load_one(path, name)
            except Exception as exc:  # file contents are untrusted: one file never stops a load
                logger.debug("state directory: %s", path, exc_info=True)
                outcome = StoreProblem(
                    path,
                    StoreProblemReason.CORRUPT,
                    f"cannot be read as a staple ({type(exc).__name__}: {exc}), ignored",
                )
            if isinstance(outcome, StoreProblem):
                problems.append(outcome)
            else:
                cert_id, der = outcome
                staples[cert_id] = der
        return StoreScan(staples=staples, problems=tuple(problems))

    def _load_one(self, path: Path, name: str) -> tuple[CertId, bytes] | StoreProblem:
        if is_temporary_name(name):
            return StoreProblem(
                path,
                StoreProblemReason.LEFTOVER_TEMPORARY,
                "leftover temporary file from an interrupted write, ignored; safe to delete",
            )
        match = _STAPLE_NAME.match(name)
        cert_id = _parse_cert_id(bytes.fromhex(match["hex"])) if match else None
        if isinstance(cert_id, str):
            return StoreProblem(path, StoreProblemReason.UNSUPPORTED_CERTID, cert_id)
        if cert_id is None:
            return StoreProblem(
                path,
                StoreProblemReason.FOREIGN_NAME,
                "not a staple file (expected <certid-hex>.ocsp), ignored",
            )
        try:
            der = _read_regular_file(path)
        except _Skip as skip:
            return StoreProblem(path, skip.reason, skip.detail)
        try:
            response = ocsp.load_der_ocsp_response(der)
        except ValueError as exc:
            return StoreProblem(
                path,
                StoreProblemReason.CORRUPT,
                f"not a DER OCSP response ({exc}), ignored; it will be fetched again",
            )
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            return StoreProblem(
                path,
                StoreProblemReason.NOT_SUCCESSFUL,
                f"OCSP response status is {response.response_status.name.lower()}, ignored",
            )
        try:
            answered = {CertId.from_single_response(single) for single in response.responses}
        except UnsupportedAlgorithm as exc:
            return StoreProblem(path, StoreProblemReason.UNSUPPORTED_CERTID, _unsupported(exc))
        except ValueError as exc:
            return StoreProblem(
                path, StoreProblemReason.CORRUPT, f"unreadable single response ({exc}), ignored"
            )
        if cert_id not in answered:
            return StoreProblem(
                path,
                StoreProblemReason.CERTID_MISMATCH,
                "the response does not answer for the CertId in the file name, ignored",
            )
        return cert_id, der

    def save(self, cert_id: CertId, der: bytes) -> None:
        """Persist `der` for `cert_id` atomically (0600); creates the directory if needed."""
        path = self.path_for(cert_id)
        if len(path.name) > _NAME_MAX:
            raise StoreError(
                StoreErrorReason.NAME_TOO_LONG,
                path,
                f"a {cert_id.hash_algorithm} CertId is too long for a file name; "
                "use SHA-1 or SHA-256 CertIds",
            )
        self.ensure_directory()
        try:
            write_atomically(path, der, mode=FILE_MODE)
        except OSError as exc:
            raise StoreError(
                StoreErrorReason.WRITE_FAILED,
                path,
                f"cannot write the staple ({exc.strerror or exc}); check free space and the "
                "state directory's permissions. The staple stays in memory.",
            ) from exc

    def delete(self, cert_id: CertId) -> None:
        """Remove the staple file of `cert_id`, if any."""
        path = self.path_for(cert_id)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(
                StoreErrorReason.DELETE_FAILED,
                path,
                f"cannot delete the staple ({exc.strerror}); check the state directory's "
                "permissions",
            ) from exc
        fsync_directory(self._directory)


class _Skip(Exception):
    def __init__(self, reason: StoreProblemReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _read_regular_file(path: Path) -> bytes:
    """Read a regular file of bounded size without following symlinks or blocking on FIFOs."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Skip(StoreProblemReason.NOT_A_REGULAR_FILE, "is a symlink, ignored") from exc
        raise _Skip(
            StoreProblemReason.UNREADABLE, f"cannot read ({exc.strerror}), ignored"
        ) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Skip(StoreProblemReason.NOT_A_REGULAR_FILE, "is not a regular file, ignored")
        if info.st_size > MAX_STAPLE_BYTES:
            raise _Skip(
                StoreProblemReason.TOO_LARGE,
                f"{info.st_size} bytes is more than the {MAX_STAPLE_BYTES}-byte limit, ignored",
            )
        with os.fdopen(os.dup(fd), "rb") as stream:
            return stream.read(MAX_STAPLE_BYTES + 1)
    except OSError as exc:
        raise _Skip(
            StoreProblemReason.UNREADABLE, f"cannot read ({exc.strerror}), ignored"
        ) from exc
    finally:
        os.close(fd)


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def cert_id_from_der(der: bytes) -> CertId | None:
    """The CertId whose DER is `der`, or None when `der` is not exactly a CertID.

    cryptography parses CertIDs only inside an OCSPRequest, so the CertID is wrapped in the
    four SEQUENCEs of a one-request OCSPRequest (the reverse of `CertId.der`) and parsed; the
    result must re-encode to the same bytes, which rejects anything but canonical DER.
    """
    parsed = _parse_cert_id(der)
    return parsed if isinstance(parsed, CertId) else None


def _parse_cert_id(der: bytes) -> CertId | str | None:
    """`cert_id_from_der`, but a CertID in a hash we cannot use says so (a str: why)."""
    wrapped = der
    for _ in range(4):  # Request, requestList, TBSRequest, OCSPRequest
        wrapped = b"\x30" + _der_length(len(wrapped)) + wrapped
    try:
        cert_id = CertId.from_request(ocsp.load_der_ocsp_request(wrapped))
        canonical = cert_id.der
    except UnsupportedAlgorithm as exc:
        return _unsupported(exc)
    except (ValueError, KeyError, NotImplementedError):
        return None
    return cert_id if canonical == der else None


def _unsupported(exc: UnsupportedAlgorithm) -> str:
    return (
        f"the CertId uses an unsupported hash algorithm ({exc}), ignored; staplegate "
        "writes SHA-1 CertIds, delete the file"
    )
