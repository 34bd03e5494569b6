"""The `stats` page end to end: staplegate as a subprocess with the test CA and responder,
fetched with curl over a plain bind (the page, its `;csv` export, `stats auth`), and loaded in
headless Chromium (Debian's chromium, installed by ./dev) to check what a person sees."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import free_port, poll, staplegate, wait_for_staple
from .test_http_mode_e2e import HOST, backends, started

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
]

NO_OCSP = "plain.test"  # a certificate without an OCSP URI: a red row

CONFIG = """\
global
    log stdout format raw local0 info
    ocsp-update.mode on

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend web

listen stats
    bind 127.0.0.1:{stats}
    stats enable
    stats uri /stats
    stats refresh 5s
    stats realm Staple\\ health
    stats auth admin:s3cret
    stats auth ops:other
    stats hide-version
    stats show-desc Stats for the edge pair
    http-request return status 404 content-type text/plain string nothing-here if {{ path /x }}

backend web
    server a 127.0.0.1:{a}
"""


def write_config(tmp_path: Path, pki: Pki, **values: int) -> tuple[Path, int]:
    issued = pki.issued.get(HOST) or pki.issue(HOST)
    plain = pki.issued.get(NO_OCSP) or pki.issue(NO_OCSP, ocsp_url=None)
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text(
        f"{issued.bundle_path} {HOST}\n{plain.bundle_path} {NO_OCSP}\n", encoding="utf-8"
    )
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(port=port, crt_list=crt_list, **values), encoding="utf-8")
    return config, port


def curl(url: str, *options: str) -> tuple[int, str, str]:
    """(status, headers, body) of one GET."""
    done = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-D", "-", "-o", "-", *options, url],
        capture_output=True,
        text=True,
        check=True,
    )
    head, _, body = done.stdout.partition("\n\n")  # text mode: CRLF read as LF
    return int(head.split()[1]), head, body


def wait_page(url: str, *options: str, needle: str) -> str:
    last: tuple[int, str, str] = (0, "", "")

    def page() -> str | None:
        nonlocal last
        last = curl(url, *options)
        return last[2] if last[0] == 200 and needle in last[2] else None

    return poll(
        page,
        timeout=15,
        interval=0.3,
        failure=lambda: f"{needle!r} never appeared ({last[0]}):\n{last[2]}",
    )


def test_the_stats_page_with_auth_certificates_and_csv(tmp_path: Path, pki: Pki) -> None:
    stats = free_port()
    with backends("a") as (a,):
        config, port = write_config(tmp_path, pki, a=a.port, stats=stats)
        stapled = str(pki.issued[HOST].bundle_path)
        plain = str(pki.issued[NO_OCSP].bundle_path)
        with staplegate(config, tmp_path / "state", workers=2) as proc:
            started(proc)
            wait_for_staple(port, HOST)
            url = f"http://127.0.0.1:{stats}/stats"
            status, head, _ = curl(url)
            assert status == 401
            assert 'www-authenticate: Basic realm="Staple health"' in head
            assert curl(url, "-u", "admin:wrong")[0] == 401
            assert curl(url, "-u", "nobody:s3cret")[0] == 401
            page = wait_page(url, "-u", "ops:other", needle='<tr class="ok">')
            assert '<meta http-equiv="refresh" content="5">' in page
            assert stapled in page
            assert plain in page
            assert "no_ocsp_uri" in page
            # most urgent first: the certificate without OCSP comes before the stapled one
            assert page.index(plain) < page.index(stapled)
            assert "staplegate " not in page.split("</title>")[0]  # stats hide-version
            assert "Description: Stats for the edge pair" in page  # stats show-desc
            status, head, csv = curl(url + ";csv", "-u", "admin:s3cret")
            assert status == 200
            assert "text/plain" in head
            assert csv.startswith("# pxname,svname,")
            assert "\nwww,FRONTEND," in csv
            assert "\nweb,a," in csv
            # the rest of the frontend still answers as configured
            assert curl(f"http://127.0.0.1:{stats}/x")[0] == 404
            # ./dev (and so CI) installs Debian's chromium: the browser check always runs
            assert shutil.which("chromium") is not None, "install chromium (./dev setup)"
            _browser_sees_it(tmp_path, stats, plain)


def _browser_sees_it(tmp_path: Path, stats: int, plain: str) -> None:
    """Headless Chromium loads the page (credentials in the URL) and shows the red row."""
    url = f"http://admin:s3cret@127.0.0.1:{stats}/stats"
    flags = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--window-size=1280,900",
    ]
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run(
        [*flags, "--dump-dom", url], capture_output=True, text=True, timeout=60, env=env
    ).stdout
    assert "Certificates" in dom
    row = dom[dom.rindex("<tr", 0, dom.index(plain)) : dom.index(plain)]
    assert 'class="failing"' in row
    screenshot = tmp_path / "stats-page.png"
    subprocess.run(
        [*flags, f"--screenshot={screenshot}", url],
        capture_output=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert screenshot.read_bytes().startswith(base64.b64decode("iVBORw0KGgo="))  # a PNG
    keep = os.environ.get("STAPLEGATE_KEEP_SCREENSHOT")
    if keep:
        shutil.copyfile(screenshot, keep)
