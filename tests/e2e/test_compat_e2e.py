"""Load-balancer keywords of the real-world corpus end to end (issue 18): a live
staplegate, a real TLS client, real backends recording what they receive.

`http-check send` (Kazoo's CouchDB balancer, the OCSP-stapling demo), `option forwardfor
except` (the RHEL default), `monitor-uri` with `monitor fail` on `nbsrv` (Cloud Foundry),
`server … port` (Patroni), `balance random` (HAProxy's quick-test example), cookie
persistence (socket.io) and SNI/ALPN passthrough with `tcp-request content` (TLS muxes).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import free_port, poll, staplegate
from .test_http_mode_e2e import HOST, backends, connect, get, started, write_config

pytestmark = pytest.mark.slow

CONFIG = """\
backend checked
    option httpchk
    http-check send meth GET uri /check-me ver HTTP/1.1 hdr Host svc.example.test \
        hdr X-Check yes
    http-check expect status 200
    server a 127.0.0.1:{checked} check inter 200ms

backend plain
    server p 127.0.0.1:{plain}

frontend local_excepted
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    option forwardfor except 127.0.0.0/8
    default_backend plain

frontend others_excepted
    bind 127.0.0.1:{second} ssl crt-list {crt_list}
    option forwardfor except 10.0.0.0/8 header X-Client
    default_backend plain

frontend acme_envvars
    bind 127.0.0.1:{third} ssl crt-list {crt_list}
    option forwardfor if-none
    http-request return status 200 content-type text/plain \
        lf-string "%[path,field(-1,/)].thumbprint" if {{ path_beg /.well-known/acme-challenge/ }}
    default_backend plain
"""


def test_http_check_send_and_forwardfor_except(tmp_path: Path, pki: Pki) -> None:
    second, third = free_port(), free_port()
    with backends("checked", "plain") as (checked, plain):
        config, port = write_config(
            tmp_path,
            pki,
            CONFIG,
            checked=checked.port,
            plain=plain.port,
            second=second,
            third=third,
        )
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)

            def check_seen() -> dict[str, str] | None:
                with checked.lock:
                    for path, headers in checked.requests:
                        if path == "/check-me":
                            return headers
                return None

            headers = poll(
                check_seen, timeout=10, failure=lambda: f"no check request: {checked.requests}"
            )
            assert headers["host"] == "svc.example.test"
            assert headers["x-check"] == "yes"
            assert get(port, pki, "/one")[:2] == (200, b"plain /one")
            assert get(second, pki, "/two")[:2] == (200, b"plain /two")
            (_, first_headers), (_, second_headers) = plain.requests
            assert "x-forwarded-for" not in first_headers  # the client is in 127.0.0.0/8
            assert second_headers["x-client"] == "127.0.0.1"
            assert first_headers["host"] == HOST
            # if-none: a header the client sent is kept, else ours is added
            assert get(third, pki, "/kept", {"X-Forwarded-For": "198.51.100.7"})[0] == 200
            assert get(third, pki, "/added")[0] == 200
            assert [h["x-forwarded-for"] for _, h in plain.requests[2:]] == [
                "198.51.100.7",
                "127.0.0.1",
            ]
            # the ACME http-01 answer of docker-haproxy-acme: the token's last path field
            challenge = "/.well-known/acme-challenge/t0k3n"
            assert get(third, pki, challenge)[:2] == (200, b"t0k3n.thumbprint")


MONITOR = """\
backend web
    option httpchk GET /health
    server w 127.0.0.1:{web} check inter 100ms rise 1 fall 1

backend sorry
    server s 127.0.0.1:{sorry}

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    monitor-uri /healthz
    acl web_down nbsrv(web) lt 1
    monitor fail if web_down
    use_backend sorry if {{ nbsrv(web) eq 0 }}
    default_backend web
