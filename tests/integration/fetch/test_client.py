"""OcspHttpClient against real sockets on 127.0.0.1: every failure the responder can cause.

The responder is a small aiohttp app started per test on port 0; the misbehaviours aiohttp's
server cannot produce (resets, truncated bodies, non-HTTP bytes) come from raw asyncio
servers. Hanging handlers wait on an event that teardown sets, so nothing sleeps.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from yarl import URL

from staplegate.fetch import FetchFailure, FetchResult, FetchSettings, OcspHttpClient
from staplegate.fetch.client import USER_AGENT
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.request import build_request, http_request_for

# A real (unsuccessful) OCSPResponse: the client treats bodies as opaque bytes.
OCSP_DER = ocsp.OCSPResponseBuilder.build_unsuccessful(
    ocsp.OCSPResponseStatus.UNAUTHORIZED
).public_bytes(Encoding.DER)
CT = {"Content-Type": "application/ocsp-response"}
FAST = FetchSettings(connect_timeout=1.0, total_timeout=5.0, connect_retry_delay=0.01)


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@dataclass
class Seen:
    method: str
    raw_path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Responder:
    base: str
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    hang_started: asyncio.Event = field(default_factory=asyncio.Event)
    huge_written: int = 0


@asynccontextmanager
async def responder() -> AsyncIterator[Responder]:
    state = Responder(base="")

    async def ok(request: web.Request) -> web.Response:
        state.seen.append(
            Seen(request.method, request.raw_path, dict(request.headers), await request.read())
        )
        return web.Response(body=OCSP_DER, headers=CT)

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), body=b"no", headers=CT)

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "http://127.0.0.1:1/elsewhere"})

    async def content_type(request: web.Request) -> web.Response:
        return web.Response(body=OCSP_DER, headers={"Content-Type": request.query["v"]})

    async def empty(request: web.Request) -> web.Response:
        return web.Response(body=b"", headers=CT)

    async def huge(request: web.Request) -> web.StreamResponse:
        # Endless chunked body: only a client that stops reading can finish this test.
        response = web.StreamResponse(headers=CT)
        await response.prepare(request)
        chunk = b"\x30" * 65536
        try:
            while state.huge_written < 256 * 1024 * 1024:
                await response.write(chunk)
                state.huge_written += len(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return response

    async def huge_declared(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=CT)
        response.content_length = 50 * 1024 * 1024
        await response.prepare(request)
        await response.write(b"\x30" * 1024)
        await state.release.wait()
        return response

    async def hang(request: web.Request) -> web.Response:
        state.hang_started.set()
        await state.release.wait()
        return web.Response(body=OCSP_DER, headers=CT)

    async def hang_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=CT)
        response.content_length = 4096
        await response.prepare(request)
        await response.write(b"\x30" * 100)
        state.hang_started.set()
        await state.release.wait()
        return response

    app = web.Application()
    app.router.add_route("*", "/ok{tail:.*}", ok)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/ctype", content_type)
    app.router.add_get("/empty", empty)
    app.router.add_get("/huge", huge)
    app.router.add_get("/huge-declared", huge_declared)
    app.router.add_get("/hang", hang)
    app.router.add_get("/hang-body", hang_body)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


@asynccontextmanager
async def raw_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A TCP server whose handler writes whatever bytes a test needs."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def read_request_head(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def fetch(url: str, settings: FetchSettings = FAST, **kwargs: Any) -> FetchResult:
    client = OcspHttpClient(settings)
    try:
        return await client.fetch(
            kwargs.get("method", "GET"), url, kwargs.get("headers", ()), kwargs.get("body")
        )
    finally:
        await client.close()


def assert_failed(result: FetchResult, failure: FetchFailure, *fragments: str) -> None:
    assert not result.ok, result
    assert result.body is None
    assert result.failure is failure, result
    for fragment in fragments:
        assert fragment in result.detail, result.detail


# --- success -------------------------------------------------------------------------------


def test_get_returns_body_and_sends_the_path_verbatim() -> None:
    async def scenario() -> None:
        async with responder() as r:
            # HAProxy's GET encoding: %2B %2F %3D must reach the responder unchanged.
            path = "/ok/MEUwQzBBMD8w%2BVvO3lNA%2FUpgDoCBAobLD0%3D"
            result = await fetch(
                r.base + path, headers=[("Accept", "*/*"), ("User-Agent", "HAProxy")]
            )
            assert result.ok, result.detail
            assert result.body == OCSP_DER
            assert result.failure is None
            assert result.http_status == 200
            assert result.attempts == 1
            assert f"{len(OCSP_DER)} bytes" in result.detail
            assert len(r.seen) == 1
            seen = r.seen[0]
            assert seen.method == "GET"
            assert seen.raw_path == path
            assert seen.headers["User-Agent"] == "HAProxy"
            assert seen.headers["Accept"] == "*/*"
            assert "Cookie" not in seen.headers
            assert "Accept-Encoding" not in seen.headers

    run(scenario())


def test_post_sends_body_and_content_type() -> None:
    async def scenario() -> None:
        async with responder() as r:
            request_der = bytes(range(200))
            result = await fetch(
                r.base + "/ok",
                method="POST",
                headers=[("Content-Type", "application/ocsp-request")],
                body=request_der,
            )
            assert result.ok, result.detail
            assert result.body == OCSP_DER
            seen = r.seen[0]
            assert seen.method == "POST"
            assert seen.raw_path == "/ok"
            assert seen.body == request_der
            assert seen.headers["Content-Type"] == "application/ocsp-request"
            assert seen.headers["User-Agent"].startswith("staplegate/")

    run(scenario())


def test_content_type_is_case_insensitive() -> None:
    async def scenario() -> None:
        async with responder() as r:
            query = urlencode({"v": "  Application/OCSP-Response"})
            result = await fetch(f"{r.base}/ctype?{query}")
            assert result.ok, result.detail

    run(scenario())


def test_one_session_serves_many_fetches() -> None:
    async def scenario() -> None:
        async with responder() as r:
            client = OcspHttpClient(FAST)
            try:
                results = await asyncio.gather(
                    *(client.fetch("GET", f"{r.base}/ok/{n}", (), None) for n in range(5))
                )
            finally:
                await client.close()
            assert all(result.ok for result in results)
            assert sorted(seen.raw_path for seen in r.seen) == [f"/ok/{n}" for n in range(5)]

    run(scenario())


def _real_cert_id() -> CertId:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fetch Test CA")])
    now = dt.datetime.now(dt.UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.test")]))
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x0A1B2C3D)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return CertId.for_certificate(leaf, ca)


@pytest.mark.parametrize(("suffix", "method"), [("", "GET"), ("/" + "p" * 200, "POST")])
def test_send_carries_an_ocsp_http_request_as_built(suffix: str, method: str) -> None:
    """The request module's GET/POST layout reaches the responder unchanged."""

    async def scenario() -> None:
        async with responder() as r:
            der = build_request(_real_cert_id())
            request = http_request_for(f"{r.base}/ok{suffix}", der, user_agent=USER_AGENT)
            assert request.method.value == method
            client = OcspHttpClient(FAST)
            try:
                result = await client.send(request)
            finally:
                await client.close()
            assert result.ok, result.detail
            [seen] = r.seen
            assert seen.method == method
            assert r.base + seen.raw_path == request.url
            assert seen.headers["Host"] == r.base.removeprefix("http://")
            assert seen.headers["User-Agent"] == dict(request.headers)["User-Agent"]
            if method == "GET":
                assert seen.body == b""
                assert "Content-Length" not in seen.headers
                assert "%2B" in request.url or "%2F" in request.url or "%3D" in request.url
            else:
                assert seen.body == der
                assert seen.headers["Content-Type"] == "application/ocsp-request"

    run(scenario())


