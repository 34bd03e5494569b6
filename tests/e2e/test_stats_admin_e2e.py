"""`stats admin` end to end: a live staplegate with two workers, two recording backends, the
page's form posted with curl (HAProxy's fields), the effect on traffic over new connections,
on `show servers state`, on the page and on its `;csv` export; the denied, invalid, oversize
and slow forms."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .harness import free_port, poll, staplegate
from .test_http_mode_e2e import RecordingBackend, backends, started

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
]

CONFIG = """\
global
    log stdout format raw local0 info
    stats socket {sock} mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 2s
    timeout server 10s

frontend www
    bind 127.0.0.1:{www}
    default_backend web

listen stats
    bind 127.0.0.1:{stats}
    acl LOCAL src 127.0.0.1
    stats uri /stats
    stats admin if LOCAL

listen readonly
    bind 127.0.0.1:{readonly}
    stats uri /
    stats admin if FALSE

backend web
    balance roundrobin
    server a 127.0.0.1:{a}
    server b 127.0.0.1:{b}
"""


def ctl(sock: Path, *command: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "staplegate", "ctl", "-S", str(sock), *command],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return done.stdout


def curl(url: str, *options: str) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of one request on a new connection."""
    done = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-D", "-", "-o", "-", *options, url],
        capture_output=True,
        text=True,
        check=True,
    )
    head, _, body = done.stdout.partition("\n\n")  # text mode: CRLF read as LF
    lines = head.splitlines()
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def post(url: str, form: str) -> tuple[int, str]:
    """POST a form as the page does; (status, Location)."""
    status, headers, _ = curl(url, "--data-binary", form)
    return status, headers.get("location", "")


def admin_state(sock: Path, server: str) -> int:
    """`show servers state`'s srv_admin_state of web/<server> (1: maintenance)."""
    for line in ctl(sock, "show", "servers", "state", "web").splitlines()[2:]:
        fields = line.split()
        if fields[1] == "web" and fields[3] == server:
            return int(fields[6])
    raise AssertionError(f"no web/{server} in show servers state")


def spread(port: int, count: int, *pair: RecordingBackend) -> Counter[str]:
    """Which backend served each of `count` requests, each on a new connection."""
    before = {b.name: len(b.paths()) for b in pair}
    for _ in range(count):
        assert curl(f"http://127.0.0.1:{port}/hello")[0] == 200
    return Counter({b.name: len(b.paths()) - before[b.name] for b in pair})


def wait_page(url: str, needle: str) -> str:
    last = ""

    def page() -> str | None:
        nonlocal last
        last = curl(url)[2]
        return last if needle in last else None

    return poll(page, timeout=15, interval=0.2, failure=lambda: f"{needle!r} not in:\n{last}")


def server_row(page: str, server: str) -> str:
    at = page.index(f'<td class="name">{server}</td>')
    return page[page.rindex("<tr", 0, at) : page.index("</tr>", at)]


