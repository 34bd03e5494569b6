"""The test OCSP responder's HTTP server: aiohttp around `responder_core`, cache and faults.

Theory of operation:

- One aiohttp low-level server (no router, no middlewares: an OCSP responder has two URL
  shapes) answers `POST /anything` with a DER body and `GET /<percent-encoded base64 DER>`
  (RFC 5019), plus the control endpoint `/_faults` (GET shows, POST/PUT replaces, DELETE
  clears the fault plan), and `GET /crl` (`/crl/N` for the N-th served CA, from 0): the CA's
  latest `staplegate ca crl` output (DIR/crl/crl.pem next to its index.txt) as DER, read
  again on every request so a new `ca crl` is served at once.
- Before each request every served index.txt is stat()ed; a changed (mtime, size, inode)
  triple re-reads that file and empties the response cache, so the request right after
  `openssl ca -revoke` already sees the revocation. A `--faults FILE` is watched the same way.
- Answers without a nonce are cached by request bytes (the raw GET path, or the POST body)
  until half their validity has passed, then signed again; GET answers carry RFC 5019 caching
  headers and an ETag, and `If-None-Match` gets a 304. Nonce answers are always signed fresh.
- Requests are capped (`max_request_bytes` -> 413; aiohttp caps the request line and header
  fields at 8190 bytes -> 400); a client idle before or between requests is dropped after
  `idle_timeout`, a body that trickles in slower than `body_timeout` gets a 408.
- One log line per request goes to `log` (flushed once per event-loop turn, not per line).
- `workers > 1` (`run_server`) forks processes that each own a SO_REUSEPORT socket on the same
  port; every worker watches the same files, so `--faults FILE` reaches all of them, while
  `POST /_faults` also rewrites that file when there is one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import datetime as dt
import hashlib
import json
import os
import signal
import socket
import struct
import sys
import tempfile
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import unquote

import uvloop
from aiohttp import web
from aiohttp.web_request import BaseRequest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from staplegate.clock import Clock, SystemClock
from staplegate.testpki.faults import Fault, FaultKind, FaultPlan, FaultPlanError
from staplegate.testpki.index import IndexFileError, read_index
from staplegate.testpki.responder_core import (
    Answer,
    ResponderCore,
    ServedIssuer,
    Signer,
    parse_request,
)

RESPONSE_TYPE: Final = "application/ocsp-response"
WRONG_TYPE: Final = "application/octet-stream"
CONTROL_PATH: Final = "/_faults"
CRL_PATH: Final = "/crl"
CRL_TYPE: Final = "application/pkix-crl"
GARBAGE: Final = b"staplegate responder: garbage-body fault, this is not DER\n" * 4
DEFAULT_VALIDITY: Final = dt.timedelta(hours=1)
MAX_HANG_SECONDS: Final = 3600.0
REQUEST_LOG_SIZE: Final = 10_000


@dataclass(frozen=True, slots=True)
class IssuerIndex:
    """One CA to answer for: its certificate and the index.txt that says what it issued."""

    certificate: x509.Certificate
    index_path: Path


@dataclass(frozen=True, slots=True)
class ResponderConfig:
    """Everything the server needs; the CLI and the pytest plugin both build one."""

    sources: tuple[IssuerIndex, ...]
    signer: Signer
    validity: dt.timedelta = DEFAULT_VALIDITY
    host: str = "127.0.0.1"
    port: int = 0
    max_request_bytes: int = 16 * 1024
    idle_timeout: float = 15.0
    body_timeout: float = 10.0
    control: bool = True
    faults_path: Path | None = None
    text: bool = False


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One served request, as logged; the pytest plugin exposes the list of them."""

    method: str
    path: str
    http_status: int
    serial: int | None = None
    ocsp_status: str | None = None
    cert_state: str | None = None
    has_nonce: bool = False
    cache: str = "-"
    fault: str | None = None
    remote: str | None = None
    body_bytes: int = 0

    def log_line(self, when: dt.datetime, elapsed_ms: float) -> str:
        target = self.path if len(self.path) <= 48 else self.path[:45] + "..."
        serial = f"{self.serial:X}" if self.serial is not None else "-"
        nonce = "yes" if self.has_nonce else "no"
        return (
            f"{when.strftime('%Y-%m-%dT%H:%M:%SZ')} {self.remote or '-'} {self.method} {target} "
            f"{self.http_status} {self.body_bytes} ocsp={self.ocsp_status or '-'} "
            f"serial={serial} cert={self.cert_state or '-'} nonce={nonce} "
            f"cache={self.cache} fault={self.fault or '-'} {elapsed_ms:.2f}ms\n"
        )