# --- responder failures --------------------------------------------------------------------


@pytest.mark.parametrize("code", [500, 404, 503])
def test_http_error_status(code: int) -> None:
    async def scenario() -> None:
        async with responder() as r:
            result = await fetch(f"{r.base}/status/{code}")
            assert_failed(result, FetchFailure.HTTP_STATUS, f"HTTP {code} from {r.base}/status")
            assert result.http_status == code

    run(scenario())


def test_redirect_is_not_followed() -> None:
    async def scenario() -> None:
        async with responder() as r:
            result = await fetch(f"{r.base}/redirect")
            assert_failed(
                result,
                FetchFailure.HTTP_STATUS,
                "HTTP 302",
                "redirect to http://127.0.0.1:1/elsewhere not followed",
            )

    run(scenario())


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("text/html", ("Content-Type 'text/html' is not application/ocsp-response",)),
        (
            "application/ocsp-response; charset=binary",
            ("'application/ocsp-response; charset=binary'", "parameters are refused"),
        ),
        ("application/ocsp-request", ("'application/ocsp-request' is not",)),
    ],
)
def test_wrong_content_type(value: str, fragments: tuple[str, ...]) -> None:
    async def scenario() -> None:
        async with responder() as r:
            result = await fetch(f"{r.base}/ctype?{urlencode({'v': value})}")
            assert_failed(result, FetchFailure.WRONG_CONTENT_TYPE, *fragments)
            assert result.http_status == 200

    run(scenario())


