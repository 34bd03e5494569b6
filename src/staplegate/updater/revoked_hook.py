"""`ocsp-update.revoked-hook`: run the operator's command when a served certificate is revoked.

A verified revocation — an OCSP `revoked` answer the machine installed, or the CRL watch's
verdict — reaches `RevokedHook.revoked`. The command runs once per certificate (path and
serial) per transition to revoked, however often the responder repeats it and across
restarts: what was announced is kept in `revoked-hook.json` in the state directory. When the
revoked certificate is no longer served at that path (replaced by another, or removed from
the configuration), `configured` runs the command once more with `STAPLEGATE_EVENT=cleared`.

The command is run by `/bin/sh -c` with the certificate in its environment (see `_env`), its
own process group, stdin closed, stdout and stderr captured (the first `OUTPUT_LIMIT` bytes
go to the log, one line per run), and killed at `timeout` seconds. Runs happen one at a time,
in the order of the events, in tasks of their own: a slow or failing hook never delays an
OCSP update or a handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from staplegate.certs.names import certificate_names
from staplegate.store.atomic import write_atomically

logger = logging.getLogger("staplegate.ocsp")

#: The file in the state directory holding the revocations already announced.
STATE_FILE = "revoked-hook.json"
#: Default bound on one run of the command.
DEFAULT_TIMEOUT_S = 30.0
#: Bytes of the command's output kept for the log line.
OUTPUT_LIMIT = 2048


@dataclass(frozen=True, slots=True)
class Revocation:
    """A verified revocation of a served certificate."""

    path: str
    certificate: x509.Certificate
    reason: str | None
    time: dt.datetime | None
    source: str
    """`ocsp` or `crl`."""


class RevokedHook:
    """Runs the command on each new revocation and on each cleared one (module docstring)."""

    def __init__(
        self, command: str, *, state_dir: Path | None, timeout: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.command = command
        self.timeout = timeout
        self._state_path = state_dir / STATE_FILE if state_dir is not None else None
        self._announced: dict[str, dict[str, str]] = self._load()
        self._tasks: set[asyncio.Task[None]] = set()
        self._one_at_a_time: asyncio.Lock | None = None
        self.runs = 0
        self.failures = 0

    # --- events ---

    def revoked(self, revocation: Revocation) -> None:
        """A verified revocation: run the command unless this one was announced already."""
        serial = f"{revocation.certificate.serial_number:X}"
        known = self._announced.get(revocation.path)
        if known is not None and known.get("serial") == serial:
            return
        self._announced[revocation.path] = {"serial": serial, "source": revocation.source}
        self._save()
        env = _env(
            event="revoked",
            path=revocation.path,
            certificate=revocation.certificate,
            reason=revocation.reason or "unspecified",
            when=revocation.time.isoformat() if revocation.time else "",
            source=revocation.source,
        )
        self._spawn(revocation.path, "revoked", env)

    def configured(self, certificates: Mapping[str, x509.Certificate]) -> None:
        """The certificates served now, by path (at start and after each reload): announce
        every earlier revocation whose certificate is no longer served there."""
        cleared = [
            path
            for path, known in self._announced.items()
            if path not in certificates
            or f"{certificates[path].serial_number:X}" != known.get("serial")
        ]
        for path in cleared:
            known = self._announced.pop(path)
            env = _env(
                event="cleared",
                path=path,
                certificate=certificates.get(path),
                reason="",
                when="",
                source=known.get("source", ""),
            )
            env["STAPLEGATE_REVOKED_SERIAL"] = known.get("serial", "")
            self._spawn(path, "cleared", env)
        if cleared:
            self._save()

    async def close(self) -> None:
        """Let running commands finish (each is bounded by `timeout`)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- running ---

    def _spawn(self, path: str, event: str, env: dict[str, str]) -> None:
        task = asyncio.get_running_loop().create_task(
            self._run(path, event, env), name=f"revoked-hook {path}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, path: str, event: str, env: dict[str, str]) -> None:
        # runs in the order of the events (a `cleared` never overtakes its `revoked`)
        if self._one_at_a_time is None:
            self._one_at_a_time = asyncio.Lock()
        async with self._one_at_a_time:
            await self._run_now(path, event, env)

    async def _run_now(self, path: str, event: str, env: dict[str, str]) -> None:
        self.runs += 1
        started = time.monotonic()
        try:
            process = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                self.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **env},
                start_new_session=True,
            )
        except OSError as error:
            self.failures += 1
            logger.error("revoked-hook for %s (%s) could not start: %s", path, event, error)
            return
        assert process.stdout is not None
        output = bytearray()
        timed_out = False
        try:
            async with asyncio.timeout(self.timeout):
                while chunk := await process.stdout.read(4096):
                    if len(output) < OUTPUT_LIMIT:
                        output += chunk[: OUTPUT_LIMIT - len(output)]
                await process.wait()
        except TimeoutError:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            raise
        elapsed = time.monotonic() - started
        text = output.decode("utf-8", errors="replace").strip()
        shown = json.dumps(text, ensure_ascii=True) if text else '""'
        if timed_out:
            self.failures += 1
            logger.error(
                "revoked-hook for %s (%s) killed after %g s; output: %s",
                path,
                event,
                self.timeout,
                shown,
            )
        elif process.returncode != 0:
            self.failures += 1
            logger.error(
                "revoked-hook for %s (%s) failed with exit status %s in %.2f s; output: %s",
                path,
                event,
                process.returncode,
                elapsed,
                shown,
            )
        else:
            logger.info(
                "revoked-hook for %s (%s) done in %.2f s; output: %s", path, event, elapsed, shown
            )

    # --- what was announced, across restarts ---

    def _load(self) -> dict[str, dict[str, str]]:
        if self._state_path is None:
            return {}
        try:
            data = json.loads(self._state_path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            logger.warning("revoked-hook: ignoring unreadable %s: %s", self._state_path, error)
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            str(path): {"serial": str(entry["serial"]), "source": str(entry.get("source", ""))}
            for path, entry in data.items()
            if isinstance(entry, dict) and isinstance(entry.get("serial"), str)
        }

    def _save(self) -> None:
        if self._state_path is None:
            return
        payload = json.dumps(self._announced, sort_keys=True).encode()
        try:
            write_atomically(self._state_path, payload, mode=0o600)
        except OSError as error:
            logger.warning("revoked-hook: cannot save %s: %s", self._state_path, error)


def _env(
    *,
    event: str,
    path: str,
    certificate: x509.Certificate | None,
    reason: str,
    when: str,
    source: str,
) -> dict[str, str]:
    """The command's environment: what it needs to act on the certificate."""
    return {
        "STAPLEGATE_EVENT": event,
        "STAPLEGATE_CERT_PATH": path,
        "STAPLEGATE_CERT_SERIAL": f"{certificate.serial_number:X}" if certificate else "",
        "STAPLEGATE_CERT_NAMES": " ".join(certificate_names(certificate)) if certificate else "",
        "STAPLEGATE_REVOCATION_REASON": reason,
        "STAPLEGATE_REVOCATION_TIME": when,
        "STAPLEGATE_REVOCATION_SOURCE": source,
    }
