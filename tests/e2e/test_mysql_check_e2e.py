"""`option mysql-check` end to end (HariSekhon's MySQL balancer, issue 18) against Debian's
real MariaDB: the check without a user (the handshake) and with a passwordless check user
keep the server up (with `fall 1`, through every check that runs until the refused user is
created); a user the server refuses takes it down with MariaDB's own message, and back up
once the server accepts it. HAProxy 2.6 gives the same verdicts and messages against such a
server."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki
from tests.mariadb_server import MariaDbServer

from .harness import staplegate
from .test_http_mode_e2e import started, write_config

pytestmark = pytest.mark.slow

MYSQL = """\
frontend mysql
    mode tcp
    bind 127.0.0.1:{port}
    default_backend mysql

backend mysql
    mode tcp
    balance first
    acl internal_networks src 127.0.0.1
    tcp-request content reject if ! internal_networks
    option mysql-check
    server mariadb 127.0.0.1:{db} check inter 200ms fall 1

backend checked_user
    mode tcp
    option mysql-check user haproxy_check post-41
    server with_user 127.0.0.1:{db} check inter 200ms fall 1

backend refused_user
    mode tcp
    option mysql-check user nobody
    server refused 127.0.0.1:{db} check inter 200ms rise 1 fall 1
"""


def test_mysql_check_against_mariadb(
    tmp_path: Path, pki: Pki, mariadb_server: MariaDbServer
) -> None:
    mariadb_server.sql("CREATE USER 'haproxy_check'@'127.0.0.1';")
    config, port = write_config(tmp_path, pki, MYSQL, db=mariadb_server.port)
    with staplegate(config, tmp_path / "state", workers=1) as proc:
        started(proc)
        proc.wait_for(
            r"Server refused_user/refused is DOWN, reason: Layer7 wrong status, code: 1045, "
            r"info: \"#28000Access denied for user 'nobody'@'127.0.0.1' \(using password: NO\)\""
        )
        mariadb_server.sql("CREATE USER 'nobody'@'127.0.0.1';")  # now the server lets it in
        proc.wait_for(r"Server refused_user/refused is UP")  # several checks ran meanwhile
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            greeting = sock.recv(200)  # MariaDB's handshake, through staplegate
        assert greeting[4:5] == b"\x0a"  # protocol version 10
        assert b"MariaDB" in greeting
        log = "\n".join(proc.lines)
        assert "mysql/mariadb is DOWN" not in log
        assert "checked_user/with_user is DOWN" not in log