"""

MONITOR_OK = b"<html><body><h1>200 OK</h1>\nService ready.\n</body></html>\n"


def test_monitor_uri_and_monitor_fail_on_nbsrv(tmp_path: Path, pki: Pki) -> None:
    """An outer balancer's probe: 200 while `web` has a usable server, 503 (and requests
    routed to `sorry`, decided per request on a kept-alive connection) once it has none."""
    with backends("web", "sorry") as (web, sorry):
        config, port = write_config(tmp_path, pki, MONITOR, web=web.port, sorry=sorry.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            status, body, response = get(port, pki, "/healthz")
            assert (status, body) == (200, MONITOR_OK)
            assert response.getheader("content-type") == "text/html"
            conn = connect(port, pki)
            conn.request("GET", "/a", headers={"Host": HOST})
            response = conn.getresponse()
            assert response.read() == b"web /a"
            web.health_status = 500
            proc.wait_for(r"Server web/w is DOWN")
            poll(
                lambda: True if get(port, pki, "/healthz")[0] == 503 else None,
                timeout=10,
                failure=lambda: "the monitor never answered 503",
            )
            conn.request("GET", "/b", headers={"Host": HOST})
            response = conn.getresponse()
            assert response.read() == b"sorry /b"
            conn.close()
            assert get(port, pki, "/healthz")[1].startswith(b"<html><body><h1>503 Service")
            assert "/healthz" not in web.paths() + sorry.paths()


CHECK_PORT = """\
backend web
    option httpchk GET /health
    server w 127.0.0.1:{web} check port {probe} inter 100ms rise 1 fall 1

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend web
"""


def test_server_port_sends_the_checks_elsewhere(tmp_path: Path, pki: Pki) -> None:
    """Patroni's pattern: traffic to the database port, checks to the agent's port."""
    with backends("web", "probe") as (web, probe):
        config, port = write_config(tmp_path, pki, CHECK_PORT, web=web.port, probe=probe.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            assert get(port, pki, "/a")[:2] == (200, b"web /a")
            probe.health_status = 503  # the server itself would still answer 200
            proc.wait_for(r"Server web/w is DOWN, reason: Layer7 wrong status, code: 503")
            web.health_status = 503
            probe.health_status = 200
            proc.wait_for(r"Server web/w is UP")


RANDOM = """\
backend web
    balance random
    server a 127.0.0.1:{a}
    server b 127.0.0.1:{b} weight 3

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend web
"""


def test_balance_random_spreads_by_weight(tmp_path: Path, pki: Pki) -> None:
    with backends("a", "b") as (a, b):
        config, port = write_config(tmp_path, pki, RANDOM, a=a.port, b=b.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            conn = connect(port, pki)
            for i in range(40):
                conn.request("GET", f"/r{i}", headers={"Host": HOST})
                response = conn.getresponse()
                assert response.status == 200
                response.read()
            conn.close()
            assert len(a.paths()) + len(b.paths()) == 40
            assert a.paths()  # both used
            assert len(b.paths()) > len(a.paths())  # b weighs 3 times more


COOKIE = """\
backend web
    balance roundrobin
    cookie SERVERID insert indirect nocache httponly
    server a 127.0.0.1:{a} cookie s1
    server b 127.0.0.1:{b} cookie s2

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend web
"""


def test_cookie_insert_keeps_a_client_on_its_server(tmp_path: Path, pki: Pki) -> None:
    """The socket.io pattern: round robin for new clients, the inserted cookie after."""
    with backends("a", "b") as (a, b):
        config, port = write_config(tmp_path, pki, COOKIE, a=a.port, b=b.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            status, _body, response = get(port, pki, "/first")
            assert status == 200
            cookie = response.getheader("set-cookie")
            assert cookie in ("SERVERID=s1; path=/; HttpOnly", "SERVERID=s2; path=/; HttpOnly")
            assert response.getheader("cache-control") == "private"
            chosen, other = (a, b) if cookie.startswith("SERVERID=s1") else (b, a)
            value = cookie.split(";")[0]
            for i in range(4):  # round robin would alternate; the cookie keeps the server
                status, _body, response = get(
                    port, pki, f"/again{i}", {"Cookie": f"lang=fr; {value}"}
                )
                assert status == 200
                assert response.getheader("set-cookie") is None  # the cookie chose it
            assert [p for p in chosen.paths() if p.startswith("/again")] == [
                f"/again{i}" for i in range(4)
            ]
            assert not [p for p in other.paths() if p.startswith("/again")]
            _path, seen = chosen.requests[-1]
            assert seen["cookie"] == "lang=fr"  # indirect: the server never sees it
            # a cookie naming no server: balanced, and a fresh cookie inserted
            status, _body, response = get(port, pki, "/stale", {"Cookie": "SERVERID=gone"})
            assert status == 200
            assert response.getheader("set-cookie", "").startswith("SERVERID=s")


class _TinyServer:
    """A threaded TCP (or TLS) server answering `PREFIX:` + what it first receives."""

    def __init__(self, prefix: bytes, context: ssl.SSLContext | None = None) -> None:
        self.prefix = prefix
        self.context = context
        self.received: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            conn.settimeout(10)
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            data = conn.recv(4096)
            self.received.append(data)
            conn.sendall(self.prefix + b":" + data)
        conn.close()

    def close(self) -> None:
        self.sock.close()


PASSTHROUGH = """\
frontend mux
    mode tcp
    bind 127.0.0.1:{port}
    tcp-request inspect-delay 3s
    tcp-request content reject if {{ req.len gt 100 }} !{{ req.ssl_hello_type 1 }}
    tcp-request content accept if {{ req_ssl_hello_type 1 }}
    use_backend tls_a if {{ req.ssl_sni -i a.example.test }}
    use_backend acme if {{ req.ssl_alpn acme-tls/1 }}
    default_backend raw

