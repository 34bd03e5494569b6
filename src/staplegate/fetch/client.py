"""Fetch one OCSP response over HTTP and say exactly why when it fails.

Theory of operation. One `aiohttp.ClientSession` serves the whole process (DNS cache, TLS
context, happy-eyeballs connector), but every fetch opens its own connection (`force_close`,
as HAProxy does) so a stale keep-alive socket can never fail a refresh. Each fetch runs under
its own total deadline, so a responder that accepts and then hangs costs one task its
`total_timeout` and never delays another fetch (HAProxy issue #3498). Connection failures are
retried `connect_retries` times, `connect_retry_delay` apart, inside that same deadline
(HAProxy's `httpclient.retries`).

The acceptance rules are HAProxy 3.2's: status 200, then a `Content-Type` header whose
whole value is `application/ocsp-response` (case-insensitive; parameters make it fail), then a
body. Redirects are not followed, cookies are not kept, the environment's proxy variables are
ignored (`trust_env=False`); the only proxy is the configured `ocsp-update.httpproxy`. The body
is read with a cap and never buffered past `max_body + 1` bytes. This module never verifies
the OCSP response: the engine does that with every candidate.

`fetch()` never raises for anything the network or the responder does; it returns a
`FetchResult` whose `failure` is an enum and whose `detail` is a sentence for the log.

`fetch_crl()` GETs a CRL through the same session, proxy, connect timeout and retries, under
its own cap (`DEFAULT_CRL_MAX_BODY`, 64 MiB: CRLs of large CAs are megabytes) and deadline;
any Content-Type is accepted (servers send application/pkix-crl, application/x-pkcs7-crl or
application/octet-stream) because the CRL verifier judges the bytes. The body is streamed
into one buffer and the read stops one byte past the cap.
"""

from __future__ import annotations

import asyncio
import enum
import errno
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Protocol

import aiohttp
from yarl import URL

from staplegate import __version__
from staplegate.fetch.caching import fresh_for

OCSP_RESPONSE_CONTENT_TYPE = "application/ocsp-response"
#: Ours, so a responder's logs tell us from HAProxy (whose User-Agent is `HAProxy`).
USER_AGENT = f"staplegate/{__version__}"
_READ_CHUNK = 16 * 1024
#: Largest CRL `fetch_crl` accepts by default, in bytes.
DEFAULT_CRL_MAX_BODY = 64 * 1024 * 1024
#: Seconds a whole CRL fetch may take by default (a big CRL on a slow link).
DEFAULT_CRL_TIMEOUT = 120.0


@dataclass(frozen=True)
class FetchSettings:
    """How the OCSP HTTP client behaves; one instance per process."""

    connect_timeout: float = 5.0
    """Seconds allowed for one TCP (and TLS) connection attempt."""
    total_timeout: float = 15.0
    """Seconds allowed for the whole fetch, retries and body included."""
    max_body: int = 64 * 1024
    """Largest response body accepted, in bytes; real OCSP responses are a few KiB."""
    proxy: str | None = None
    """`host:port` of an HTTP forward proxy (`ocsp-update.httpproxy`), or None."""
    connect_retries: int = 3
    """Extra connection attempts after a failed connect (HAProxy's `httpclient.retries`)."""
    connect_retry_delay: float = 1.0
    """Seconds between connection attempts (HAProxy waits about one second)."""
    user_agent: str = USER_AGENT
    """Sent when the request's own headers carry no User-Agent."""

    def __post_init__(self) -> None:
        if self.connect_timeout <= 0 or self.total_timeout <= 0:
            raise ValueError("OCSP fetch timeouts must be positive numbers of seconds")
        if self.max_body <= 0:
            raise ValueError("max_body must be a positive number of bytes")
        if self.connect_retries < 0 or self.connect_retry_delay < 0:
            raise ValueError("connect_retries and connect_retry_delay must not be negative")
        if self.proxy is not None:
            _proxy_url(self.proxy)  # raises ValueError with a helpful message

    @property
    def proxy_url(self) -> str | None:
        """The proxy as the `http://host:port` URL aiohttp wants, or None."""
        return None if self.proxy is None else _proxy_url(self.proxy)


