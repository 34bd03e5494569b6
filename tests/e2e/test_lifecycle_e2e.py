"""Reload, stop and systemd notification, as an operator sees them: nothing dropped or refetched."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from OpenSSL import SSL

from staplegate.testpki.pytest_plugin import Pki

from .harness import (
    free_port,
    http_backend,
    pyopenssl_staple,
    s_client_status,
    staplegate,
    wait_for_staple,
)

pytestmark = pytest.mark.slow

CONFIG = """\
global
    log stdout format raw local0 info
    ocsp-update.mode on
    hard-stop-after 10s

defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend web

backend web
    server web1 127.0.0.1:{backend}
"""

UPDATED = r'1 "Update successful"'


def write_config(tmp_path: Path, pki: Pki, backend: int, port: int, *names: str) -> Path:
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text(
        "".join(f"{pki.issued[name].bundle_path} {name}\n" for name in names), encoding="utf-8"
    )
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        CONFIG.format(port=port, crt_list=crt_list, backend=backend), encoding="utf-8"
    )
    return config


def stapled_request(port: int, servername: str) -> bytes:
    """One full handshake asking for a staple, then one HTTP request; returns the staple."""
    request = b"GET / HTTP/1.0\r\nHost: " + servername.encode() + b"\r\n\r\n"
    return pyopenssl_staple(port, servername, request=request)


def test_twenty_reloads_under_load_drop_nothing_and_always_staple(tmp_path: Path, pki: Pki) -> None:
    pki.issue("www.example.test")
    port = free_port()
    with http_backend() as backend:
        config = write_config(tmp_path, pki, backend, port, "www.example.test")
        with staplegate(config, tmp_path / "state", workers=2) as proc:
            proc.wait_for(UPDATED)
            wait_for_staple(port, "www.example.test")
            failures: list[str] = []
            done = threading.Event()
            counts = [0, 0, 0]

            def client(index: int) -> None:
                while not done.is_set():
                    try:
                        staple = stapled_request(port, "www.example.test")
                    except Exception as error:  # every failure is a test failure
                        failures.append(f"{type(error).__name__}: {error}")
                        continue
                    if not staple:
                        failures.append("handshake without a staple")
                    counts[index] += 1

            threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
            for thread in threads:
                thread.start()
            try:
                for number in range(2, 22):
                    proc.process.send_signal(signal.SIGUSR2)
                    proc.wait_for(rf"reload: generation {number} serving", timeout=30)
            finally:
                done.set()
                for thread in threads:
                    thread.join(30)
            assert not failures, failures[:5]
            assert sum(counts) > 100
            assert len(proc.worker_pids()) >= 2
            assert proc.stop() == 0
    # one fetch for the one certificate, whatever the number of reloads
    assert len(proc.wait_for(UPDATED)) == 1


def test_reload_with_responder_down_keeps_staples_and_fetches_only_new_certificates(
    tmp_path: Path, pki: Pki
) -> None:
    pki.issue("www.example.test")
    pki.issue("api.example.test")
    port = free_port()
    with http_backend() as backend:
        config = write_config(tmp_path, pki, backend, port, "www.example.test")
        with staplegate(config, tmp_path / "state") as proc:
            proc.wait_for(UPDATED)
            before = len(pki.responder.requests)
            pki.responder.stop()
            write_config(tmp_path, pki, backend, port, "www.example.test")
            proc.process.send_signal(signal.SIGHUP)
            proc.wait_for("reload: generation 2 serving")
            assert "Cert Status: good" in s_client_status(port, "www.example.test")
            # a new certificate in the next reload is fetched; the old one is not
            pki.responder.start()
            write_config(tmp_path, pki, backend, port, "www.example.test", "api.example.test")
            proc.process.send_signal(signal.SIGUSR2)
            proc.wait_for("reload: generation 3 serving")
            proc.wait_for(r'api\.example\.test\.pem 1 "Update successful" 0 1')
            wait_for_staple(port, "api.example.test")
            assert len(proc.wait_for(r"www\.example\.test\.pem 1 \"Update")) == 1
            assert len(pki.responder.requests) == before + 1
            assert proc.stop() == 0


def test_broken_reload_keeps_the_old_configuration_serving(tmp_path: Path, pki: Pki) -> None:
    pki.issue("www.example.test")
    port = free_port()
    with http_backend() as backend:
        config = write_config(tmp_path, pki, backend, port, "www.example.test")
        with staplegate(config, tmp_path / "state") as proc:
            proc.wait_for(UPDATED)
            good = config.read_text()
            config.write_text(good.replace("default_backend web", "default_backend nowhere"))
            proc.process.send_signal(signal.SIGUSR2)
            failed = proc.wait_for("reload failed, still serving generation 1")
            assert failed
            assert proc.wait_for(rf"reload: \[ALERT\] config : parsing \[{config}:\d+\]")
            assert "nowhere" in proc.output
            assert "Cert Status: good" in s_client_status(port, "www.example.test")
            config.write_text(good)
            proc.process.send_signal(signal.SIGUSR2)
            proc.wait_for("reload: generation 2 serving")
            assert proc.stop() == 0


def test_pidfile_reload_command_and_sf_refusal(tmp_path: Path, pki: Pki) -> None:
    pki.issue("www.example.test")
    port = free_port()
    pidfile = tmp_path / "staplegate.pid"
    with http_backend() as backend:
        config = write_config(tmp_path, pki, backend, port, "www.example.test")
        proc_args = ["-p", str(pidfile)]
        with staplegate(config, tmp_path / "state", extra_args=proc_args) as proc:
            proc.wait_for("staplegate started")
            assert int(pidfile.read_text()) == proc.process.pid
            reload = subprocess.run(
                [sys.executable, "-m", "staplegate", "reload", "-p", str(pidfile)],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert reload.returncode == 0, reload.stderr
            proc.wait_for("reload: generation 2 serving")
            assert proc.stop() == 0
        assert not pidfile.exists()
    refused = subprocess.run(
        [sys.executable, "-m", "staplegate", "-f", str(config), "-sf", "1234"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "-sf/-st" in refused.stderr


def test_systemd_notifications_arrive_in_order(
    tmp_path: Path, pki_factory: Callable[..., Pki]
) -> None:
    pki = pki_factory()
    pki.issue("www.example.test")
    port = free_port()
    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(20)
    try:
        with http_backend() as backend:
            config = write_config(tmp_path, pki, backend, port, "www.example.test")
            env = {"NOTIFY_SOCKET": str(notify_path)}
            with staplegate(config, tmp_path / "state", env=env) as proc:
                assert listener.recv(4096) == b"READY=1"
                proc.process.send_signal(signal.SIGUSR2)
                reloading = listener.recv(4096)
                assert reloading.startswith(b"RELOADING=1\nMONOTONIC_USEC=")
                assert listener.recv(4096) == b"READY=1"
                proc.process.send_signal(signal.SIGTERM)
                assert listener.recv(4096) == b"STOPPING=1"
                try:
                    assert proc.stop() == 0
                except BaseException:
                    print("staplegate output:\n" + proc.output)  # pytest shows it on failure
                    raise
    finally:
        listener.close()


def test_sigterm_drains_an_open_connection(tmp_path: Path, pki: Pki) -> None:
    pki.issue("www.example.test")
    port = free_port()
    with http_backend() as backend:
        config = write_config(tmp_path, pki, backend, port, "www.example.test")
        with staplegate(config, tmp_path / "state") as proc:
            proc.wait_for(UPDATED)
            context = SSL.Context(SSL.TLS_CLIENT_METHOD)
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            raw.settimeout(None)
            conn = SSL.Connection(context, raw)
            conn.set_tlsext_host_name(b"www.example.test")
            conn.set_connect_state()
            conn.do_handshake()
            proc.process.send_signal(signal.SIGTERM)
            proc.wait_for("stopping gracefully")
            # the connection opened before the stop still works
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert conn.recv(100).startswith(b"HTTP/1.0 200")
            raw.close()
            assert proc.stop() == 0
            assert os.path.exists(tmp_path / "state")