backend tls_a
    mode tcp
    server a 127.0.0.1:{a}

backend acme
    mode tcp
    server b 127.0.0.1:{b}

backend raw
    mode tcp
    server r 127.0.0.1:{raw}
"""


def test_sni_and_alpn_passthrough_with_tcp_request_content(tmp_path: Path, pki: Pki) -> None:
    """The corpus' TLS multiplexers: a plain mode-tcp bind reads the ClientHello (without
    terminating TLS) to route on its SNI or ALPN, other protocols go elsewhere, and a
    `tcp-request content reject` closes what it refuses."""
    servers = []
    for name in ("a.example.test", "acme.example.test"):
        issued = pki.issue(name)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(issued.bundle_path))
        context.set_alpn_protocols(["acme-tls/1", "http/1.1"])
        servers.append(_TinyServer(name.split(".")[0].encode(), context))
    raw = _TinyServer(b"raw")
    try:
        config, port = write_config(
            tmp_path, pki, PASSTHROUGH, a=servers[0].port, b=servers[1].port, raw=raw.port
        )
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            client = ssl.create_default_context(cafile=str(pki.ca.root_cert_path))
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            with client.wrap_socket(sock, server_hostname="a.example.test") as tls:
                tls.sendall(b"hello")  # the backend's own certificate was verified
                assert tls.recv(100) == b"a:hello"
            client.set_alpn_protocols(["acme-tls/1"])
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            with client.wrap_socket(sock, server_hostname="acme.example.test") as tls:
                assert tls.selected_alpn_protocol() == "acme-tls/1"
                tls.sendall(b"challenge")
                assert tls.recv(100) == b"acme:challenge"
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"\x00\x0eOPENVPN-RESET")  # not TLS: decided at once
                assert sock.recv(100) == b"raw:\x00\x0eOPENVPN-RESET"
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"x" * 200)  # refused by the first rule
                assert sock.recv(100) == b""
            assert raw.received == [b"\x00\x0eOPENVPN-RESET"]
    finally:
        for server in (*servers, raw):
            server.close()


UNIQUE_ID = """\
defaults unique
    mode http
    unique-id-format %{{+X}}o\\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid
    unique-id-header X-Edge-Request-ID

frontend www from unique
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    acl is_index path /
    http-request set-path /dashboard.html if is_index
    http-request set-query lang=fr&%[query] if {{ path_beg /docs }}
    default_backend web

backend web from unique
    server w 127.0.0.1:{web}
