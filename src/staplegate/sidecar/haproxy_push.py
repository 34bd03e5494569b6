"""Push verified staples into a running HAProxy over its Runtime API (the stats socket).

Theory of operation. One task per HAProxy socket keeps HAProxy's staples equal to the
sidecar's table:

1. every `poll_interval` (and at once after a change) it asks `show info` for HAProxy's `Pid`
   and `Uptime_sec`; a new pid, or an uptime that went backwards, is a restart or reload (a
   new process that loaded only its `.ocsp` files), so everything is pushed again;
2. each staple not yet in this HAProxy is sent with `set ssl ocsp-response <base64>`; HAProxy
   answers `OCSP Response updated!` or why not;
3. then `show ssl ocsp-response` must show what was sent: 2.8+ prints the DER in base64 when
   asked (`show ssl ocsp-response base64 <id>`), 2.6 prints only OpenSSL's text, whose
   signature bytes are compared with the staple's.

HAProxy 2.6 (Debian 12) refuses a staple for a certificate that had no `.ocsp` file when it
started ("Certificate ID does not match any certificate or issuer": it created no OCSP entry
for it). Nothing can be pushed for such a certificate until HAProxy restarts or reloads with
a `.ocsp` file in place, which `--write-ocsp` writes (sidecar/ocsp_files.py); this is said
once per certificate, and the reload command (`--reload-cmd`), if any, is asked to run: that
is the only time a HAProxy that takes pushes needs a reload.

A withdrawn (expired) staple needs no push: HAProxy stops stapling it itself at
nextUpdate - 300 s, and refuses an empty push.

Every failure (socket missing or refusing, timeout, an answer that is not HAProxy's) is one
warning line per streak and a retry at the next poll; nothing here raises into the service.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.x509 import ocsp

from staplegate.ocsp.certid import CertId
from staplegate.sidecar.targets import Reloader, SidecarCertificate

log = logging.getLogger("staplegate.sidecar")

#: A command's answer larger than this is not HAProxy's answer to our commands.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
UPDATED = "OCSP Response updated"
NO_ENTRY = "does not match any certificate"
_INFO_FIELD = re.compile(r"^(Pid|Uptime_sec): *(\d+) *$", re.MULTILINE)
_HEX_LINE = re.compile(r"^\s*([0-9a-fA-F]{2}(?::[0-9a-fA-F]{2})*):?\s*$")


class RuntimeApiError(Exception):
    """HAProxy's runtime API could not be used: unreachable, too slow, or not HAProxy."""


@dataclass(frozen=True)
class RuntimeAddress:
    """Where HAProxy's runtime API listens: a Unix socket path, or a TCP host and port."""

    path: str | None = None
    host: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> RuntimeAddress:
        """`/run/haproxy/admin.sock`, `unix@PATH`, `ipv4@HOST:PORT`, `ipv6@[HOST]:PORT`,
        `HOST:PORT`; ValueError (with what to write instead) for anything else."""
        if text.startswith("unix@"):
            text = text[len("unix@") :]
            if not text:
                raise ValueError("'unix@' needs a socket path")
            return cls(path=text)
        prefix, at, rest = text.partition("@")
        if at and prefix not in ("ipv4", "ipv6", "tcp", "tcp4", "tcp6"):
            raise ValueError(
                f"'{text}': only Unix socket paths and ipv4@/ipv6@HOST:PORT are supported"
            )
        address = rest if at else text
        if "/" in address or ":" not in address:
            if at:
                raise ValueError(f"'{text}': expected HOST:PORT after '{prefix}@'")
            return cls(path=address)
        host, _, port_text = address.rpartition(":")
        host = host.strip("[]")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536 or not host:
            raise ValueError(f"'{text}': expected HOST:PORT with a port from 1 to 65535")
        return cls(host=host, port=int(port_text))

    def __str__(self) -> str:
        return self.path if self.path is not None else f"{self.host}:{self.port}"


