"""Basic authentication end to end (issue 18, the HariSekhon configurations): a `userlist`
with clear and SHA-512 passwords, `http_auth`/`http_auth_group` conditions,
`http-request auth` in a backend, `stats http-request deny|auth` in front of the stats page,
and a mode-tcp backend's `tcp-request content reject`. A live staplegate, curl as the client
and recording backends that show what got through."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from passlib.hash import sha512_crypt

from staplegate.testpki.pytest_plugin import Pki

from .harness import free_port, staplegate
from .test_compat_e2e import _TinyServer
from .test_http_mode_e2e import backends, started, write_config
from .test_stats_page_e2e import curl, wait_page

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
]

CONFIG = """\
userlist stats-auth
    group admin    users admin
    group readonly users haproxy
    user  admin     insecure-password test
    user  haproxy   insecure-password test

userlist elasticsearch
    user esuser password {hash}
    user other insecure-password espass
    group esgroup users esuser

listen stats
    bind 127.0.0.1:{stats}
    stats enable
    acl internal_networks src 127.0.0.2
    stats http-request deny if internal_networks
    stats uri /
    acl AUTH       http_auth(stats-auth)
    acl AUTH_ADMIN http_auth_group(stats-auth) admin
    stats http-request allow if AUTH_ADMIN
    stats http-request auth unless AUTH
    stats http-request deny

frontend elasticsearch
    bind 127.0.0.1:{port}
    default_backend elasticsearch-acl

backend elasticsearch-acl
    acl auth_ok http_auth_group(elasticsearch) esgroup
    http-request auth realm Elasticsearch unless auth_ok
    server es 127.0.0.1:{es}

frontend mysql
    mode tcp
    bind 127.0.0.1:{tcp}
    bind 127.0.0.2:{tcp}
    default_backend mysql

backend mysql
    mode tcp
    acl internal_networks src 127.0.0.1
    tcp-request content reject if ! internal_networks
    server db 127.0.0.1:{db}
"""


def test_userlists_http_auth_stats_rules_and_backend_tcp_content(tmp_path: Path, pki: Pki) -> None:
    stats, tcp = free_port(), free_port()
    db = _TinyServer(b"db")
    password_hash = sha512_crypt.using(rounds=5000).hash("espass")
    try:
        with backends("es") as (es,):
            config, port = write_config(
                tmp_path,
                pki,
                CONFIG,
                stats=stats,
                es=es.port,
                tcp=tcp,
                db=db.port,
                hash=password_hash,
            )
            # the port write_config picked is the plain elasticsearch bind's
            with staplegate(config, tmp_path / "state", workers=1) as proc:
                started(proc)
                url = f"http://127.0.0.1:{port}/_cluster/health"
                status, head, _ = curl(url)
                assert status == 401
                assert 'www-authenticate: Basic realm="Elasticsearch"' in head
                assert curl(url, "-u", "esuser:wrong")[0] == 401
                assert curl(url, "-u", "other:espass")[0] == 401  # valid, not in the group
                status, _, body = curl(url, "-u", "esuser:espass")  # SHA-512 crypt
                assert (status, body) == (200, "es /_cluster/health")
                assert curl(url, "-u", "esuser:espass")[0] == 200  # the cached verdict
                assert es.paths() == ["/_cluster/health", "/_cluster/health"]
                assert all(
                    headers["authorization"].startswith("Basic ") for _p, headers in es.requests
                )

                page = f"http://127.0.0.1:{stats}/"
                status, head, _ = curl(page)
                assert status == 401
                assert 'www-authenticate: Basic realm="HAProxy Statistics"' in head
                assert curl(page, "-u", "admin:nope")[0] == 401
                wait_page(page, "-u", "admin:test", needle="mysql")  # allow: admin group
                assert curl(page, "-u", "haproxy:test")[0] == 403  # valid: the last deny
                status, _, _ = curl(page, "-u", "admin:test", "--interface", "127.0.0.2")
                assert status == 403  # the first rule: deny from that address

                with socket.create_connection(("127.0.0.1", tcp), timeout=10) as sock:
                    sock.sendall(b"ping")
                    assert sock.recv(100) == b"db:ping"
                with socket.create_connection(
                    ("127.0.0.2", tcp), timeout=10, source_address=("127.0.0.2", 0)
                ) as sock:
                    sock.sendall(b"ping")
                    try:  # closed by the backend's rule (reset: "ping" was never read)
                        answer = sock.recv(100)
                    except ConnectionResetError:
                        answer = b""
                    assert answer == b""
                assert db.received == [b"ping"]  # the refused one never reached the server
    finally:
        db.close()