@dataclass(slots=True)
class _Cached:
    answer: Answer
    refresh_at: dt.datetime
    etag: str
    headers: dict[str, str]


@dataclass(slots=True)
class _Watched:
    """A file we re-read when its (mtime, size, inode) changes."""

    path: Path
    stamp: tuple[int, int, int] | None = None

    def changed(self) -> bool:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp == self.stamp:
            return False
        self.stamp = stamp
        return True


def format_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def http_date(when: dt.datetime) -> str:
    return format_datetime(when.astimezone(dt.UTC), usegmt=True)


def decode_get_path(raw_path: str) -> bytes | None:
    """The request DER from a GET path: percent-decoded base64, after any path prefix."""
    path = raw_path.split("?", 1)[0].lstrip("/")
    text = unquote(path)
    candidates = [text]
    # A responder URL with a path (http://host/ocsp) puts a prefix before the base64, and
    # base64 itself may contain '/', so try every suffix that starts after a '/'.
    candidates += [text[i + 1 :] for i, char in enumerate(text) if char == "/"]
    for candidate in candidates:
        if not candidate:
            continue
        try:
            decoded = base64.b64decode(candidate.replace(" ", "+"), validate=True)
        except (binascii.Error, ValueError):
            continue
        if _is_one_der_sequence(decoded):
            return decoded
    return None