def _proxy_url(proxy: str) -> str:
    host, sep, port = proxy.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"OCSP proxy {proxy!r} is not host:port; write it as in "
            "'ocsp-update.httpproxy 192.0.2.10:3128'"
        )
    return f"http://{host}:{port}"


class FetchFailure(enum.Enum):
    """Why a fetch produced no OCSP response body."""

    INVALID_URL = "invalid-url"
    """The URL is not usable (scheme other than http/https, no host); HAProxy's internal error."""
    DNS_FAILED = "dns-failed"
    """The responder's host name did not resolve."""
    CONNECT_FAILED = "connect-failed"
    """No TCP connection to the responder (or the proxy) after every retry."""
    TLS_FAILED = "tls-failed"
    """The https responder's certificate or TLS handshake was refused."""
    PROXY_FAILED = "proxy-failed"
    """The proxy refused to tunnel an https request."""
    TIMEOUT = "timeout"
    """The whole fetch did not finish within `total_timeout`."""
    CONNECTION_LOST = "connection-lost"
    """The connection was closed or reset before the response was complete."""
    PROTOCOL_ERROR = "protocol-error"
    """The responder did not speak valid HTTP/1.x."""
    HTTP_STATUS = "http-status"
    """The status was not 200 (3xx redirects included: they are never followed)."""
    WRONG_CONTENT_TYPE = "wrong-content-type"
    """No `Content-Type: application/ocsp-response` header (HAProxy status 3)."""
    BODY_TOO_LARGE = "body-too-large"
    """The body is longer than `max_body`."""
    EMPTY_BODY = "empty-body"
    """Status 200 and the right Content-Type, but no body."""


@dataclass(frozen=True)
class FetchResult:
    """The outcome of one fetch: the body on success, else a reason and a sentence."""

    ok: bool
    body: bytes | None
    failure: FetchFailure | None
    detail: str
    http_status: int | None
    elapsed: float
    attempts: int = 1
    """Connection attempts made (1 unless connecting failed and was retried)."""
    fresh_for: float | None = None
    """Seconds the responder says the answer stays fresh (`fetch.caching.fresh_for`)."""


class OcspHttpRequestLike(Protocol):
    """What `staplegate.ocsp.request.OcspHttpRequest` provides; see `OcspHttpClient.send`."""

    @property
    def method(self) -> str | enum.Enum: ...
    @property
    def url(self) -> str: ...
    @property
    def headers(self) -> Sequence[tuple[str, str]]: ...
    @property
    def body(self) -> bytes | None: ...


class _Failed(Exception):
    """Internal: ends a fetch early with a reason; never escapes `fetch()`."""

    def __init__(self, failure: FetchFailure, detail: str, http_status: int | None = None):
        super().__init__(detail)
        self.failure = failure
        self.detail = detail
        self.http_status = http_status


