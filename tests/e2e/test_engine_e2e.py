"""The OCSP engine's promises, end to end through a running `staplegate -f CFG`.

First fetch right after start, refresh on schedule (`ocsp-update.mindelay 1`/`maxdelay 2`),
revocation picked up at the next refresh, the last good staple kept through a fault, 200
certificates all stapled, and expiry/withdrawal without sleeping: `STAPLEGATE_CLOCK_OFFSET`
moves staplegate's clock (read once at start by `SystemClock`).

Two responders: `staplegate responder` (the `pki` fixture, in-process) and the real `openssl
ocsp` in its one-shot form (`-reqin/-respout`) behind a small aiohttp server on 127.0.0.1 —
never `openssl ocsp -port`. Clients are `openssl s_client -status`.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest
from aiohttp import web

from staplegate.testpki.ca import CertificateAuthority, IssuedCertificate
from staplegate.testpki.faults import FaultKind
from staplegate.testpki.pytest_plugin import Pki

from .harness import free_port, s_client_status, staplegate, wait_for_output, wait_for_staple

pytestmark = [pytest.mark.slow, pytest.mark.openssl]

CONFIG = """\
global
    log stdout format raw local0 info
    ocsp-update.mode on
{extra}

defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend web

backend web
    server web1 127.0.0.1:9