def test_missing_content_type() -> None:
    async def bare(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        async with raw_server(bare) as base:
            result = await fetch(base + "/x")
        assert_failed(
            result,
            FetchFailure.WRONG_CONTENT_TYPE,
            "no Content-Type header",
            "expected application/ocsp-response",
        )

    run(scenario())


def test_empty_body() -> None:
    async def scenario() -> None:
        async with responder() as r:
            result = await fetch(f"{r.base}/empty")
            assert_failed(result, FetchFailure.EMPTY_BODY, "empty body")

    run(scenario())


def test_endless_body_is_cut_at_the_cap() -> None:
    async def scenario() -> None:
        async with responder() as r:
            settings = FetchSettings(max_body=64 * 1024, total_timeout=10.0)
            result = await fetch(f"{r.base}/huge", settings)
            assert_failed(result, FetchFailure.BODY_TOO_LARGE, "65536-byte limit")
            assert "stopped reading" in result.detail
            # The server never got near its 256 MiB: the client stopped and hung up.
            assert r.huge_written < 64 * 1024 * 1024

    run(scenario())


def test_declared_length_over_the_cap_fails_without_reading() -> None:
    async def scenario() -> None:
        async with responder() as r:
            result = await fetch(f"{r.base}/huge-declared")
            assert_failed(result, FetchFailure.BODY_TOO_LARGE, "52428800 bytes", "65536-byte")
            assert result.elapsed < FAST.total_timeout / 2  # did not wait for the body

    run(scenario())


def test_hung_responder_times_out() -> None:
    async def scenario() -> None:
        async with responder() as r:
            settings = FetchSettings(total_timeout=0.3)
            result = await fetch(f"{r.base}/hang", settings)
            assert_failed(
                result,
                FetchFailure.TIMEOUT,
                f"timeout after 0.3s waiting for the response from {r.base}/hang",
            )
            assert 0.3 <= result.elapsed < 2.0
            assert r.hang_started.is_set()

    run(scenario())


def test_hang_in_the_middle_of_the_body_times_out() -> None:
    async def scenario() -> None:
        async with responder() as r:
            result = await fetch(f"{r.base}/hang-body", FetchSettings(total_timeout=0.3))
            assert_failed(result, FetchFailure.TIMEOUT, "reading the body from")
            assert result.http_status == 200
            assert result.elapsed < 2.0

    run(scenario())


def test_hung_request_does_not_delay_another() -> None:
    async def scenario() -> None:
        async with responder() as r:
            client = OcspHttpClient(FetchSettings(total_timeout=30.0))
            try:
                hung = asyncio.create_task(client.fetch("GET", f"{r.base}/hang", (), None))
                await r.hang_started.wait()  # the hung request is in flight
                quick = await client.fetch("GET", f"{r.base}/ok", (), None)
                assert quick.ok, quick.detail
                assert quick.elapsed < 2.0
                assert not hung.done()
                r.release.set()  # now let the hung one finish normally
                late = await hung
                assert late.ok, late.detail
                assert late.elapsed > quick.elapsed
            finally:
                await client.close()

    run(scenario())


# --- connection failures -------------------------------------------------------------------


def test_refused_port_is_retried_then_reported() -> None:
    async def scenario() -> None:
        # A bound socket that never listens: connecting to it is refused, and no one else can
        # take the port meanwhile.
        with socket.socket() as placeholder:
            placeholder.bind(("127.0.0.1", 0))
            port = placeholder.getsockname()[1]
            settings = FetchSettings(connect_retries=2, connect_retry_delay=0.05)
            result = await fetch(f"http://127.0.0.1:{port}/x", settings)
        assert_failed(
            result, FetchFailure.CONNECT_FAILED, f"connect to 127.0.0.1:{port} refused (3 attempts)"
        )
        assert result.attempts == 3
        assert result.http_status is None
        assert 0.1 <= result.elapsed < 2.0  # two retry delays, no more

    run(scenario())


def test_refused_without_retries_is_immediate() -> None:
    async def scenario() -> None:
        with socket.socket() as placeholder:
            placeholder.bind(("127.0.0.1", 0))
            port = placeholder.getsockname()[1]
            result = await fetch(f"http://127.0.0.1:{port}/", FetchSettings(connect_retries=0))
        assert_failed(result, FetchFailure.CONNECT_FAILED, f"connect to 127.0.0.1:{port} refused")
        assert "attempts" not in result.detail
        assert result.attempts == 1

    run(scenario())


def test_retries_stop_at_the_total_timeout() -> None:
    async def scenario() -> None:
        with socket.socket() as placeholder:
            placeholder.bind(("127.0.0.1", 0))
            port = placeholder.getsockname()[1]
            settings = FetchSettings(
                total_timeout=0.3, connect_retries=100, connect_retry_delay=0.05
            )
            result = await fetch(f"http://127.0.0.1:{port}/", settings)
        assert_failed(result, FetchFailure.TIMEOUT, "timeout after 0.3s", "refused")
        assert result.elapsed < 2.0
        assert 2 <= result.attempts < 100

    run(scenario())


def test_connection_reset_before_response() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        sock = writer.get_extra_info("socket")
        # SO_LINGER 0: close() sends a TCP RST instead of a FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def scenario() -> None:
        async with raw_server(reset) as base:
            result = await fetch(base + "/x")
        assert result.failure is FetchFailure.CONNECTION_LOST, result
        assert "127.0.0.1" in result.detail
        assert result.attempts == 1  # the request was sent: not a connect failure, no retry

    run(scenario())


def test_body_cut_short() -> None:
    async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\n"
            b"Content-Length: 1000\r\n\r\n" + b"\x30" * 10
        )
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        async with raw_server(truncated) as base:
            result = await fetch(base + "/x")
        assert_failed(result, FetchFailure.CONNECTION_LOST, "cut short")
        assert result.http_status == 200

    run(scenario())