def _is_one_der_sequence(data: bytes) -> bool:
    """True when `data` is exactly one DER SEQUENCE (what every OCSPRequest is)."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    if data[1] < 0x80:
        return data[1] == len(data) - 2
    count = data[1] & 0x7F
    if count == 0 or count > 4 or len(data) < 2 + count:
        return False
    return int.from_bytes(data[2 : 2 + count], "big") == len(data) - 2 - count


class _HalfCloseHandler(web.RequestHandler):
    """aiohttp's connection handler, except that a client's half-close is not a disconnect.

    asyncio closes a transport whose `eof_received` returns a false value, which cancels the
    request in flight; a client that sends its request then shuts down its writing side
    (`curl`/`nc -N` style) must still get the answer, then the connection closes.
    """

    def eof_received(self) -> bool:  # type: ignore[override]
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self.force_close()  # idle between requests: nothing more will come
        else:
            self.close()  # answer what was asked, then close
        return True


class _Server(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _HalfCloseHandler(self, loop=self._loop, **self._kwargs)


class OcspResponder:
    """The HTTP responder; `start()`/`stop()` it on an event loop (see BackgroundResponder)."""

    def __init__(
        self, config: ResponderConfig, *, clock: Clock | None = None, log: TextIO | None = None
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.log = log
        self.requests: collections.deque[RequestRecord] = collections.deque(maxlen=REQUEST_LOG_SIZE)
        self._indexes = [_Watched(source.index_path) for source in config.sources]
        self._issuers: list[ServedIssuer] = [
            ServedIssuer.from_entries(source.certificate, ()) for source in config.sources
        ]
        self._refresh_indexes()
        self.core = ResponderCore(
            issuers=self._issuers, signer=config.signer, validity=config.validity
        )
        self._cache: dict[str | bytes, _Cached] = {}
        self._faults = FaultPlan()
        self._remaining: dict[int, int] = {}
        self._faults_file = _Watched(config.faults_path) if config.faults_path else None
        if self._faults_file is not None:
            self._reload_faults_file()
        self._runner: web.ServerRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._pending_log: list[str] = []
        self.port: int = config.port
        self.index_reloads = 0

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return format_url(self.config.host, self.port)

    async def start(self, sock: socket.socket | None = None) -> None:
        """Listen (on `sock` when given, else on config host:port; port 0 picks one)."""
        self._stopping = asyncio.Event()
        server = _Server(
            self._handle,
            handler_cancellation=True,
            access_log=None,
            keepalive_timeout=self.config.idle_timeout,
            max_line_size=8190,
            max_field_size=8190,
        )
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site: web.BaseSite
        if sock is None:
            site = web.TCPSite(runner, self.config.host, self.port, reuse_address=True)
        else:
            site = web.SockSite(runner, sock)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        sockets = [s for s in (server_socket(site),) if s is not None]
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self._flush_log()

    # -- faults -------------------------------------------------------------------------

    @property
    def faults(self) -> FaultPlan:
        return self._faults

    def set_faults(self, plan: FaultPlan) -> None:
        """Replace the fault plan (call on the server's loop thread)."""
        self._faults = plan
        self._remaining = {
            i: fault.times for i, fault in enumerate(plan.faults) if fault.times is not None
        }

    def _reload_faults_file(self) -> None:
        assert self._faults_file is not None
        if not self._faults_file.changed():
            return
        try:
            text = self._faults_file.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        try:
            self.set_faults(FaultPlan.parse(text))
        except FaultPlanError as error:
            self._write_log(
                f"faults file {self._faults_file.path}: {error}; keeping the old plan\n"
            )

    def _take_fault(self, serial: int | None) -> Fault | None:
        for position, fault in enumerate(self._faults.faults):
            if not fault.matches(serial):
                continue
            if position in self._remaining:
                self._remaining[position] -= 1
                if self._remaining[position] <= 0:
                    # exhausted: drop it, keeping the other faults and their counts
                    kept = [f for i, f in enumerate(self._faults.faults) if i != position]
                    counts = {
                        (i if i < position else i - 1): n
                        for i, n in self._remaining.items()
                        if i != position
                    }
                    self._faults, self._remaining = FaultPlan.of(kept), counts
            return fault
        return None

    # -- index --------------------------------------------------------------------------

    def _refresh_indexes(self) -> bool:
        changed = False
        for position, watched in enumerate(self._indexes):
            if not watched.changed():
                continue
            try:
                entries = read_index(watched.path) if watched.stamp is not None else []
            except (IndexFileError, OSError) as error:
                self._write_log(f"cannot read {watched.path}: {error}; keeping the old one\n")
                continue
            self._issuers[position] = ServedIssuer.from_entries(
                self.config.sources[position].certificate, entries
            )
            changed = True
        if changed and hasattr(self, "core"):
            self.core.set_issuers(self._issuers)
            self._cache.clear()
            self.index_reloads += 1
        return changed

    # -- logging ------------------------------------------------------------------------

    def _write_log(self, line: str) -> None:
        if self.log is None:
            return
        if not self._pending_log:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_soon(self._flush_log)
        self._pending_log.append(line)
        if len(self._pending_log) > 1000:
            self._flush_log()

    def _flush_log(self) -> None:
        if self.log is None or not self._pending_log:
            return
        lines, self._pending_log = self._pending_log, []
        with contextlib.suppress(OSError, ValueError):
            self.log.write("".join(lines))
            self.log.flush()

    def _record(self, record: RequestRecord, started: float) -> None:
        self.requests.append(record)
        if self.log is not None:
            elapsed = (asyncio.get_running_loop().time() - started) * 1000
            self._write_log(record.log_line(self.clock.now(), elapsed))

    # -- HTTP ---------------------------------------------------------------------------

    async def _handle(self, request: BaseRequest) -> web.StreamResponse:
        started = asyncio.get_running_loop().time()
        method = request.method
        raw_path = request.raw_path
        peer = request.transport.get_extra_info("peername") if request.transport else None
        remote = peer[0] if peer else None
        base = RequestRecord(method=method, path=raw_path, http_status=0, remote=remote)

        if raw_path.split("?", 1)[0] == CONTROL_PATH and self.config.control:
            response = await self._control(request)
            self._record(replace(base, http_status=response.status), started)
            return response

        if method in ("GET", "HEAD") and (
            raw_path == CRL_PATH or raw_path.startswith(CRL_PATH + "/")
        ):
            response = self._crl(raw_path)
            self._record(
                replace(base, http_status=response.status, body_bytes=response.content_length or 0),
                started,
            )
            return response

        if method not in ("GET", "POST", "HEAD"):
            self._record(replace(base, http_status=405), started)
            return web.Response(status=405, headers={"Allow": "GET, POST"})

        self._refresh_indexes()
        if self._faults_file is not None:
            self._reload_faults_file()

        is_get = method in ("GET", "HEAD")
        key: str | bytes
        if is_get:
            key = raw_path
            cached = self._cache.get(key)
            request_der: bytes | None = None
        else:
            body = await self._read_body(request)
            if isinstance(body, web.Response):
                self._record(replace(base, http_status=body.status), started)
                return body
            key = request_der = body
            cached = self._cache.get(key)

        now = self.clock.now()
        if cached is not None and now >= cached.refresh_at:
            cached = None

        fault: Fault | None = None
        serial: int | None = cached.answer.serial if cached is not None else None
        if cached is None:
            if is_get:
                request_der = decode_get_path(raw_path)
            if request_der is not None and self._faults:
                with contextlib.suppress(ValueError):
                    serial = parse_request(request_der).serial
        if self._faults:
            fault = self._take_fault(serial)
        base = replace(base, serial=serial, fault=fault.kind.value if fault else None)

        if fault is not None and fault.kind.is_http_level:
            if request_der is None and is_get:
                request_der = decode_get_path(raw_path)
            http_fault = await self._http_fault(request, fault, base, started, request_der)
            if http_fault is not None:
                return http_fault
            # DELAY: carry on and answer normally

        ocsp_fault = fault if fault is not None and not fault.kind.is_http_level else None
        cache_state = "hit"
        if cached is None or ocsp_fault is not None:
            cache_state = "miss"
            if request_der is None and is_get:  # a cache hit skipped decoding the path
                request_der = decode_get_path(raw_path)
            answer = self.core.answer(request_der or b"", now=now, fault=ocsp_fault)
            cached = self._remember(key, answer, now)
        answer = cached.answer
        base = replace(
            base,
            serial=answer.serial,
            ocsp_status=answer.response_status.name.lower(),
            cert_state=answer.cert_state.value if answer.cert_state else None,
            has_nonce=answer.has_nonce,
            cache=cache_state if answer.cacheable else "-",
        )
        if self.config.text:
            self._write_log(_describe(answer))

        headers = {"Content-Type": RESPONSE_TYPE}
        if is_get and cached.headers:
            remaining = int((cached.refresh_at - now).total_seconds())
            headers.update(cached.headers)
            headers["Cache-Control"] = (
                f"max-age={max(remaining, 0)}, public, no-transform, must-revalidate"
            )
            if cached.etag in request.headers.getall("If-None-Match", ()):
                del headers["Content-Type"]
                self._record(replace(base, http_status=304), started)
                return web.Response(status=304, headers=headers)
        if fault is not None and fault.kind is FaultKind.MAX_AGE:
            headers["Cache-Control"] = f"max-age={int(fault.seconds)}, public, no-transform"
        body_out = b"" if method == "HEAD" else answer.der
        self._record(replace(base, http_status=200, body_bytes=len(answer.der)), started)
        return web.Response(body=body_out, headers=headers)

    def _crl(self, raw_path: str) -> web.Response:
        """The served CA's last CRL as DER (a file that is not PEM is served as it is; aiohttp
        leaves the body out of a HEAD answer)."""
        suffix = raw_path[len(CRL_PATH) :].lstrip("/")
        position = int(suffix) if suffix.isdigit() else (0 if not suffix else -1)
        if not 0 <= position < len(self.config.sources):
            return web.Response(status=404, text="no such CA\n")
        path = self.config.sources[position].index_path.parent / "crl" / "crl.pem"
        try:
            data = path.read_bytes()
        except OSError:
            return web.Response(status=404, text="no CRL yet: run `staplegate ca crl`\n")
        if data.lstrip().startswith(b"-----BEGIN"):
            with contextlib.suppress(ValueError):
                data = x509.load_pem_x509_crl(data).public_bytes(serialization.Encoding.DER)
        return web.Response(body=data, headers={"Content-Type": CRL_TYPE})

    def _remember(self, key: str | bytes, answer: Answer, now: dt.datetime) -> _Cached:
        headers: dict[str, str] = {}
        etag = '"' + hashlib.sha256(answer.der).hexdigest()[:32] + '"'
        refresh_at = now
        if answer.this_update is not None and answer.next_update is not None:
            lifetime = answer.next_update - answer.this_update
            refresh_at = answer.this_update + lifetime / 2
            headers = {
                "ETag": etag,
                "Last-Modified": http_date(answer.this_update),
                "Expires": http_date(answer.next_update),
            }
        entry = _Cached(answer, refresh_at, etag, headers)
        if answer.cacheable:
            if len(self._cache) >= 100_000:
                self._cache.clear()
            self._cache[key] = entry
        return entry

    async def _read_body(self, request: BaseRequest) -> bytes | web.Response:
        cap = self.config.max_request_bytes
        length = request.content_length
        if length is not None and length > cap:
            return web.Response(status=413, text=f"OCSP requests are limited to {cap} bytes\n")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.config.body_timeout):
                while True:
                    chunk = await request.content.read(cap + 1 - size)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > cap:
                        return web.Response(
                            status=413, text=f"OCSP requests are limited to {cap} bytes\n"
                        )
                    chunks.append(chunk)
        except TimeoutError:
            return web.Response(status=408, text="request body too slow\n")
        return b"".join(chunks)

    async def _http_fault(
        self,
        request: BaseRequest,
        fault: Fault,
        base: RequestRecord,
        started: float,
        request_der: bytes | None,
    ) -> web.StreamResponse | None:
        kind = fault.kind
        if kind is FaultKind.MAX_AGE:
            return None  # answered normally; the header is set with the others
        if kind is FaultKind.DELAY:
            await asyncio.sleep(fault.seconds)
            return None
        if kind is FaultKind.HANG:
            self._record(replace(base, http_status=0), started)
            assert self._stopping is not None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(MAX_HANG_SECONDS):
                    await self._stopping.wait()
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing to send: the connection is gone
        if kind is FaultKind.CONNECTION_RESET:
            self._record(replace(base, http_status=0), started)
            transport = request.transport
            if transport is not None:
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
            raise asyncio.CancelledError
        status, content_type, body = {
            FaultKind.HTTP_500: (500, "text/plain", b"staplegate responder: http-500 fault\n"),
            FaultKind.HTTP_404: (404, "text/plain", b"staplegate responder: http-404 fault\n"),
            FaultKind.EMPTY_BODY: (200, RESPONSE_TYPE, b""),
            FaultKind.GARBAGE_BODY: (200, RESPONSE_TYPE, GARBAGE),
            FaultKind.HUGE_BODY: (200, RESPONSE_TYPE, b""),
            FaultKind.WRONG_CONTENT_TYPE: (200, WRONG_TYPE, b""),
            FaultKind.FIXED_BODY: (200, RESPONSE_TYPE, fault.body),
        }[kind]
        if kind is FaultKind.HUGE_BODY:
            body = b"\x30\x82" + bytes(max(fault.size - 2, 0))
        if kind is FaultKind.WRONG_CONTENT_TYPE:
            body = self.core.answer(request_der or b"", now=self.clock.now()).der
        self._record(replace(base, http_status=status, body_bytes=len(body)), started)
        return web.Response(status=status, body=body, headers={"Content-Type": content_type})

    async def _control(self, request: BaseRequest) -> web.Response:
        if request.method in ("POST", "PUT"):
            try:
                plan = FaultPlan.parse(await request.read())
            except FaultPlanError as error:
                return web.json_response({"error": str(error)}, status=400)
            self.set_faults(plan)
            if self._faults_file is not None:
                _write_atomically(self._faults_file.path, json.dumps(plan.to_json()) + "\n")
                self._faults_file.changed()  # our own write: don't reset the counts
        elif request.method == "DELETE":
            self.set_faults(FaultPlan())
            if self._faults_file is not None:
                _write_atomically(self._faults_file.path, "")
                self._faults_file.changed()
        elif request.method != "GET":
            return web.Response(status=405, headers={"Allow": "GET, POST, PUT, DELETE"})
        return web.json_response(self._faults.to_json())