def test_a_server_is_put_in_maintenance_from_the_page_and_back(tmp_path: Path) -> None:
    sock = tmp_path / "admin.sock"
    www, stats, readonly = free_port(), free_port(), free_port()
    with backends("a", "b") as (a, b):
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            CONFIG.format(sock=sock, www=www, stats=stats, readonly=readonly, a=a.port, b=b.port),
            encoding="utf-8",
        )
        with staplegate(config, tmp_path / "state", workers=2) as proc:
            started(proc)
            url = f"http://127.0.0.1:{stats}/stats"
            page = wait_page(url, '<form method="post">')
            assert '<input class="web-checkbox" type="checkbox" name="s" value="a">' in page
            assert '<option value="maint">Set state to MAINT</option>' in page
            # round robin in each of two workers: 10 connections reach both servers
            assert min(spread(www, 10, a, b).values()) > 0

            # tick a, "Set state to MAINT", Apply: 303 to the page with DONE
            assert post(url, "s=a&action=maint&b=web") == (303, "/stats;st=DONE")
            assert admin_state(sock, "a") == 1
            assert admin_state(sock, "b") == 0
            # the very next page load shows it (the master re-rendered before answering)
            status, _, shown = curl(url + ";st=DONE")
            assert status == 200
            assert "Action processed successfully." in shown
            assert 'class="maint"' in server_row(shown, "a")
            assert "MAINT" in server_row(shown, "a")
            [csv_row] = [r for r in curl(url + ";csv")[2].splitlines() if r.startswith("web,a,")]
            assert csv_row.split(",")[17] == "MAINT"  # the status column
            # every worker knows: new connections all go to b
            assert spread(www, 8, a, b) == Counter(a=0, b=8)

            assert post(url, "s=a&action=ready&b=web") == (303, "/stats;st=DONE")
            assert admin_state(sock, "a") == 0
            assert min(spread(www, 10, a, b).values()) > 0

            # drain, then both at once back to ready
            assert post(url, "s=b&action=drain&b=web") == (303, "/stats;st=DONE")
            assert admin_state(sock, "b") == 8  # HAProxy's SRV_ADMF_FDRAIN
            assert post(url, "s=a&s=b&action=ready&b=web") == (303, "/stats;st=DONE")
            assert admin_state(sock, "b") == 0

            # the read-only page: no form, and a POST is denied without changing anything
            ro = f"http://127.0.0.1:{readonly}/"
            assert "<form" not in wait_page(ro, "Statistics Report")
            assert post(ro, "s=a&action=maint&b=web") == (303, "/;st=DENY")
            assert "Action denied." in curl(ro + ";st=DENY")[2]
            assert admin_state(sock, "a") == 0

            # HAProxy's codes for what cannot be done
            assert post(url, "s=a&action=explode&b=web") == (303, "/stats;st=ERRP")
            assert post(url, "s=a&action=hdown&b=web") == (303, "/stats;st=ERRP")
            assert post(url, "s=a&action=maint&b=nope") == (303, "/stats;st=ERRP")
            assert post(url, "s=zz&action=maint&b=web") == (303, "/stats;st=ERRP")
            assert post(url, "action=maint&b=web") == (303, "/stats;st=NONE")
            assert post(url, "s=a&s=zz&action=maint&b=web") == (303, "/stats;st=PART")
            assert admin_state(sock, "a") == 1
            assert post(url, "s=a&action=ready&b=web") == (303, "/stats;st=DONE")
            assert "invalid parameters" in curl(url + ";st=ERRP")[2]
            assert "stats admin on frontend stats: set server web/a state maint" in proc.output


def test_oversize_and_slow_forms_hold_nothing(tmp_path: Path) -> None:
    sock = tmp_path / "admin.sock"
    www, stats, readonly = free_port(), free_port(), free_port()
    with backends("a", "b") as (a, b):
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            CONFIG.format(sock=sock, www=www, stats=stats, readonly=readonly, a=a.port, b=b.port),
            encoding="utf-8",
        )
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            url = f"http://127.0.0.1:{stats}/stats"
            wait_page(url, '<form method="post">')
            # over 64 KiB: EXCD, nothing applied
            big = "s=a&action=maint&b=web&" + "x=" + "y" * (70 * 1024)
            assert post(url, big) == (303, "/stats;st=EXCD")
            assert admin_state(sock, "a") == 0
            # a body announced far larger is not read on: EXCD at 64 KiB, and the
            # connection closed
            with socket.create_connection(("127.0.0.1", stats), timeout=10) as huge:
                huge.sendall(
                    b"POST /stats HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"
                    + b"s=a&action=maint&b=web&x="
                    + b"y" * (80 * 1024)
                )
                answer = b""
                while chunk := huge.recv(65536):
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 303 See Other\r\n")
                assert b"\r\nlocation: /stats;st=EXCD\r\n" in answer
                assert b"\r\nconnection: close\r\n" in answer
            assert admin_state(sock, "a") == 0

            # a client that announces a form and stalls: `timeout client` (2 s) ends it,
            # and meanwhile the same single worker answers others
            with socket.create_connection(("127.0.0.1", stats), timeout=10) as slow:
                slow.sendall(
                    b"POST /stats HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                    b"Content-Type: application/x-www-form-urlencoded\r\n\r\ns=a&act"
                )
                assert post(url, "s=b&action=maint&b=web") == (303, "/stats;st=DONE")
                assert spread(www, 3, a, b) == Counter(a=3, b=0)
                answer = slow.recv(4096)
                assert answer.startswith(b"HTTP/1.1 408 ")
                assert slow.recv(4096) == b""  # closed
            assert admin_state(sock, "a") == 0
            assert admin_state(sock, "b") == 1
            assert proc.stop() == 0