def test_not_http_at_all() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        async with raw_server(garbage) as base:
            result = await fetch(base + "/x")
        assert_failed(result, FetchFailure.PROTOCOL_ERROR, "invalid HTTP response from")

    run(scenario())


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ldap://127.0.0.1/x", "is not http:// or https://"),
        ("http:///nohost", "no host"),
        ("", "is not http:// or https://"),
    ],
)
def test_unusable_url(url: str, fragment: str) -> None:
    result = run(fetch(url))
    assert_failed(result, FetchFailure.INVALID_URL, fragment)
    assert result.attempts == 0


def test_untrusted_tls_certificate(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(Encoding.PEM))
    key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    key_file.chmod(0o600)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)

    async def scenario() -> None:
        async def ok(request: web.Request) -> web.Response:
            return web.Response(body=OCSP_DER, headers=CT)

        app = web.Application()
        app.router.add_get("/", ok)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
        await site.start()
        port = runner.addresses[0][1]
        try:
            result = await fetch(f"https://127.0.0.1:{port}/")
        finally:
            await runner.cleanup()
        assert_failed(
            result, FetchFailure.TLS_FAILED, f"TLS certificate of 127.0.0.1:{port} refused"
        )
        assert result.attempts == 1  # a certificate problem is not retried

    run(scenario())


# --- forward proxy -------------------------------------------------------------------------


@dataclass
class Proxy:
    address: str
    targets: list[str] = field(default_factory=list)


@asynccontextmanager
async def forward_proxy(origin: str) -> AsyncIterator[Proxy]:
    """A minimal HTTP forward proxy that records each request target and sends every request
    to `origin` (so names in the URL need not resolve: nothing leaves 127.0.0.1)."""
    proxy = Proxy(address="")

    async def forward(request: web.Request) -> web.Response:
        proxy.targets.append(request.raw_path)
        path = URL(request.raw_path, encoded=True).raw_path_qs
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                URL(origin + path, encoded=True),
                data=await request.read(),
            ) as upstream,
        ):
            body = await upstream.read()
            return web.Response(
                status=upstream.status,
                body=body,
                headers={"Content-Type": upstream.headers.get("Content-Type", "")},
            )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    proxy.address = f"127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield proxy
    finally:
        await runner.cleanup()