def server_socket(site: web.BaseSite) -> socket.socket | None:
    """The listening socket of a started site (to learn the port when it was 0)."""
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or ()
    for sock in sockets:
        return sock  # type: ignore[no-any-return]
    return None


def _write_atomically(path: Path, text: str) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".faults.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temp, path)


def _describe(answer: Answer) -> str:
    """The `-text` output for one answer: a short openssl-like summary."""
    lines = [f"OCSP Response Status: {answer.response_status.name.lower()}"]
    if answer.serial is not None:
        lines.append(f"    Serial Number: {answer.serial:X}")
    if answer.cert_state is not None:
        lines.append(f"    Cert Status: {answer.cert_state.value}")
    if answer.this_update is not None and answer.next_update is not None:
        lines.append(f"    This Update: {answer.this_update.isoformat()}")
        lines.append(f"    Next Update: {answer.next_update.isoformat()}")
    if answer.has_nonce:
        lines.append("    Nonce: echoed")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# running it


@dataclass
class BackgroundResponder:
    """An `OcspResponder` on its own thread and event loop, for tests and embedding.

    `start()` returns once the socket listens; `stop()` closes it; `start()` again listens on
    the same port (SO_REUSEADDR), so certificates that carry the URL stay valid.
    """

    responder: OcspResponder
    _thread: threading.Thread | None = field(default=None, init=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return self.responder.url

    @property
    def port(self) -> int:
        return self.responder.port

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            return
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.responder.start())
            except BaseException as error:
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.responder.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        thread = threading.Thread(target=run, name="staplegate-responder", daemon=True)
        thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("the OCSP responder did not start listening in time")
        if failure:
            thread.join()
            raise failure[0]
        self._thread, self._loop = thread, loop

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None or self._loop is None:
            return
        thread, loop = self._thread, self._loop
        self._thread = self._loop = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    def call(self, function: Callable[[], None]) -> None:
        """Run `function` on the responder's loop (or directly when it is stopped)."""
        if self._loop is None:
            function()
            return
        done = threading.Event()

        def wrapper() -> None:
            try:
                function()
            finally:
                done.set()

        self._loop.call_soon_threadsafe(wrapper)
        done.wait(10.0)

    def set_faults(self, plan: FaultPlan) -> None:
        self.call(lambda: self.responder.set_faults(plan))


