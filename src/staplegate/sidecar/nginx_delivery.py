"""Keep nginx's `ssl_stapling_file`s fresh, then have nginx reload them.

Theory of operation. nginx reads an `ssl_stapling_file` only when it starts or reloads, staples
it without looking at it (no verification, no expiry: ngx_event_openssl_stapling.c marks it
valid forever) and refuses to start or reload when the file is missing or is not an OCSP
response. So what the file holds is what every client is handed until the next reload, and
this delivery must:

- write each verified staple (a revoked answer too: it is the truth) to every file that
  carries its certificate, atomically (store/atomic.py: nginx reloading at that moment reads
  the old or the new file), 0644 when new (an OCSP response is public) or the existing mode;
- at its first delivery, which carries the whole staple table, replace every file whose
  certificate has no staple in it: such a file holds nothing the updater could verify (a
  placeholder, a stale or foreign answer, garbage) or does not exist, and nginx would keep
  serving it or refuse to start;
- when a staple is withdrawn (expired: the updater drops it 300 s before nextUpdate, and no
  fresh one came), replace the file with a placeholder nginx loads and serves harmlessly: an
  OCSP response with status `tryLater` and no content (cryptography's
  `OCSPResponseBuilder.build_unsuccessful`), which clients treat like no staple at all;
- after a batch that changed any file, ask the reloader (`--reload-cmd`) once; it debounces,
  rate-limits, times out and retries the command itself, and never blocks this delivery;
- never raise for a file that cannot be written: log one line, keep the wanted bytes and try
  again after `retry_delay` seconds (and with every later delivery), then reload.

A file already holding the wanted bytes is left alone, so a restart rewrites nothing and
reloads nothing. Writes run in a thread (fsync), one batch at a time under a lock, so the
retry timer and `deliver` never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from staplegate.ocsp.certid import CertId
from staplegate.sidecar.targets import Delivery, Discovery, Reloader, SidecarCertificate
from staplegate.store.atomic import write_sidecar_atomically

log = logging.getLogger("staplegate.sidecar")

#: How long a file that could not be written waits before the next attempt (seconds).
RETRY_DELAY = 30.0


def placeholder_response() -> bytes:
    """An OCSP response nginx accepts and clients ignore: status tryLater, no content."""
    response = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)
    return response.public_bytes(serialization.Encoding.DER)


PLACEHOLDER = placeholder_response()


class NginxStapleFiles:
    """A `Delivery` writing each certificate's `ssl_stapling_file`; see the module docstring."""

    def __init__(
        self,
        certificates: Sequence[SidecarCertificate],
        *,
        reloader: Reloader | None = None,
        retry_delay: float = RETRY_DELAY,
    ) -> None:
        self._files: dict[CertId, list[Path]] = {}
        self._names: dict[Path, str] = {}
        for certificate in certificates:
            if certificate.ocsp_file is None:
                continue
            paths = self._files.setdefault(certificate.cert_id, [])
            if certificate.ocsp_file not in paths:
                paths.append(certificate.ocsp_file)
            self._names[certificate.ocsp_file] = certificate.entry.path
        self._reloader = reloader
        self._retry_delay = retry_delay
        self._first = True
        self._wanted: dict[Path, bytes] = {}
        """Bytes each file must hold and does not yet (written, then dropped)."""
        self._failing: set[Path] = set()
        self._lock = asyncio.Lock()
        self._retry: asyncio.Task[None] | None = None
        self.writes = 0
        """Files replaced so far (for tests and the log)."""

    @property
    def files(self) -> dict[CertId, list[Path]]:
        """Each certificate's files (a copy)."""
        return {cert_id: list(paths) for cert_id, paths in self._files.items()}

    @property
    def pending(self) -> dict[Path, bytes]:
        """Files that still must be written (their last write failed)."""
        return dict(self._wanted)

    async def deliver(self, changed: Mapping[CertId, bytes], removed: Sequence[CertId]) -> None:
        for cert_id, der in changed.items():
            for path in self._files.get(cert_id, ()):
                self._wanted[path] = der
        for cert_id in removed:
            if cert_id in changed:
                continue
            for path in self._files.get(cert_id, ()):
                self._wanted[path] = PLACEHOLDER
        if self._first:
            self._first = False
            for cert_id, paths in self._files.items():
                if cert_id not in changed:
                    for path in paths:
                        self._wanted.setdefault(path, PLACEHOLDER)
        await self._flush()

    async def close(self) -> None:
        """Stop the retry timer after one last attempt at what is still pending."""
        retry, self._retry = self._retry, None
        if retry is not None:
            retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retry
        if self._wanted:
            await self._flush(schedule_retry=False)

    # -- writing -------------------------------------------------------------------------------

    async def _flush(self, *, schedule_retry: bool = True) -> None:
        async with self._lock:
            if not self._wanted:
                return
            work = dict(self._wanted)
            results = await asyncio.to_thread(self._write_all, work)
            touched = 0
            for path, outcome in results.items():
                if outcome is None:
                    continue  # failed: stays wanted
                if self._wanted.get(path) == work[path]:
                    del self._wanted[path]
                touched += outcome
            self.writes += touched
            if touched and self._reloader is not None:
                self._reloader.request()
            if self._wanted and schedule_retry and self._retry is None:
                self._retry = asyncio.get_running_loop().create_task(
                    self._retry_later(), name="nginx-staple-files-retry"
                )

    async def _retry_later(self) -> None:
        await asyncio.sleep(self._retry_delay)
        self._retry = None
        await self._flush()

    def _write_all(self, work: Mapping[Path, bytes]) -> dict[Path, int | None]:
        """Write each file; per file 1 (replaced), 0 (already right) or None (failed)."""
        results: dict[Path, int | None] = {}
        for path, der in work.items():
            try:
                results[path] = self._write(path, der)
            except OSError as exc:
                results[path] = None
                if path not in self._failing:
                    log.warning(
                        "cannot write ssl_stapling_file '%s' (for %s): %s; retrying every %gs",
                        path,
                        self._names.get(path, "?"),
                        exc.strerror or exc,
                        self._retry_delay,
                    )
                self._failing.add(path)
            else:
                if path in self._failing:
                    log.info("ssl_stapling_file '%s' written again", path)
                self._failing.discard(path)
        return results

    def _write(self, path: Path, der: bytes) -> int:
        with contextlib.suppress(FileNotFoundError):
            if path.read_bytes() == der:
                return 0
        path.parent.mkdir(parents=True, exist_ok=True)
        write_sidecar_atomically(path, der)
        name = self._names.get(path, "?")
        if der == PLACEHOLDER:
            log.warning(
                "ssl_stapling_file '%s' (for %s) now holds a tryLater placeholder: no valid "
                "staple (none fetched yet, or it expired); nginx staples nothing useful for it",
                path,
                name,
            )
        else:
            log.info("ssl_stapling_file '%s' (for %s) updated (%d bytes)", path, name, len(der))
        return 1


def build_deliveries(discovery: Discovery, reloader: Reloader | None) -> list[Delivery]:
    """The nginx side's deliveries for one discovery: its staple files (and the reload)."""
    return [NginxStapleFiles(discovery.certificates, reloader=reloader)]