async def runtime_command(address: RuntimeAddress, command: str, *, timeout: float = 5.0) -> str:
    """Send one command (HAProxy's non-interactive mode) and return the whole answer."""
    try:
        async with asyncio.timeout(timeout):
            if address.path is not None:
                reader, writer = await asyncio.open_unix_connection(address.path)
            else:
                reader, writer = await asyncio.open_connection(address.host, address.port)
            try:
                writer.write(command.encode() + b"\n")
                await writer.drain()
                answer = await reader.read(MAX_ANSWER_BYTES + 1)
                chunks = [answer]
                while answer and sum(map(len, chunks)) <= MAX_ANSWER_BYTES:
                    answer = await reader.read(MAX_ANSWER_BYTES)
                    chunks.append(answer)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except TimeoutError as exc:
        raise RuntimeApiError(f"no complete answer within {timeout:g} s") from exc
    except OSError as exc:
        raise RuntimeApiError(exc.strerror or str(exc) or type(exc).__name__) from exc
    data = b"".join(chunks)
    if len(data) > MAX_ANSWER_BYTES:
        raise RuntimeApiError(f"an answer over {MAX_ANSWER_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class HaproxyInstance:
    """One HAProxy process as `show info` describes it."""

    pid: int
    uptime_s: int

    @classmethod
    def parse(cls, answer: str) -> HaproxyInstance:
        fields = dict(_INFO_FIELD.findall(answer))
        if "Pid" not in fields or "Uptime_sec" not in fields:
            raise RuntimeApiError(f"'show info' answered {_excerpt(answer)}, not HAProxy's info")
        return cls(int(fields["Pid"]), int(fields["Uptime_sec"]))

    def replaced_by(self, later: HaproxyInstance) -> bool:
        """True when `later` is another process: a new pid, or a younger one (pid reused)."""
        return later.pid != self.pid or later.uptime_s < self.uptime_s


def served_matches(answer: str, der: bytes) -> bool | None:
    """Whether `show ssl ocsp-response`'s answer shows the staple `der`; None: can't tell.

    Base64 (2.8+): the bytes must be equal. Text (2.6): the response's signature bytes, the
    first hex block after `Signature Value:` (OpenSSL 3) or `Signature Algorithm:` (1.1).
    """
    stripped = answer.strip()
    with contextlib.suppress(binascii.Error, ValueError):
        if stripped and " " not in stripped:  # base64, perhaps folded over several lines
            return base64.b64decode("".join(stripped.split()), validate=True) == der
    lines = answer.splitlines()
    for marker in ("Signature Value:", "Signature Algorithm:"):
        for index, line in enumerate(lines):
            if marker not in line:
                continue
            hex_lines = []
            for following in lines[index + 1 :]:
                match = _HEX_LINE.match(following)
                if match is None:
                    break
                hex_lines.append(match.group(1))
            if hex_lines:
                shown = bytes.fromhex("".join(hex_lines).replace(":", ""))
                return shown == ocsp.load_der_ocsp_response(der).signature
    return None


class HaproxyPush:
    """A `Delivery` to one HAProxy's runtime API; see the module docstring."""

    def __init__(
        self,
        address: RuntimeAddress,
        certificates: Sequence[SidecarCertificate],
        *,
        write_ocsp: bool,
        reloader: Reloader | None = None,
        poll_interval: float = 1.0,
        timeout: float = 5.0,
    ) -> None:
        self._address = address
        self._names: dict[CertId, str] = {}
        for certificate in certificates:
            self._names.setdefault(certificate.cert_id, certificate.entry.path)
        self._write_ocsp = write_ocsp
        self._reloader = reloader if write_ocsp else None
        self._poll_interval = poll_interval
        self._timeout = timeout
        self._wanted: dict[CertId, bytes] = {}
        self._pushed: dict[CertId, bytes] = {}
        self._no_entry: set[CertId] = set()  # refused by this HAProxy process
        self._told_no_entry: set[CertId] = set()  # said once per certificate
        self._failing: dict[CertId, str] = {}  # last refusal said, per certificate
        self._instance: HaproxyInstance | None = None
        self._base64 = True  # until this HAProxy shows it cannot print base64 (2.6)
        self._unreachable: str | None = None
        self._wake = asyncio.Event()
        self._syncing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.pushes = 0
        """Staples HAProxy accepted and showed back (for tests and the log)."""
        self.rounds = 0
        """Rounds tried, whatever their outcome (for tests)."""

    @property
    def instance(self) -> HaproxyInstance | None:
        return self._instance

    def served(self) -> Mapping[CertId, bytes]:
        """What this HAProxy process was seen serving after a push."""
        return dict(self._pushed)

    async def deliver(self, changed: Mapping[CertId, bytes], removed: Sequence[CertId]) -> None:
        for cert_id, der in changed.items():
            if cert_id in self._names:
                self._wanted[cert_id] = der
        for cert_id in removed:
            # nothing to push: HAProxy withdraws an expired staple itself
            self._wanted.pop(cert_id, None)
            self._pushed.pop(cert_id, None)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"haproxy-push {self._address}"
            )
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.sync()
            except RuntimeApiError as exc:
                self._say_unreachable(str(exc))
            except Exception:  # a bug: say it, keep the sidecar's other work going
                log.exception("pushing to HAProxy at %s failed; retrying", self._address)
            self.rounds += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._wake.wait()

    async def sync(self) -> None:
        """One round: notice a new HAProxy process, push what it lacks, check it took it."""
        async with self._syncing:
            await self._sync()

    async def _sync(self) -> None:
        instance = HaproxyInstance.parse(await self._command("show info"))
        if self._unreachable is not None:
            log.warning("HAProxy's runtime API at %s answers again", self._address)
            self._unreachable = None
        if self._instance is None or self._instance.replaced_by(instance):
            if self._instance is not None:
                log.warning(
                    "HAProxy at %s was restarted or reloaded (pid %d -> %d): pushing %d "
                    "staple(s) again",
                    self._address,
                    self._instance.pid,
                    instance.pid,
                    len(self._wanted),
                )
            self._pushed.clear()
            self._no_entry.clear()
            self._base64 = True
        self._instance = instance
        for cert_id, der in list(self._wanted.items()):
            if self._pushed.get(cert_id) == der or cert_id in self._no_entry:
                continue
            await self._push(cert_id, der)

    async def _push(self, cert_id: CertId, der: bytes) -> None:
        name = self._names[cert_id]
        answer = await self._command("set ssl ocsp-response " + base64.b64encode(der).decode())
        if NO_ENTRY in answer:
            self._no_entry.add(cert_id)
            self._say_no_entry(cert_id, name)
            if self._reloader is not None:
                # the .ocsp file is written in this same batch; the reload comes after it
                self._reloader.request()
            return
        if UPDATED not in answer:
            self._say_refused(
                cert_id, f"HAProxy refused the staple for '{name}': {_excerpt(answer)}"
            )
            return
        verdict = await self._served_matches(cert_id, der)
        if verdict is False:
            self._say_refused(
                cert_id,
                f"HAProxy accepted the staple for '{name}' but shows another one; pushing again",
            )
            return
        self._pushed[cert_id] = der
        self._failing.pop(cert_id, None)
        self.pushes += 1
        checked = "shown back" if verdict else "accepted (its answer could not be compared)"
        log.info("pushed the staple for '%s' to HAProxy at %s: %s", name, self._address, checked)

    async def _served_matches(self, cert_id: CertId, der: bytes) -> bool | None:
        if self._base64:
            answer = await self._command(f"show ssl ocsp-response base64 {cert_id.hex}")
            verdict = served_matches(answer, der)
            if verdict is not None:
                return verdict
            self._base64 = False  # HAProxy 2.6 reads `base64` as a CertId it does not know
        return served_matches(await self._command(f"show ssl ocsp-response {cert_id.hex}"), der)

    async def _command(self, command: str) -> str:
        return await runtime_command(self._address, command, timeout=self._timeout)

    def _say_no_entry(self, cert_id: CertId, name: str) -> None:
        if cert_id in self._told_no_entry:
            return
        self._told_no_entry.add(cert_id)
        if self._write_ocsp:
            then = (
                "its .ocsp file is kept up to date, so HAProxy staples it from its next "
                "start or reload on"
            )
        else:
            then = (
                "run the sidecar with --write-ocsp so HAProxy finds a .ocsp file at its "
                "next start or reload"
            )
        log.warning(
            "HAProxy at %s has no OCSP entry for '%s' (it had no .ocsp file when it started; "
            "HAProxy before 2.8 cannot add one at run time): %s",
            self._address,
            name,
            then,
        )

    def _say_refused(self, cert_id: CertId, message: str) -> None:
        if self._failing.get(cert_id) != message:
            self._failing[cert_id] = message
            log.warning("%s; retrying every %g s", message, self._poll_interval)

    def _say_unreachable(self, reason: str) -> None:
        if self._unreachable != reason:
            self._unreachable = reason
            log.warning(
                "cannot use HAProxy's runtime API at %s: %s; retrying every %g s",
                self._address,
                reason,
                self._poll_interval,
            )


def _excerpt(answer: str, limit: int = 120) -> str:
    text = " ".join(answer.split())
    return repr(text if len(text) <= limit else text[:limit] + "...")