def test_proxy_gets_absolute_form_and_no_dns_lookup_is_made() -> None:
    async def scenario() -> None:
        async with responder() as r, forward_proxy(r.base) as proxy:
            # .invalid never resolves (RFC 2606): success proves the proxy did the routing.
            url = "http://ocsp.example.invalid/ok/MEUw%2BAbc%3D"
            result = await fetch(url, FetchSettings(proxy=proxy.address))
            assert result.ok, result.detail
            assert result.body == OCSP_DER
            assert proxy.targets == [url]
            assert r.seen[0].raw_path == "/ok/MEUw%2BAbc%3D"

    run(scenario())


def test_unreachable_proxy_is_named_in_the_detail() -> None:
    async def scenario() -> None:
        with socket.socket() as placeholder:
            placeholder.bind(("127.0.0.1", 0))
            port = placeholder.getsockname()[1]
            settings = FetchSettings(proxy=f"127.0.0.1:{port}", connect_retries=0)
            result = await fetch("http://ocsp.example.invalid/x", settings)
        assert_failed(result, FetchFailure.CONNECT_FAILED, f"connect to proxy 127.0.0.1:{port}")

    run(scenario())


def test_proxy_environment_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only ocsp-update.httpproxy selects a proxy (trust_env=False)."""
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{placeholder.getsockname()[1]}"
        for variable in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "HTTPS_PROXY"):
            monkeypatch.setenv(variable, dead)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)

        async def scenario() -> None:
            async with responder() as r:
                result = await fetch(r.base + "/ok")
                assert result.ok, result.detail
                assert len(r.seen) == 1

        run(scenario())


@pytest.mark.parametrize("bad", ["127.0.0.1", "127.0.0.1:", ":3128", "host:99999", "h:x"])
def test_proxy_setting_must_be_host_port(bad: str) -> None:
    with pytest.raises(ValueError, match="is not host:port"):
        FetchSettings(proxy=bad)


# --- CRL fetches ------------------------------------------------------------------------------


async def fetch_crl(url: str, settings: FetchSettings = FAST, **kwargs: Any) -> FetchResult:
    client = OcspHttpClient(settings)
    try:
        return await client.fetch_crl(url, **kwargs)
    finally:
        await client.close()


def test_crl_fetch_accepts_any_content_type_and_a_body_past_the_ocsp_cap() -> None:
    """A CRL is not an OCSP response: no Content-Type rule, and the OCSP 64 KiB cap does not
    apply (its own cap does)."""

    async def scenario() -> None:
        async with responder() as r:
            result = await fetch_crl(f"{r.base}/ctype?v=application/pkix-crl")
            assert result.ok, result.detail
            assert result.body == OCSP_DER
            settings = FetchSettings(max_body=16, connect_timeout=1.0, total_timeout=5.0)
            result = await fetch_crl(f"{r.base}/ok/crl", settings)
            assert result.ok, result.detail
            assert r.seen[-1].method == "GET"

    run(scenario())


def test_crl_fetch_is_cut_at_its_own_cap() -> None:
    async def scenario() -> None:
        async with responder() as r:
            result = await fetch_crl(f"{r.base}/huge", max_body=1024 * 1024)
            assert_failed(result, FetchFailure.BODY_TOO_LARGE, "1048576-byte limit")
            assert r.huge_written < 64 * 1024 * 1024

    run(scenario())


def test_crl_fetch_failures_are_one_specific_line() -> None:
    async def scenario() -> None:
        async with responder() as r:
            assert_failed(await fetch_crl(f"{r.base}/status/404"), FetchFailure.HTTP_STATUS, "404")
            assert_failed(await fetch_crl(f"{r.base}/empty"), FetchFailure.EMPTY_BODY)
            hung = await fetch_crl(f"{r.base}/hang", total_timeout=0.3)
            assert_failed(hung, FetchFailure.TIMEOUT, "timeout after 0.3s")
        unusable = await fetch_crl("ldap://ldap.example/cn=CA?certificateRevocationList")
        assert_failed(unusable, FetchFailure.INVALID_URL, "CRL URL", "distribution point")
        for result in (unusable,):
            assert "\n" not in result.detail

    run(scenario())


def test_crl_fetch_goes_through_the_proxy() -> None:
    async def scenario() -> None:
        async with responder() as r, forward_proxy(r.base) as proxy:
            url = "http://crl.example.invalid/ok/ca.crl"
            result = await fetch_crl(url, FetchSettings(proxy=proxy.address))
            assert result.ok, result.detail
            assert proxy.targets == [url]

    run(scenario())
