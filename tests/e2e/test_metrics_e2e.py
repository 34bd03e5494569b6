"""`http-request use-service prometheus-exporter` end to end: staplegate as a subprocess with
the test CA and responder, scraped with curl over a plain bind; counters across a reload."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import free_port, staplegate, wait_for_staple
from .test_http_mode_e2e import HOST, backends, get, started

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
]

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

frontend stats
    bind 127.0.0.1:{metrics}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    http-request return status 404 content-type text/plain string nothing-here

backend web
    server a 127.0.0.1:{a}
"""


def write_config(tmp_path: Path, pki: Pki, **values: int) -> tuple[Path, int]:
    issued = pki.issued.get(HOST) or pki.issue(HOST)
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text(f"{issued.bundle_path} {HOST}\n", encoding="utf-8")
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(port=port, crt_list=crt_list, **values), encoding="utf-8")
    return config, port


def scrape(port: int) -> str:
    done = subprocess.run(
        ["curl", "-sS", "--max-time", "10", f"http://127.0.0.1:{port}/metrics"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def value(text: str, name: str, **labels: str) -> float:
    """The sample `name{labels...}` (labels in any order, others allowed)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{val}"' in line for key, val in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} {labels} in:\n{text}")


def wait_value(port: int, name: str, at_least: float, **labels: str) -> str:
    deadline = time.monotonic() + 15
    while True:
        text = scrape(port)
        try:
            if value(text, name, **labels) >= at_least:
                return text
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} {labels} stayed below {at_least}:\n{text}")
        time.sleep(0.3)


def test_metrics_show_staples_and_sessions_across_a_reload(tmp_path: Path, pki: Pki) -> None:
    metrics = free_port()
    with backends("a") as (a,):
        config, port = write_config(tmp_path, pki, a=a.port, metrics=metrics)
        certificate = str(pki.issued[HOST].bundle_path)
        with staplegate(config, tmp_path / "state", workers=2) as proc:
            started(proc)
            wait_for_staple(port, HOST)
            text = wait_value(metrics, "staplegate_ocsp_stapled", 1, certificate=certificate)
            assert (
                value(
                    text, "staplegate_ocsp_response_status", certificate=certificate, status="good"
                )
                == 1
            )
            assert (
                value(
                    text,
                    "staplegate_ocsp_response_status",
                    certificate=certificate,
                    status="revoked",
                )
                == 0
            )
            now = time.time()
            this_update = value(
                text,
                "staplegate_ocsp_response_this_update_timestamp_seconds",
                certificate=certificate,
            )
            next_update = value(
                text,
                "staplegate_ocsp_response_next_update_timestamp_seconds",
                certificate=certificate,
            )
            assert this_update <= now + 60 < next_update
            assert (
                value(
                    text, "staplegate_ocsp_updates_total", certificate=certificate, result="success"
                )
                >= 1
            )
            assert (
                value(
                    text,
                    "staplegate_certificate_not_after_timestamp_seconds",
                    certificate=certificate,
                )
                > now
            )
            assert 'haproxy_process_build_info{version="' in text
            assert "# TYPE haproxy_frontend_sessions_total counter" in text

            for _ in range(5):
                assert get(port, pki)[0] == 200
            text = wait_value(metrics, "haproxy_frontend_sessions_total", 5, proxy="www")
            assert (
                value(text, "haproxy_frontend_http_responses_total", proxy="www", code="2xx") >= 5
            )
            assert value(text, "haproxy_server_sessions_total", proxy="web", server="a") >= 5
            # wait_for_staple's s_client asked for a staple and got one
            assert (
                value(text, "staplegate_tls_handshakes_total", frontend="www", staple="sent") >= 1
            )
            assert (
                value(
                    text, "staplegate_tls_handshakes_total", frontend="www", staple="not_requested"
                )
                >= 5
            )
            before = value(text, "haproxy_frontend_sessions_total", proxy="www")
            # the scrapes themselves are sessions of the stats frontend
            assert value(text, "haproxy_frontend_sessions_total", proxy="stats") >= 1

            proc.process.send_signal(signal.SIGUSR2)
            proc.wait_for("reload: generation 2 serving")
            proc.wait_for(r"worker #\d \(\d+\) exited", count=2)
            # the old workers are gone: their counters live on in the totals
            for _ in range(10):
                after = value(scrape(metrics), "haproxy_frontend_sessions_total", proxy="www")
                assert after >= before
                time.sleep(0.1)
            assert get(port, pki)[0] == 200
            wait_value(metrics, "haproxy_frontend_sessions_total", before + 1, proxy="www")
            assert get_status(metrics, "/other") == 404


def get_status(port: int, path: str) -> int:
    done = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)
