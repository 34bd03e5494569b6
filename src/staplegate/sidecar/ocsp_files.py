"""`--write-ocsp`: keep `<cert>.ocsp` beside each certificate, for HAProxy's next start or reload.

HAProxy reads a certificate's `.ocsp` file when it starts (every version) and serves it until
it expires; HAProxy 2.6 can take a pushed staple only for a certificate that had one then. So
each verified staple is written there, atomically (a HAProxy starting at that moment reads
the old file or the new one; store/atomic.py), 0644 for a new file (an OCSP response is
public), an existing file keeping its mode. A file that already holds the bytes is left alone,
so no reload is asked for nothing.

A withdrawn staple (expired: the updater keeps none past nextUpdate - 300 s) has its file
deleted: HAProxy would load an expired file at its next start and staple nothing, but an
operator reading the file should not find a dead answer there, and HAProxy refuses the empty
push that would withdraw it at run time.

After a batch that changed any file, the reloader (`--reload-cmd`) is asked to run, so HAProxy
picks the files up (for 2.6: the certificates it had no entry for).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from staplegate.ocsp.certid import CertId
from staplegate.sidecar.targets import Reloader, SidecarCertificate
from staplegate.store.atomic import fsync_directory, write_sidecar_atomically

log = logging.getLogger("staplegate.sidecar")


class OcspFiles:
    """A `Delivery` writing each certificate's `.ocsp` file; see the module docstring."""

    def __init__(
        self, certificates: Sequence[SidecarCertificate], *, reloader: Reloader | None = None
    ) -> None:
        self._files: dict[CertId, list[Path]] = {}
        for certificate in certificates:
            if certificate.ocsp_file is None:
                continue
            paths = self._files.setdefault(certificate.cert_id, [])
            if certificate.ocsp_file not in paths:
                paths.append(certificate.ocsp_file)
        self._reloader = reloader
        self._failed: set[Path] = set()
        self.writes = 0
        """Files written or deleted (for tests and the log)."""

    async def deliver(self, changed: Mapping[CertId, bytes], removed: Sequence[CertId]) -> None:
        work: list[tuple[Path, bytes | None]] = [
            (path, der) for cert_id, der in changed.items() for path in self._files.get(cert_id, [])
        ]
        work += [(path, None) for cert_id in removed for path in self._files.get(cert_id, [])]
        if not work:
            return
        touched = await asyncio.to_thread(self._apply, work)
        self.writes += touched
        if touched and self._reloader is not None:
            self._reloader.request()

    async def close(self) -> None:
        return None

    def _apply(self, work: list[tuple[Path, bytes | None]]) -> int:
        touched = 0
        for path, der in work:
            try:
                touched += self._write(path, der) if der is not None else self._delete(path)
            except OSError as exc:
                if path not in self._failed:
                    log.warning(
                        "cannot update '%s': %s; tried again with the next staple",
                        path,
                        exc.strerror or exc,
                    )
                self._failed.add(path)
            else:
                self._failed.discard(path)
        return touched

    @staticmethod
    def _write(path: Path, der: bytes) -> int:
        with contextlib.suppress(FileNotFoundError):
            if path.read_bytes() == der:
                return 0
        write_sidecar_atomically(path, der)
        log.info("wrote '%s' (%d bytes)", path, len(der))
        return 1

    @staticmethod
    def _delete(path: Path) -> int:
        try:
            path.unlink()
        except FileNotFoundError:
            return 0
        fsync_directory(path.parent)
        log.warning("deleted '%s': its staple expired and no fresh one could be fetched", path)
        return 1