class OcspHttpClient:
    """An asyncio OCSP HTTP client sharing one aiohttp session; create once, `close()` at exit."""

    def __init__(self, settings: FetchSettings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    @property
    def settings(self) -> FetchSettings:
        return self._settings

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily: aiohttp sessions bind to the running loop.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                force_close=True,  # a fresh connection per fetch, as HAProxy
                happy_eyeballs_delay=0.25,  # RFC 8305: IPv6 and IPv4 raced, no family pinned
                limit=0,  # concurrency is bounded by the updater, not by a hidden pool
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                headers={"User-Agent": self._settings.user_agent},
                # Never ask for compression: the body cap must count the bytes on the wire.
                skip_auto_headers=("Accept-Encoding",),
                raise_for_status=False,
                trace_configs=[_progress_tracer()],
            )
        return self._session

    async def close(self) -> None:
        """Close the shared session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, request: OcspHttpRequestLike) -> FetchResult:
        """Fetch an `OcspHttpRequest` (from `staplegate.ocsp.request.http_request_for`)."""
        method = request.method
        name = method.value if isinstance(method, enum.Enum) else method
        return await self.fetch(str(name), request.url, request.headers, request.body)

    async def fetch(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
    ) -> FetchResult:
        """Send one OCSP request and return the response body or why there is none.

        Never raises for network or responder problems; cancellation propagates as usual.
        """
        return await self._fetch(
            method, url, headers, body, _OCSP_BODY, self._settings.total_timeout, "OCSP"
        )

    async def fetch_crl(
        self,
        url: str,
        *,
        max_body: int = DEFAULT_CRL_MAX_BODY,
        total_timeout: float = DEFAULT_CRL_TIMEOUT,
    ) -> FetchResult:
        """GET the CRL at `url` (http or https), at most `max_body` bytes within
        `total_timeout` seconds. Never raises for network or server problems."""
        if max_body <= 0 or total_timeout <= 0:
            raise ValueError("max_body and total_timeout must be positive")
        return await self._fetch(
            "GET", url, (), None, _BodyRule(max_body, "CRL"), total_timeout, "CRL"
        )

    async def _fetch(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
        rule: _BodyRule,
        total: float,
        what: str,
    ) -> FetchResult:
        """One exchange within `total` seconds, every failure turned into a FetchResult."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        progress = _Progress()
        try:
            target = _parse_url(url, what=what)
            async with asyncio.timeout(total):
                status, payload, fresh = await self._exchange(
                    method, target, url, headers, body, progress, rule
                )
        except _Failed as failed:
            return FetchResult(
                ok=False,
                body=None,
                failure=failed.failure,
                detail=failed.detail,
                http_status=failed.http_status,
                elapsed=loop.time() - started,
                attempts=progress.attempts,
            )
        except TimeoutError:
            return FetchResult(
                ok=False,
                body=None,
                failure=FetchFailure.TIMEOUT,
                detail=_timeout_detail(total, progress, url),
                http_status=progress.http_status,
                elapsed=loop.time() - started,
                attempts=progress.attempts,
            )
        return FetchResult(
            ok=True,
            body=payload,
            failure=None,
            detail=f"HTTP {status}, {len(payload)} bytes from {url}",
            http_status=status,
            elapsed=loop.time() - started,
            attempts=progress.attempts,
            fresh_for=fresh,
        )

    async def _exchange(
        self,
        method: str,
        target: URL,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
        progress: _Progress,
        rule: _BodyRule,
    ) -> tuple[int, bytes, float | None]:
        settings = self._settings
        session = self._get_session()
        per_attempt = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=settings.connect_timeout, sock_read=None
        )
        attempts_allowed = 1 + settings.connect_retries
        while True:
            progress.attempts += 1
            progress.phase = "connecting to"
            try:
                async with session.request(
                    method,
                    target,
                    headers=list(headers),
                    data=body or None,  # a GET's b"" must not become "Content-Length: 0"
                    allow_redirects=False,
                    proxy=settings.proxy_url,
                    timeout=per_attempt,
                    trace_request_ctx=progress,
                ) as response:
                    progress.phase = "reading the body from"
                    progress.http_status = response.status
                    max_body = settings.max_body if rule.max_body is None else rule.max_body
                    payload = await _accept(response, url, max_body, rule.kind)
                    hints = response.headers
                    fresh = fresh_for(
                        cache_control=hints.get("Cache-Control"),
                        expires=hints.get("Expires"),
                        date=hints.get("Date"),
                        age=hints.get("Age"),
                    )
                    return response.status, payload, fresh
            except aiohttp.ClientConnectorCertificateError as exc:
                raise _Failed(
                    FetchFailure.TLS_FAILED,
                    f"TLS certificate of {_authority(target)} refused: "
                    f"{exc.certificate_error}; check the responder's chain or the system CA store",
                ) from exc
            except aiohttp.ClientConnectorSSLError as exc:
                raise _Failed(
                    FetchFailure.TLS_FAILED,
                    f"TLS handshake with {_authority(target)} failed: {exc.os_error}",
                ) from exc
            except aiohttp.ClientConnectorError as exc:
                failure, detail = self._describe_connect_error(exc, target)
                progress.last_error = detail
                if progress.attempts >= attempts_allowed:
                    raise _Failed(failure, _with_attempts(detail, progress.attempts)) from exc
            except aiohttp.ConnectionTimeoutError as exc:
                where = self._connect_target(target)
                detail = f"connect to {where} timed out after {settings.connect_timeout:.1f}s"
                progress.last_error = detail
                if progress.attempts >= attempts_allowed:
                    raise _Failed(
                        FetchFailure.CONNECT_FAILED, _with_attempts(detail, progress.attempts)
                    ) from exc
            except aiohttp.ClientHttpProxyError as exc:
                raise _Failed(
                    FetchFailure.PROXY_FAILED,
                    f"proxy {settings.proxy} answered HTTP {exc.status} to CONNECT "
                    f"{_authority(target)}",
                    exc.status,
                ) from exc
            except aiohttp.ServerDisconnectedError as exc:
                raise _Failed(
                    FetchFailure.CONNECTION_LOST,
                    f"{_authority(target)} closed the connection before answering {url}",
                ) from exc
            except aiohttp.ClientPayloadError as exc:
                raise _Failed(
                    FetchFailure.CONNECTION_LOST,
                    f"response body from {url} cut short: {_root_cause(exc)}",
                    progress.http_status,
                ) from exc
            except aiohttp.ClientResponseError as exc:
                # aiohttp reports an unparsable status line or header block this way.
                raise _Failed(
                    FetchFailure.PROTOCOL_ERROR,
                    f"invalid HTTP response from {url}: {exc.message}",
                ) from exc
            except aiohttp.ClientOSError as exc:
                raise _Failed(
                    FetchFailure.CONNECTION_LOST,
                    f"connection to {_authority(target)} lost: {_os_reason(exc)}",
                    progress.http_status,
                ) from exc
            except aiohttp.InvalidURL as exc:
                raise _Failed(FetchFailure.INVALID_URL, f"invalid {rule.kind} URL {url!r}") from exc
            except aiohttp.ClientError as exc:
                raise _Failed(
                    FetchFailure.PROTOCOL_ERROR,
                    f"HTTP exchange with {url} failed: {type(exc).__name__}: {exc}",
                ) from exc
            progress.phase = "waiting to retry connecting to"
            await asyncio.sleep(settings.connect_retry_delay)

    def _connect_target(self, target: URL) -> str:
        if self._settings.proxy is not None:
            return f"proxy {self._settings.proxy}"
        return _authority(target)

    def _describe_connect_error(
        self, exc: aiohttp.ClientConnectorError, target: URL
    ) -> tuple[FetchFailure, str]:
        where = self._connect_target(target)
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return (
                FetchFailure.DNS_FAILED,
                f"cannot resolve {target.host}: {exc.os_error.strerror or exc.os_error}",
            )
        code = exc.os_error.errno
        if code == errno.ECONNREFUSED:
            return FetchFailure.CONNECT_FAILED, f"connect to {where} refused"
        reason = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
        return FetchFailure.CONNECT_FAILED, f"connect to {where} failed: {reason}"