def bind_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` listening sockets on one port: SO_REUSEPORT when more than one (workers)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if count > 1:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(1024)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _run_on_uvloop(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop, which roughly halves the responder's CPU per request."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


async def _serve_one(
    config: ResponderConfig,
    sock: socket.socket,
    log: TextIO | None,
    ready: Callable[[int], None],
) -> None:
    responder = OcspResponder(config, log=log)
    await responder.start(sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    ready(responder.port)
    await stop.wait()
    await responder.stop()


def run_server(
    config: ResponderConfig,
    *,
    workers: int = 1,
    log: TextIO | None = sys.stderr,
    ready: Callable[[str], None] = lambda url: None,
) -> int:
    """Serve until SIGTERM/SIGINT; `workers` > 1 forks that many SO_REUSEPORT processes."""
    sockets = bind_sockets(config.host, config.port, max(workers, 1))
    port = sockets[0].getsockname()[1]
    config = replace(config, port=port)
    url = format_url(config.host, port)
    if workers <= 1:
        _run_on_uvloop(_serve_one(config, sockets[0], log, lambda _port: ready(url)))
        return 0
    read_end, write_end = os.pipe()
    children: list[int] = []
    for sock in sockets:
        pid = os.fork()
        if pid == 0:  # worker
            os.close(read_end)
            for other in sockets:
                if other is not sock:
                    other.close()
            code = 0

            def worker_ready(_port: int) -> None:
                os.write(write_end, b"r")

            try:
                _run_on_uvloop(_serve_one(config, sock, log, worker_ready))
            except BaseException:  # report, then leave without running the parent's cleanup
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    os.close(write_end)
    for sock in sockets:
        sock.close()
    started = 0
    while started < len(children):
        chunk = os.read(read_end, len(children))
        if not chunk:
            break
        started += len(chunk)
    os.close(read_end)
    if started == len(children):
        ready(url)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for child in children:
        _, code = os.waitpid(child, 0)
        status = status or (os.waitstatus_to_exitcode(code) != 0)
    return int(bool(status)) if started == len(children) else 1


def load_signer_files(
    cert_path: Path,
    key_path: Path,
    *,
    password: bytes | None = None,
    by_key_hash: bool = False,
    include_certificate: bool = True,
) -> Signer:
    """A Signer from PEM files (`-rsigner`, `-rkey`); raises TypeError when a password is due."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=password)
    if not isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        raise ValueError(f"{key_path}: unsupported key type for an OCSP signer")
    return Signer(certificate, key, by_key_hash, include_certificate)


def load_issuers(ca_paths: Sequence[Path], index_paths: Sequence[Path]) -> tuple[IssuerIndex, ...]:
    """Pair `-CA` and `-index` options: one index for all CAs, or one index per CA."""
    if len(index_paths) not in (1, len(ca_paths)):
        raise ValueError(
            f"{len(ca_paths)} CA certificate(s) but {len(index_paths)} index file(s): give one "
            "index for all CAs or one per CA, in the same order"
        )
    sources = []
    for position, ca_path in enumerate(ca_paths):
        index = index_paths[0] if len(index_paths) == 1 else index_paths[position]
        for certificate in x509.load_pem_x509_certificates(ca_path.read_bytes()):
            sources.append(IssuerIndex(certificate, index))
    return tuple(sources)


__all__ = [
    "BackgroundResponder",
    "IssuerIndex",
    "OcspResponder",
    "RequestRecord",
    "ResponderConfig",
    "bind_sockets",
    "decode_get_path",
    "load_issuers",
    "load_signer_files",
    "run_server",
]