"""


def test_unique_id_header_and_target_rewrites(tmp_path: Path, pki: Pki) -> None:
    """easy-haproxy's defaults: a request id in HAProxy's hexadecimal layout, and the
    index page rewritten with set-path; set-query keeps the client's query."""
    with backends("web") as (web,):
        config, port = write_config(tmp_path, pki, UNIQUE_ID, web=web.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            assert get(port, pki, "/")[:2] == (200, b"web /dashboard.html")
            assert get(port, pki, "/docs/a?x=1")[:2] == (200, b"web /docs/a?lang=fr&x=1")
            ids = [headers["x-edge-request-id"] for _path, headers in web.requests]
            pattern = re.compile(
                rf"7F000001:[0-9A-F]{{4}}_7F000001:{port:04X}_[0-9A-F]{{8}}_[0-9A-F]{{4}}:"
                r"[0-9A-F]{4}"
            )
            assert all(pattern.fullmatch(i) for i in ids), ids
            assert ids[0] != ids[1]  # the request counter moved


MINCONN = """\
backend web
    fullconn 100
    server a 127.0.0.1:{a} minconn 1 maxconn 10

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend web
"""


def test_minconn_keeps_a_lightly_loaded_server_at_its_floor(tmp_path: Path, pki: Pki) -> None:
    """HAProxy's content-switching example: `minconn 1 maxconn 10` with `fullconn 100`
    lets one request at a time reach the server while the backend is nearly idle; the
    others wait in the queue (HAProxy's dynamic limit), none is refused."""
    with backends("a") as (a,):
        a.slow_s = 0.3
        config, port = write_config(tmp_path, pki, MINCONN, a=a.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            results: list[int] = []
            threads = [
                threading.Thread(target=lambda i=i: results.append(get(port, pki, f"/slow{i}")[0]))
                for i in range(3)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=15)
            assert results == [200, 200, 200]
            assert a.max_in_flight == 1


REDIS = """\
frontend redis_in
    mode tcp
    bind 127.0.0.1:{port}
    default_backend redis

backend redis
    mode tcp
    option tcp-check
    tcp-check comment "the master answers PING, then says role:master"
    tcp-check connect
    tcp-check send "PING\\r\\n"
    tcp-check expect string +PONG
    tcp-check send "info replication\\r\\n"
    tcp-check expect rstring role:(master|leader)
    tcp-check send "QUIT\\r\\n"
    tcp-check expect string +OK
    server master 127.0.0.1:{redis} check inter 200ms rise 1 fall 1
    server impostor 127.0.0.1:{impostor} check inter 200ms rise 1 fall 1
"""


def _redis(port: int, directory: Path, *extra: str) -> subprocess.Popen[bytes]:
    """A real redis-server on 127.0.0.1:`port`, without persistence."""
    directory.mkdir(exist_ok=True)
    return subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs Debian's redis-server")
def test_tcp_check_finds_the_redis_master(tmp_path: Path, pki: Pki) -> None:
    """HariSekhon's Redis master detection, against real redis-servers: the master stays
    up, its replica (which answers PING but says role:slave) goes down with HAProxy's
    reason."""
    redis_port, replica_port = free_port(), free_port()
    master = _redis(redis_port, tmp_path / "master")
    replica = _redis(
        replica_port, tmp_path / "replica", "--replicaof", "127.0.0.1", str(redis_port)
    )
    try:
        poll(
            lambda: True if _answers(redis_port) and _answers(replica_port) else None,
            timeout=10,
            failure=lambda: "redis-server did not start",
        )
        config, port = write_config(tmp_path, pki, REDIS, redis=redis_port, impostor=replica_port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            proc.wait_for(
                # HAProxy 2.6's line for the same replica, word for word (the replica keeps
                # the connection open, so the regex waits until the check times out; the
                # comment and connect lines count as steps 1 and 2)
                r"Server redis/impostor is DOWN, reason: Layer7 timeout, info: "
                r"\" at step 6 of tcp-check \(expect regex\)\", check duration: \d+ms"
            )
            for _ in range(3):  # only the master is left
                with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                    sock.sendall(b"PING\r\n")
                    assert sock.recv(100) == b"+PONG\r\n"
            assert "redis/master is DOWN" not in "\n".join(proc.lines)
    finally:
        for server in (replica, master):
            server.terminate()
            server.wait(timeout=10)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(100) == b"+PONG\r\n"
    except OSError:
        return False


SLOWSTART = """\
backend web
    option httpchk GET /health
    default-server inter 100ms rise 1 fall 1 slowstart 60s maxqueue 256
    server a 127.0.0.1:{a} check
    server b 127.0.0.1:{b} check

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend web
"""


def test_slowstart_spares_a_server_just_back_up(tmp_path: Path, pki: Pki) -> None:
    """The Kubernetes API server example's `default-server … slowstart 60s maxqueue 256`:
    round robin at first; a server back from DOWN gets almost nothing at once, then more."""
    with backends("a", "b") as (a, b):
        config, port = write_config(tmp_path, pki, SLOWSTART, a=a.port, b=b.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            for i in range(4):
                assert get(port, pki, f"/before{i}")[0] == 200
            assert len(a.paths()) == len(b.paths()) == 2  # up since the start: no ramp
            a.health_status = 503
            proc.wait_for(r"Server web/a is DOWN")
            a.health_status = 200
            proc.wait_for(r"Server web/a is UP")
            poll(
                lambda: True if get(port, pki, "/probe")[0] == 200 else None,
                timeout=5,
                failure=lambda: "no answer",
            )
            a_before, b_before = len(a.paths()), len(b.paths())
            for i in range(20):
                assert get(port, pki, f"/after{i}")[0] == 200
            a_new, b_new = len(a.paths()) - a_before, len(b.paths()) - b_before
            # seconds into a 60 s ramp, a takes a small fraction of its half
            assert 3 * a_new < b_new, (a_new, b_new)

            def a_served_again() -> bool | None:
                get(port, pki, "/later")  # the ramp is the behaviour under test
                return True if any(p == "/later" for p in a.paths()) else None

            poll(a_served_again, timeout=40, failure=lambda: "a never came back")


EXTERNAL = """\
global
    external-check
    insecure-fork-wanted

backend db
    option external-check
    external-check path "/usr/bin:/bin"
    external-check command {script}
    server node1 127.0.0.1:{web} check inter 100ms rise 1 fall 1

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend db
"""


def test_external_check_runs_the_command_haproxys_way(tmp_path: Path, pki: Pki) -> None:
    """Percona's PXC operator checks a Galera node with a script: HAProxy's arguments and
    environment, exit status 0 up, anything else down."""
    marker = tmp_path / "synced"
    marker.touch()
    seen = tmp_path / "seen"
    script = tmp_path / "check_node.sh"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$* $HAPROXY_PROXY_NAME $HAPROXY_SERVER_NAME $PATH" > {seen}\n'
        f"test -e {marker}\n",
        encoding="utf-8",
    )
    script.chmod(0o700)
    with backends("web") as (web,):
        config, port = write_config(tmp_path, pki, EXTERNAL, web=web.port, script=script)
        # (write_config's head has a `global` section: this one is a second, as HAProxy allows)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            poll(
                lambda: True if seen.exists() and seen.read_text() else None,
                timeout=10,
                failure=lambda: "the check command never ran",
            )
            assert seen.read_text().split() == [
                "NOT_USED",
                "NOT_USED",
                "127.0.0.1",
                str(web.port),
                "db",
                "node1",
                "/usr/bin:/bin",
            ]
            assert get(port, pki, "/q")[:2] == (200, b"web /q")
            marker.unlink()
            proc.wait_for(r"Server db/node1 is DOWN, reason: External check error, code: 1")
            assert get(port, pki, "/q")[0] == 503


NO_LOG = """\
frontend healthz
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    no log
    monitor-uri /healthz

frontend www
    bind 127.0.0.1:{second} ssl crt-list {crt_list}
    default_backend web

backend web
    server w 127.0.0.1:{web}
"""


def test_no_log_silences_one_frontend(tmp_path: Path, pki: Pki) -> None:
    """The Kubernetes ingress controller's health frontend: `no log` (the defaults say
    `option httplog`), so probes do not flood the logs; the other frontend still logs."""
    second = free_port()
    with backends("web") as (web,):
        config, port = write_config(tmp_path, pki, NO_LOG, web=web.port, second=second)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            assert get(port, pki, "/healthz")[0] == 200
            assert get(second, pki, "/logged")[0] == 200
            proc.wait_for(r"www~ web/w .* \"GET /logged HTTP/1.1\"")
            assert not [line for line in proc.lines if "healthz~" in line]


EXPECT_STRING = """\
backend es
    option httpchk GET /version
    http-check expect rstring "^a /ver"
    server a 127.0.0.1:{a} check inter 100ms rise 1 fall 1
    server b 127.0.0.1:{b} check inter 100ms rise 1 fall 1

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend es
"""


def test_http_check_expect_looks_at_the_body(tmp_path: Path, pki: Pki) -> None:
    """The Elasticsearch example's `http-check expect string lucene_version`, here as a
    regular expression only server a's answer matches: b goes down on its content."""
    with backends("a", "b") as (a, b):
        config, port = write_config(tmp_path, pki, EXPECT_STRING, a=a.port, b=b.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            proc.wait_for(r"Server es/b is DOWN, reason: Layer7 wrong content, code: 200")
            poll(
                lambda: True if get(port, pki, "/only-a")[1] == b"a /only-a" else None,
                timeout=5,
                failure=lambda: "traffic still reaches b",
            )
            for i in range(4):
                assert get(port, pki, f"/q{i}")[1] == f"a /q{i}".encode()
            assert "es/a is DOWN" not in "\n".join(proc.lines)