def test_a_person_puts_a_server_in_maintenance_in_chromium(tmp_path: Path) -> None:
    """Headless Chromium, driven over its DevTools protocol: tick server a, choose "Set
    state to MAINT", click Apply; the browser follows the 303 and a's row is MAINT."""
    # ./dev (and so CI) installs Debian's chromium: the browser check always runs
    assert shutil.which("chromium") is not None, "install chromium (./dev setup)"
    sock = tmp_path / "admin.sock"
    www, stats, readonly = free_port(), free_port(), free_port()
    with backends("a", "b") as (a, b):
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            CONFIG.format(sock=sock, www=www, stats=stats, readonly=readonly, a=a.port, b=b.port),
            encoding="utf-8",
        )
        with staplegate(config, tmp_path / "state", workers=2) as proc:
            started(proc)
            url = f"http://127.0.0.1:{stats}/stats"
            wait_page(url, '<form method="post">')
            after = asyncio.run(_apply_in_chromium(tmp_path, url))
            assert after["location"] == url + ";st=DONE"
            assert "Action processed successfully." in after["banner"]
            assert after["row_class"] == "maint"
            assert "MAINT" in after["row_text"]
            assert admin_state(sock, "a") == 1
            assert admin_state(sock, "b") == 0


async def _apply_in_chromium(tmp_path: Path, url: str) -> dict[str, str]:
    port = free_port()
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}", f"--remote-debugging-port={port}",
    ]  # fmt: skip
    browser = subprocess.Popen(
        ["chromium", *flags, "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    try:
        async with aiohttp.ClientSession() as session:
            target = await _page_target(session, port)
            async with session.ws_connect(target, max_msg_size=0) as ws:
                numbers = itertools.count(1)

                async def call(method: str, **params: object) -> dict[str, Any]:
                    number = next(numbers)
                    await ws.send_json({"id": number, "method": method, "params": params})
                    async for message in ws:
                        data = json.loads(message.data)
                        if data.get("id") == number:
                            result: dict[str, Any] = data.get("result", {})
                            return result
                    raise AssertionError("the browser closed the DevTools connection")

                async def evaluate(expression: str) -> Any:
                    answer = await call(
                        "Runtime.evaluate", expression=expression, returnByValue=True
                    )
                    return answer.get("result", {}).get("value")

                async def until(expression: str) -> Any:
                    async with asyncio.timeout(30):
                        while not (value := await evaluate(expression)):
                            await asyncio.sleep(0.1)
                    return value

                await call("Page.navigate", url=url)
                await until("document.readyState == 'complete' && !!document.forms.length")
                # what a person does: tick a, pick the action, click Apply
                await evaluate(
                    "document.querySelector('input.web-checkbox[value=\"a\"]').click();"
                    "document.querySelector('select[name=action]').value = 'maint';"
                    "document.querySelector('input[type=submit][value=Apply]').click(); true"
                )
                await until(
                    "location.href.endsWith(';st=DONE') && document.readyState == 'complete'"
                    " && !!document.querySelector('div.banner')"
                )
                state: dict[str, str] = await evaluate(
                    "(() => { const box = document.querySelector("
                    "'input.web-checkbox[value=\"a\"]'); const row = box.closest('tr');"
                    " return {location: location.href, row_class: row.className,"
                    " row_text: row.innerText,"
                    " banner: document.querySelector('div.banner').innerText}; })()"
                )
                return state
    finally:
        browser.kill()
        browser.wait(10)


async def _page_target(session: aiohttp.ClientSession, port: int) -> str:
    """The DevTools WebSocket URL of the browser's page, once it listens."""
    async with asyncio.timeout(30):
        while True:
            try:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as answer:
                    targets = await answer.json()
            except aiohttp.ClientError:
                targets = []
            pages = [t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"]
            if pages:
                return str(pages[0])
            await asyncio.sleep(0.1)