@dataclass(frozen=True)
class _BodyRule:
    """What one kind of fetch accepts: its cap (None: the settings' `max_body`) and kind."""

    max_body: int | None
    kind: str  # "OCSP": HAProxy's Content-Type rule; "CRL": any Content-Type


_OCSP_BODY = _BodyRule(None, "OCSP")


@dataclass
class _Progress:
    """How far one fetch got, so a timeout can say where it struck."""

    attempts: int = 0
    phase: str = "before connecting to"
    http_status: int | None = None
    last_error: str | None = None


def _progress_tracer() -> aiohttp.TraceConfig:
    """Move a fetch's `_Progress.phase` along as aiohttp connects and sends."""
    tracer = aiohttp.TraceConfig()

    def on(phase: str) -> Callable[[object, SimpleNamespace, object], Awaitable[None]]:
        async def record(session: object, context: SimpleNamespace, params: object) -> None:
            progress = context.trace_request_ctx
            if isinstance(progress, _Progress):
                progress.phase = phase

        return record

    tracer.on_connection_create_end.append(on("sending the request to"))
    tracer.on_request_headers_sent.append(on("waiting for the response from"))
    return tracer


def _timeout_detail(total: float, progress: _Progress, url: str) -> str:
    detail = f"timeout after {total:.1f}s {progress.phase} {url}"
    if progress.last_error is not None:
        detail += f" (after {progress.attempts} attempts; last: {progress.last_error})"
    return detail