"""

FAST_SCHEDULE = "    ocsp-update.mindelay 1\n    ocsp-update.maxdelay 2"
NO_STAPLE = "OCSP response: no response sent"


def write_config(
    tmp_path: Path, leaves: list[IssuedCertificate], *, extra: str = ""
) -> tuple[Path, int]:
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text(
        "".join(f"{leaf.bundle_path} {leaf.name}\n" for leaf in leaves), encoding="utf-8"
    )
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(port=port, crt_list=crt_list, extra=extra), encoding="utf-8")
    return config, port


def success(leaf: IssuedCertificate, failures: int = 0, successes: int = 1) -> str:
    path = str(leaf.bundle_path).replace(".", r"\.")
    return rf'<OCSP-UPDATE> {path} 1 "Update successful" {failures} {successes}$'


def wait_for_status(port: int, name: str, status: str, *, timeout: float = 15.0) -> str:
    """Poll fresh handshakes until the staple says `status` (good/revoked)."""
    return wait_for_output(
        lambda: s_client_status(port, name),
        f"Cert Status: {status}",
        timeout=timeout,
        failure=f"no {status} staple within {timeout}s",
    )


# --- the real openssl ocsp responder, one-shot, behind aiohttp on 127.0.0.1 ---


@dataclass
class OpensslResponder:
    """`openssl ocsp -reqin/-respout` per request; reads index.txt afresh every time."""

    ca: CertificateAuthority
    signer_cert: Path
    signer_key: Path
    work: Path
    url: str = ""
    requests: int = 0

    def answer(self, request_der: bytes) -> bytes:
        with tempfile.TemporaryDirectory(dir=self.work) as scratch:
            request, response = Path(scratch) / "req.der", Path(scratch) / "resp.der"
            request.write_bytes(request_der)
            subprocess.run(
                [
                    "openssl", "ocsp", "-index", str(self.ca.index_path),
                    "-CA", str(self.ca.ca_cert_path), "-rsigner", str(self.signer_cert),
                    "-rkey", str(self.signer_key), "-reqin", str(request),
                    "-respout", str(response), "-ndays", "1",
                ],
                check=True,
                capture_output=True,
                timeout=20,
            )  # fmt: skip
            return response.read_bytes()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if request.method == "POST":
            request_der = await request.read()
        else:
            request_der = base64.b64decode(unquote(request.raw_path.rsplit("/", 1)[1]))
        body = await asyncio.to_thread(self.answer, request_der)
        return web.Response(body=body, headers={"Content-Type": "application/ocsp-response"})


@contextmanager
def openssl_responder(tmp_path: Path) -> Iterator[OpensslResponder]:
    ca = CertificateAuthority.init(tmp_path / "openssl-ca", ocsp_url=None)
    signer = ca.ocsp_signer()
    work = tmp_path / "openssl-work"
    work.mkdir()
    state = OpensslResponder(ca, signer.cert_path, signer.key_path, work)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner_box: list[web.AppRunner] = []

    async def start() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", state.handle)
        runner = web.AppRunner(app, shutdown_timeout=1.0)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        state.url = f"http://127.0.0.1:{port}"
        runner_box.append(runner)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    ca.set_default_ocsp_url(state.url)
    try:
        yield state
    finally:
        asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@dataclass
class Responders:
    """Issue and revoke through whichever responder a test is parametrized with."""

    issue: Callable[[str], IssuedCertificate]
    revoke: Callable[[str], object]
    requests: Callable[[], int]


@pytest.fixture(params=["staplegate-responder", "openssl-ocsp"])
def responders(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Responders]:
    if request.param == "staplegate-responder":
        pki: Pki = request.getfixturevalue("pki")
        yield Responders(
            issue=pki.issue,
            revoke=lambda name: pki.revoke(name, reason="keyCompromise"),
            requests=lambda: len(pki.responder.requests),
        )
        return
    with openssl_responder(tmp_path) as server:
        yield Responders(
            issue=lambda name: server.ca.issue(name),
            revoke=lambda name: server.ca.revoke(name, reason="keyCompromise"),
            requests=lambda: server.requests,
        )


# --- tests ---


def test_first_fetch_at_start_then_refresh_on_schedule(
    tmp_path: Path, responders: Responders
) -> None:
    leaf = responders.issue("www.example.test")
    config, port = write_config(tmp_path, [leaf], extra=FAST_SCHEDULE)
    with staplegate(config, tmp_path / "state") as proc:
        proc.wait_for(success(leaf, 0, 1), timeout=10)
        assert "Cert Status: good" in wait_for_staple(port, "www.example.test")
        # maxdelay 2: the next refresh within a few seconds, then another
        proc.wait_for(success(leaf, 0, 2), timeout=6)
        proc.wait_for(success(leaf, 0, 3), timeout=6)
        assert responders.requests() >= 3
        assert proc.stop() == 0


def test_revocation_is_stapled_at_the_next_refresh(tmp_path: Path, responders: Responders) -> None:
    leaf = responders.issue("www.example.test")
    runs = tmp_path / "hook-runs"
    # single quotes: HAProxy's syntax expands "$VARS" itself; the shell must see this one
    hook = f"    ocsp-update.revoked-hook 'echo $STAPLEGATE_REVOCATION_SOURCE >> {runs}'"
    config, port = write_config(tmp_path, [leaf], extra=FAST_SCHEDULE + "\n" + hook)
    with staplegate(config, tmp_path / "state") as proc:
        proc.wait_for(success(leaf, 0, 1), timeout=10)
        wait_for_status(port, "www.example.test", "good")
        responders.revoke("www.example.test")
        output = wait_for_status(port, "www.example.test", "revoked", timeout=10)
        assert "Revocation Reason: keyCompromise" in output
        proc.wait_for(r"www\.example\.test\.pem: certificate serial [0-9A-F]+ is REVOKED")
        proc.wait_for(r"revoked-hook for .*www\.example\.test\.pem \(revoked\) done in")
        # maxdelay 2: the responder says `revoked` again at each refresh; the hook ran once
        proc.wait_for(success(leaf, 0, 4), timeout=10)
        assert runs.read_text() == "ocsp\n"
        assert proc.stop() == 0


def test_a_failing_refresh_keeps_the_previous_staple(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.issue("www.example.test")
    config, port = write_config(tmp_path, [leaf], extra=FAST_SCHEDULE)
    with staplegate(config, tmp_path / "state") as proc:
        proc.wait_for(success(leaf, 0, 1), timeout=10)
        before = wait_for_status(port, "www.example.test", "good")
        this_update = next(line for line in before.splitlines() if "This Update:" in line)
        [stored] = (tmp_path / "state").glob("*.ocsp")
        stored_bytes = stored.read_bytes()
        pki.responder.set_fault(FaultKind.HTTP_500)
        path = str(leaf.bundle_path).replace(".", r"\.")
        proc.wait_for(rf'<OCSP-UPDATE> {path} 2 "HTTP error \(HTTP 500 from .*\)" 1 1$', timeout=8)
        after = s_client_status(port, "www.example.test")
        assert "Cert Status: good" in after
        assert this_update in after  # the very same response is still served
        assert stored.read_bytes() == stored_bytes
        pki.responder.clear_faults()
        proc.wait_for(success(leaf, 1, 2), timeout=8)  # and it recovers on schedule
        assert proc.stop() == 0


def test_two_hundred_certificates_all_get_a_staple(tmp_path: Path, pki: Pki) -> None:
    leaves = [pki.issue(f"host{i:03d}.example.test") for i in range(200)]
    config, port = write_config(tmp_path, leaves)
    with staplegate(config, tmp_path / "state", workers=1) as proc:
        lines = proc.wait_for(r'<OCSP-UPDATE> .* 1 "Update successful" 0 1$', count=200, timeout=60)
        assert len({line.split()[1] for line in lines}) == 200
        for leaf in (leaves[0], leaves[99], leaves[-1]):
            output = wait_for_staple(port, leaf.name)
            assert "Cert Status: good" in output
            assert f"subject=CN = {leaf.name}" in output
        assert proc.stop() == 0
    assert len(list((tmp_path / "state").glob("*.ocsp"))) == 200


# --- time travel with STAPLEGATE_CLOCK_OFFSET (validity of the pki fixture: 1 hour) ---


def test_a_persisted_staple_past_its_expiry_is_neither_served_nor_refetched(
    tmp_path: Path, pki: Pki
) -> None:
    leaf = pki.issue("www.example.test")
    config, port = write_config(tmp_path, [leaf])
    with staplegate(config, tmp_path / "state") as proc:
        proc.wait_for(success(leaf, 0, 1), timeout=10)
        assert proc.stop() == 0
    [stored] = (tmp_path / "state").glob("*.ocsp")
    stored_bytes = stored.read_bytes()
    pki.responder.stop()
    requests = len(pki.responder.requests)
    # nextUpdate is 3600 s after the fetch: 3400 s later, "now" is past nextUpdate - 300 s
    with staplegate(config, tmp_path / "state", env={"STAPLEGATE_CLOCK_OFFSET": "3400"}) as proc:
        proc.wait_for(
            r"www\.example\.test\.pem: Loading: .*no longer valid.*Content will be ignored"
        )
        proc.wait_for(r"staplegate started")
        assert NO_STAPLE in s_client_status(port, "www.example.test")
        proc.wait_for(r'<OCSP-UPDATE> .*www\.example\.test\.pem 2 "HTTP error', timeout=15)
        assert NO_STAPLE in s_client_status(port, "www.example.test")
        assert proc.stop() == 0
    assert len(pki.responder.requests) == requests  # the responder was down: nothing fetched
    assert stored.read_bytes() == stored_bytes


def test_a_served_staple_is_withdrawn_at_next_update_minus_300s(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.issue("www.example.test")
    config, port = write_config(tmp_path, [leaf], extra=FAST_SCHEDULE)
    # 3292 s ahead: a fresh 1-hour response has 8 s left before nextUpdate - 300 s
    with staplegate(config, tmp_path / "state", env={"STAPLEGATE_CLOCK_OFFSET": "3292"}) as proc:
        proc.wait_for(success(leaf, 0, 1), timeout=10)
        pki.responder.set_fault(FaultKind.HTTP_500)  # no newer response from now on
        assert "Cert Status: good" in wait_for_staple(port, "www.example.test", timeout=5)
        proc.wait_for(r"www\.example\.test\.pem: OCSP staple withdrawn", timeout=20)
        output = wait_for_no_staple(port, "www.example.test")
        assert NO_STAPLE in output
        assert proc.stop() == 0


def wait_for_no_staple(port: int, name: str, *, timeout: float = 10.0) -> str:
    return wait_for_output(
        lambda: s_client_status(port, name),
        NO_STAPLE,
        timeout=timeout,
        failure=f"staple still served after {timeout}s",
    )


def test_clock_offset_is_read_once_at_start(tmp_path: Path, pki: Pki) -> None:
    """A too-short response for the offset clock is refused at fetch time, as HAProxy would."""
    leaf = pki.issue("www.example.test")
    config, port = write_config(tmp_path, [leaf])
    with staplegate(config, tmp_path / "state", env={"STAPLEGATE_CLOCK_OFFSET": "3400"}) as proc:
        path = str(leaf.bundle_path).replace(".", r"\.")
        proc.wait_for(
            rf'<OCSP-UPDATE> {path} 5 "Error during insertion \(OCSP single response: no longer '
            r'valid\. Must be valid during at least 300s\.\)" 1 0$',
            timeout=10,
        )
        assert NO_STAPLE in s_client_status(port, "www.example.test")
        assert proc.stop() == 0
    assert not list((tmp_path / "state").glob("*.ocsp"))


# --- staplegate's own fetch knobs: ocsp-update.rate-limit and ocsp-update.maxconn ---


def _seconds_between_first_and_last_fetch(
    tmp_path: Path, pki: Pki, leaves: list[IssuedCertificate], extra: str
) -> float:
    """Start staplegate; time from the 1st to the last `Update successful` line."""
    config, _port = write_config(tmp_path, leaves, extra=extra)
    with staplegate(config, tmp_path / "state", workers=1) as proc:
        proc.wait_for(r'"Update successful" 0 1$', count=1, timeout=30)
        first = time.monotonic()
        proc.wait_for(r'"Update successful" 0 1$', count=len(leaves), timeout=30)
        elapsed = time.monotonic() - first
        assert proc.stop() == 0
    assert len(pki.responder.requests) == len(leaves)
    return elapsed


def test_rate_limit_spaces_requests_to_one_responder(tmp_path: Path, pki: Pki) -> None:
    leaves = [pki.issue(f"rate{i:02d}.example.test") for i in range(12)]
    # a burst of 4, then 4 per second: the 12th request goes out 2 s after the first
    elapsed = _seconds_between_first_and_last_fetch(
        tmp_path, pki, leaves, "    ocsp-update.rate-limit 4"
    )
    assert elapsed >= 1.6


def test_maxconn_bounds_the_requests_in_flight(tmp_path: Path, pki: Pki) -> None:
    leaves = [pki.issue(f"conn{i:02d}.example.test") for i in range(8)]
    pki.responder.set_fault(FaultKind.DELAY, seconds=0.3)
    # one at a time, 0.3 s each: the 8th answer comes 2.1 s after the first
    elapsed = _seconds_between_first_and_last_fetch(
        tmp_path, pki, leaves, "    ocsp-update.maxconn 1"
    )
    assert elapsed >= 1.8
