"""Pushing staples into Debian's real HAProxy 2.6, and every way its socket can let us down."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from cryptography.x509 import ocsp

from staplegate.ocsp.certid import CertId
from staplegate.sidecar.haproxy_config import read_haproxy_config
from staplegate.sidecar.haproxy_push import (
    HaproxyInstance,
    HaproxyPush,
    RuntimeAddress,
    RuntimeApiError,
    runtime_command,
    served_matches,
)
from staplegate.sidecar.targets import SidecarCertificate
from staplegate.testpki.pytest_plugin import Pki
from staplegate.updater.driver import UpdaterEntry
from tests.e2e.harness import pyopenssl_staple
from tests.e2e.sidecar_haproxy import Haproxy, fetch_der, needs_haproxy


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/run/haproxy/admin.sock", RuntimeAddress(path="/run/haproxy/admin.sock")),
        ("unix@/run/h.sock", RuntimeAddress(path="/run/h.sock")),
        ("ipv4@127.0.0.1:9999", RuntimeAddress(host="127.0.0.1", port=9999)),
        ("127.0.0.1:9999", RuntimeAddress(host="127.0.0.1", port=9999)),
        ("ipv6@[::1]:9999", RuntimeAddress(host="::1", port=9999)),
        ("admin.sock", RuntimeAddress(path="admin.sock")),
    ],
)
def test_runtime_addresses_in_haproxys_spellings(text: str, expected: RuntimeAddress) -> None:
    assert RuntimeAddress.parse(text) == expected


@pytest.mark.parametrize("text", ["abns@haproxy", "ipv4@127.0.0.1", "ipv4@host:99999", "unix@"])
def test_runtime_addresses_it_cannot_use_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected|only|needs"):
        RuntimeAddress.parse(text)


def test_served_matches_reads_base64_and_text_answers(pki: Pki) -> None:
    der = fetch_der(pki, pki.issue("a.test"))
    encoded = base64.b64encode(der).decode()
    assert served_matches(encoded + "\n", der) is True
    assert served_matches("\n".join([encoded[:64], encoded[64:]]) + "\n", der) is True
    assert served_matches(base64.b64encode(b"other").decode(), der) is False
    signature = ocsp.load_der_ocsp_response(der).signature.hex()
    pairs = ":".join(signature[i : i + 2] for i in range(0, len(signature), 2))
    text = (
        f"OCSP Response Data:\n    Signature Value:\n        {pairs[:54]}\n        {pairs[54:]}\n"
    )
    assert served_matches(text, der) is True
    assert served_matches(text.replace(pairs[:2], "00"), der) is False
    assert served_matches("Certificate ID does not match any certificate.\n", der) is None


def test_a_new_pid_or_a_younger_process_is_another_haproxy() -> None:
    first = HaproxyInstance.parse("Name: HAProxy\nPid: 10\nUptime_sec: 50\n")
    assert not first.replaced_by(HaproxyInstance(10, 51))
    assert first.replaced_by(HaproxyInstance(11, 51))
    assert first.replaced_by(HaproxyInstance(10, 2))
    with pytest.raises(RuntimeApiError, match="not HAProxy's info"):
        HaproxyInstance.parse("garbage")


@pytest.fixture
def site(tmp_path: Path, pki: Pki) -> Iterator[tuple[Haproxy, list[SidecarCertificate]]]:
    """HAProxy with a.test (a .ocsp file at start: an OCSP entry) and b.test (none)."""
    a = pki.issue("a.test")
    b = pki.issue("b.test")
    Path(f"{a.bundle_path}.ocsp").write_bytes(fetch_der(pki, a))
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text(f"{a.bundle_path}\n{b.bundle_path}\n")
    haproxy = Haproxy(tmp_path, crt_list)
    found = read_haproxy_config([str(haproxy.config)], env=os.environ, update_all=True)
    assert found.discovery.ok, found.discovery.errors
    haproxy.start()
    try:
        yield haproxy, list(found.discovery.certificates)
    finally:
        haproxy.stop()


def _by_name(certificates: list[SidecarCertificate], name: str) -> SidecarCertificate:
    return next(c for c in certificates if c.entry.certificate.subject.rfc4514_string() == name)


@needs_haproxy
def test_a_pushed_staple_is_what_haproxy_staples_and_shows(
    site: tuple[Haproxy, list[SidecarCertificate]], pki: Pki
) -> None:
    haproxy, certificates = site
    a = _by_name(certificates, "CN=a.test")
    pki.revoke("a.test")
    revoked = fetch_der(pki, pki.issued["a.test"])
    push = HaproxyPush(RuntimeAddress(path=str(haproxy.socket)), certificates, write_ocsp=True)

    async def scenario() -> None:
        await push.deliver({a.cert_id: revoked}, [])
        await push.sync()
        await push.close()

    asyncio.run(scenario())
    assert push.served() == {a.cert_id: revoked}
    assert pyopenssl_staple(haproxy.port, "a.test") == revoked
    shown = haproxy.command(f"show ssl ocsp-response {a.cert_id.hex}")
    assert "Cert Status: revoked" in shown
    assert served_matches(shown, revoked) is True


@needs_haproxy
def test_haproxy_26_without_an_entry_refuses_and_the_sidecar_says_so_once(
    site: tuple[Haproxy, list[SidecarCertificate]], pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    haproxy, certificates = site
    b = _by_name(certificates, "CN=b.test")
    der = fetch_der(pki, pki.issued["b.test"])
    reloads = _Reloads()
    push = HaproxyPush(
        RuntimeAddress(path=str(haproxy.socket)), certificates, write_ocsp=True, reloader=reloads
    )

    async def scenario() -> None:
        await push.deliver({b.cert_id: der}, [])
        await push.sync()
        await push.sync()
        await push.close()

    with caplog.at_level(logging.WARNING, "staplegate.sidecar"):
        asyncio.run(scenario())
    said = [r.getMessage() for r in caplog.records if "has no OCSP entry" in r.getMessage()]
    assert len(said) == 1
    assert "b.test" in said[0]
    assert "next start or reload" in said[0]
    assert push.served() == {}
    assert pyopenssl_staple(haproxy.port, "b.test") == b""
    assert reloads.requests == 1  # HAProxy needs one reload to load b.test.pem.ocsp


class _Reloads:
    def __init__(self) -> None:
        self.requests = 0

    def request(self) -> None:
        self.requests += 1

    async def close(self) -> None:
        return None


@needs_haproxy
def test_a_restarted_haproxy_gets_every_staple_again(
    site: tuple[Haproxy, list[SidecarCertificate]], pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    haproxy, certificates = site
    a = _by_name(certificates, "CN=a.test")
    pki.revoke("a.test")
    revoked = fetch_der(pki, pki.issued["a.test"])
    push = HaproxyPush(RuntimeAddress(path=str(haproxy.socket)), certificates, write_ocsp=True)

    async def scenario() -> None:
        await push.deliver({a.cert_id: revoked}, [])
        await push.sync()
        # the restarted HAProxy loads the good answer still in a.test.pem.ocsp
        await asyncio.to_thread(haproxy.restart)
        assert pyopenssl_staple(haproxy.port, "a.test") != revoked
        await push.sync()
        await push.close()

    with caplog.at_level(logging.WARNING, "staplegate.sidecar"):
        asyncio.run(scenario())
    assert any("restarted or reloaded" in r.getMessage() for r in caplog.records)
    assert push.pushes == 2
    assert pyopenssl_staple(haproxy.port, "a.test") == revoked


@needs_haproxy
def test_haproxy_26_takes_a_push_on_a_user_level_socket(tmp_path: Path, pki: Pki) -> None:
    """A finding, not a wish: 2.6 checks no level for `set ssl ocsp-response`."""
    a = pki.issue("a.test")
    Path(f"{a.bundle_path}.ocsp").write_bytes(fetch_der(pki, a))
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text(f"{a.bundle_path}\n")
    haproxy = Haproxy(tmp_path, crt_list, level="user")
    found = read_haproxy_config([str(haproxy.config)], env=os.environ, update_all=True)
    assert found.push_socket is not None
    assert found.push_socket.level == "user"
    certificate = found.discovery.certificates[0]
    push = HaproxyPush(RuntimeAddress(path=str(haproxy.socket)), [certificate], write_ocsp=False)
    pki.revoke("a.test")
    revoked = fetch_der(pki, a)

    async def scenario() -> None:
        await push.deliver({certificate.cert_id: revoked}, [])
        await push.sync()
        await push.close()

    haproxy.start()
    try:
        asyncio.run(scenario())
        assert pyopenssl_staple(haproxy.port, "a.test") == revoked
    finally:
        haproxy.stop()
    assert push.served() == {certificate.cert_id: revoked}


def _one_certificate(pki: Pki) -> tuple[CertId, list[SidecarCertificate], bytes]:
    issued = pki.issue("c.test")
    cert_id = CertId.for_certificate(issued.certificate, issued.issuer)
    entry = UpdaterEntry(issued.certificate, issued.issuer, "c.pem", pki.responder.url)
    certificate = SidecarCertificate(entry, cert_id, "x.cfg:1", None)
    return cert_id, [certificate], fetch_der(pki, issued)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _warnings_after_delivery(
    address: RuntimeAddress,
    pki: Pki,
    caplog: pytest.LogCaptureFixture,
    needle: str,
    *,
    fake: Handler | None = None,
) -> list[str]:
    """Deliver one staple to `address` (served by `fake`, if given); the sidecar's warnings
    once `needle` was said and a few more rounds failed the same way."""
    cert_id, certificates, der = _one_certificate(pki)
    push = HaproxyPush(address, certificates, write_ocsp=False, poll_interval=0.05, timeout=0.3)

    writers: list[asyncio.StreamWriter] = []

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        assert fake is not None
        await fake(reader, writer)

    async def scenario() -> None:
        server = None
        if fake is not None:
            assert address.path is not None
            server = await asyncio.start_unix_server(tracked, path=address.path)
        await push.deliver({cert_id: der}, [])
        async with asyncio.timeout(10):
            while not any(needle in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.02)
            start = push.rounds
            while push.rounds < start + 3:  # more failing rounds: still one line
                await asyncio.sleep(0.02)
        await push.close()
        if server is not None:
            server.close()
            for writer in writers:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            await server.wait_closed()

    with caplog.at_level(logging.WARNING, "staplegate.sidecar"):
        asyncio.run(scenario())
    return [r.getMessage() for r in caplog.records if r.name == "staplegate.sidecar"]


def test_a_missing_socket_is_one_retried_warning(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    address = RuntimeAddress(path=str(tmp_path / "nothing.sock"))
    said = _warnings_after_delivery(address, pki, caplog, "No such file")
    assert said == [
        f"cannot use HAProxy's runtime API at {address}: No such file or directory; "
        "retrying every 0.05 s"
    ]


def test_a_socket_answering_garbage_is_one_retried_warning(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"\x00\xffgarbage, not HAProxy\n")
        writer.close()

    address = RuntimeAddress(path=str(tmp_path / "garbage.sock"))
    said = _warnings_after_delivery(address, pki, caplog, "not HAProxy's info", fake=garbage)
    assert len(said) == 1
    assert "garbage, not HAProxy" in said[0]
    assert "retrying" in said[0]


def test_a_socket_that_never_answers_times_out_as_a_warning(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # holds the connection open, answers nothing

    address = RuntimeAddress(path=str(tmp_path / "silent.sock"))
    said = _warnings_after_delivery(address, pki, caplog, "no complete answer", fake=silent)
    assert len(said) == 1
    assert "no complete answer within 0.3 s" in said[0]


def test_runtime_command_reads_the_whole_answer(tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"

    async def main() -> str:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            line = await reader.readline()
            writer.write(b"you said: " + line * 3)
            writer.close()

        server = await asyncio.start_unix_server(echo, path=str(path))
        async with server:
            return await runtime_command(RuntimeAddress(path=str(path)), "show info")

    assert asyncio.run(main()) == "you said: " + "show info\n" * 3