def _parse_url(url: str, what: str = "OCSP") -> URL:
    # encoded=True: send the percent-encoding of the GET path exactly as built (%2B, %2F, %3D).
    try:
        target = URL(url, encoded=True)
    except (ValueError, TypeError) as exc:
        raise _Failed(FetchFailure.INVALID_URL, f"invalid {what} URL {url!r}: {exc}") from exc
    if target.scheme not in ("http", "https"):
        where = "the certificate's AIA" if what == "OCSP" else "the CRL distribution point"
        raise _Failed(
            FetchFailure.INVALID_URL,
            f"{what} URL {url!r} is not http:// or https://; {where} cannot be used",
        )
    if not target.host:
        raise _Failed(FetchFailure.INVALID_URL, f"{what} URL {url!r} has no host")
    return target


async def _accept(
    response: aiohttp.ClientResponse, url: str, max_body: int, kind: str = "OCSP"
) -> bytes:
    """Apply HAProxy's acceptance rules in its order, then read the body with a cap (a CRL
    fetch skips the Content-Type rule)."""
    status = response.status
    if status != 200:
        detail = f"HTTP {status} from {url}"
        if 300 <= status < 400:
            location = response.headers.get("Location")
            where = f" to {location}" if location else ""
            detail += f" (redirect{where} not followed)"
        raise _Failed(FetchFailure.HTTP_STATUS, detail, status)
    content_types = response.headers.getall("Content-Type", [])
    if kind == "OCSP" and not any(_is_ocsp_content_type(value) for value in content_types):
        if not content_types:
            detail = f"no Content-Type header from {url}; expected {OCSP_RESPONSE_CONTENT_TYPE}"
        else:
            shown = ", ".join(repr(value) for value in content_types)
            detail = f"Content-Type {shown} is not {OCSP_RESPONSE_CONTENT_TYPE}"
            if any(";" in value for value in content_types):
                detail += " (parameters are refused, as by HAProxy)"
        raise _Failed(FetchFailure.WRONG_CONTENT_TYPE, detail, status)
    declared = response.content_length
    if declared is not None and declared > max_body:
        raise _Failed(
            FetchFailure.BODY_TOO_LARGE,
            f"body of {declared} bytes from {url} exceeds the {max_body}-byte limit",
            status,
        )
    chunks: list[bytes] = []
    received = 0
    while True:
        chunk = await response.content.read(min(_READ_CHUNK, max_body + 1 - received))
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
        if received > max_body:
            raise _Failed(
                FetchFailure.BODY_TOO_LARGE,
                f"body from {url} exceeds the {max_body}-byte limit (stopped reading)",
                status,
            )
    if received == 0:
        raise _Failed(FetchFailure.EMPTY_BODY, f"HTTP 200 from {url} with an empty body", status)
    return b"".join(chunks)


def _is_ocsp_content_type(value: str) -> bool:
    """HAProxy's rule: the whole value, case-insensitively, with no parameters."""
    return value.strip().lower() == OCSP_RESPONSE_CONTENT_TYPE


def _authority(target: URL) -> str:
    host = target.raw_host or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{host}:{target.port}" if target.port is not None else host


def _with_attempts(detail: str, attempts: int) -> str:
    return detail if attempts == 1 else f"{detail} ({attempts} attempts)"


def _os_reason(exc: aiohttp.ClientOSError) -> str:
    if exc.errno == errno.ECONNRESET:
        return "connection reset by peer"
    return exc.strerror or str(exc) or type(exc).__name__


def _root_cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    text = str(exc)
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({cause})"
    return text or type(exc).__name__
