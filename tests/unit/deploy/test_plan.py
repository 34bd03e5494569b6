"""serving: how global TLS defaults reach server connections (issue 14 keyword audit), plain
binds and what routing needs (issue 16)."""

from __future__ import annotations

import datetime as dt
import io
import ssl
from pathlib import Path

from staplegate.config.model import SslOptions, TlsVersion
from staplegate.deploy.plan import ServePlan, _server_versions, validate
from staplegate.proxy.backends import ServerTls
from staplegate.proxy.upstream import client_context

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def test_server_versions_follow_ssl_default_server_options() -> None:
    assert _server_versions(SslOptions()) == (None, None)
    assert _server_versions(SslOptions(min_ver=TlsVersion.TLSV13)) == (TlsVersion.TLSV13, None)
    no_12 = SslOptions(disabled=frozenset({TlsVersion.TLSV12}))
    assert _server_versions(no_12) == (TlsVersion.TLSV13, TlsVersion.TLSV13)
    no_13 = SslOptions(disabled=frozenset({TlsVersion.TLSV13}))
    assert _server_versions(no_13) == (TlsVersion.TLSV12, TlsVersion.TLSV12)
    old = SslOptions(min_ver=TlsVersion.TLSV10, disabled=frozenset({TlsVersion.TLSV11}))
    assert _server_versions(old) == (TlsVersion.TLSV10, TlsVersion.TLSV13)


def test_server_context_applies_ciphers_and_versions() -> None:
    """ssl-default-server-ciphers/options were parsed and never applied."""
    context = client_context(
        ServerTls(
            verify=False, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256", min_version=TlsVersion.TLSV13
        )
    )
    assert context.minimum_version is ssl.TLSVersion.TLSv1_3
    tls12 = [c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 == ["ECDHE-ECDSA-AES128-GCM-SHA256"]


def _plan(tmp_path: Path, frontend: str) -> tuple[ServePlan | None, str]:
    """Validate `frontend` with backends `app` and `api` in the frontend's mode."""
    mode = "http" if "mode http" in frontend else "tcp"
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        f"{frontend}backend app\n    mode {mode}\n    server a 127.0.0.1:9000\n"
        f"backend api\n    mode {mode}\n    server b 127.0.0.1:9001\n",
        encoding="utf-8",
    )
    err = io.StringIO()
    _generation, plan = validate([str(config)], now=NOW, err=err, startup=True)
    return plan, err.getvalue()


def test_a_plain_bind_is_planned_without_tls(tmp_path: Path) -> None:
    plan, output = _plan(
        tmp_path, "frontend fe\n    bind 127.0.0.1:8080 accept-proxy\n    default_backend app\n"
    )
    assert plan is not None, output
    (bind,) = plan.frontends[0].binds
    assert (bind.tls, bind.bind.accept_proxy) == (None, True)


def test_path_routing_routes_every_request_and_needs_mode_http(tmp_path: Path) -> None:
    rules = "    use_backend api if { path_beg /api/ } !LOCALHOST\n    default_backend app\n"
    plan, output = _plan(tmp_path, "frontend fe\n    mode http\n    bind 127.0.0.1:8080\n" + rules)
    assert plan is not None, output
    http = plan.frontends[0].http
    assert http is not None
    assert http.route_per_request
    plan, output = _plan(
        tmp_path,
        "frontend fe\n    mode http\n    bind 127.0.0.1:8080\n"
        "    use_backend api if { src 10.0.0.0/8 }\n    default_backend app\n",
    )
    assert plan is not None, output
    assert plan.frontends[0].http is not None
    assert not plan.frontends[0].http.route_per_request  # routed once per Host, as before
    plan, output = _plan(tmp_path, "frontend fe\n    mode tcp\n    bind 127.0.0.1:8080\n" + rules)
    assert plan is None
    assert "frontend 'fe' is 'mode tcp': 'path' needs 'mode http'" in output


def test_the_exporter_snapshot_exists_only_when_a_rule_uses_the_service(tmp_path: Path) -> None:
    plain = "frontend fe\n    mode http\n    bind 127.0.0.1:8080\n    default_backend app\n"
    plan, output = _plan(tmp_path, plain)
    assert plan is not None, output
    assert plan.exporter is None  # nothing pushed to workers, nothing rendered
    plan, output = _plan(
        tmp_path,
        "frontend fe\n    mode http\n    bind 127.0.0.1:8080\n"
        "    http-request use-service prometheus-exporter if { path /metrics }\n"
        "    default_backend app\n",
    )
    assert plan is not None, output
    assert plan.exporter is not None
    http = plan.frontends[0].http
    assert http is not None
    assert http.rules[0].service is plan.exporter


def test_a_stats_frontend_gets_its_page_service(tmp_path: Path) -> None:
    page = "    stats enable\n    stats uri /stats\n    stats auth a:b\n    default_backend app\n"
    plan, output = _plan(tmp_path, "frontend fe\n    mode http\n    bind 127.0.0.1:8080\n" + page)
    assert plan is not None, output
    http = plan.frontends[0].http
    assert http is not None
    assert http.stats is not None
    assert plan.stats_pages == {"fe": http.stats}
    plan, output = _plan(tmp_path, "frontend fe\n    bind 127.0.0.1:8080\n" + page)
    assert plan is None
    assert "frontend 'fe' is 'mode tcp': the stats page needs 'mode http'" in output
    plan, output = _plan(
        tmp_path, "frontend fe\n    mode http\n    bind 127.0.0.1:8080\n    default_backend app\n"
    )
    assert plan is not None, output
    assert plan.stats_pages == {}


def test_nbsrv_routes_per_request_names_a_backend_and_monitor_uri_comes_first(
    tmp_path: Path,
) -> None:
    plan, output = _plan(
        tmp_path,
        "frontend fe\n    mode http\n    bind 127.0.0.1:8080\n    monitor-uri /up\n"
        "    monitor fail if { nbsrv(app) lt 1 }\n    http-request deny if { path /x }\n"
        "    use_backend api if { nbsrv(app) eq 0 }\n    default_backend app\n",
    )
    assert plan is not None, output
    http = plan.frontends[0].http
    assert http is not None
    assert http.route_per_request  # server health changes while a connection lives
    monitor, deny = (rule.action for rule in http.rules)
    assert type(monitor).__name__ == "HttpMonitor"
    assert type(deny).__name__ == "HttpDeny"
    plan, output = _plan(
        tmp_path,
        "frontend fe\n    mode http\n    bind 127.0.0.1:8080\n"
        "    monitor fail if { nbsrv(nowhere) eq 0 }\n    monitor-uri /up\n"
        "    default_backend app\n",
    )
    assert plan is None
    assert "'nbsrv(nowhere)' names no backend (unable to find backend 'nowhere')." in output
    plan, output = _plan(
        tmp_path,
        "frontend fe\n    bind 127.0.0.1:8080\n    monitor-uri /up\n    default_backend app\n",
    )
    assert plan is not None, output
    assert "'monitor-uri' ignored for frontend 'fe' as it requires HTTP mode." in output


def test_tcp_request_content_on_plain_binds_and_in_mode_http(tmp_path: Path) -> None:
    rules = (
        "    tcp-request inspect-delay 2s\n"
        "    tcp-request content accept if { req.ssl_hello_type 1 }\n"
        "    default_backend app\n"
    )
    plan, output = _plan(tmp_path, "frontend fe\n    bind 127.0.0.1:8443\n" + rules)
    assert plan is not None, output
    assert plan.frontends[0].inspect_delay_s == 2.0
    assert len(plan.frontends[0].content_rules) == 1
    # mode http: checked for each request before the rules, nothing is waited for
    plan, output = _plan(tmp_path, "frontend fe\n    mode http\n    bind 127.0.0.1:80\n" + rules)
    assert plan is not None, output
    (frontend,) = plan.frontends
    assert frontend.inspect_delay_s is None
    assert frontend.http is not None
    assert len(frontend.http.content_rules) == 1


def test_ssl_server_verify_is_the_default_of_server_lines(tmp_path: Path) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        "global\n    ssl-server-verify none\n"
        "frontend fe\n    bind 127.0.0.1:8080\n    default_backend app\n"
        "backend app\n    server a 127.0.0.1:9000 ssl\n"
        "    server b 127.0.0.1:9001 ssl verify required ca-file /etc/ssl/certs/ca.pem\n",
        encoding="utf-8",
    )
    err = io.StringIO()
    _generation, plan = validate([str(config)], now=NOW, err=err, startup=True)
    assert plan is not None, err.getvalue()
    a, b = plan.backends[0].servers
    assert a.tls is not None
    assert b.tls is not None
    assert (a.tls.verify, b.tls.verify) == (False, True)


def test_errorfiles_are_read_into_answers_and_a_bad_one_names_its_line(tmp_path: Path) -> None:
    good = tmp_path / "503.http"
    good.write_bytes(b"HTTP/1.1 503 Busy\r\nContent-Type: text/plain\r\n\r\nbusy\n")
    plan, output = _plan(
        tmp_path,
        "frontend fe\n    mode http\n    bind 127.0.0.1:8080\n"
        f"    errorfile 503 {good}\n    default_backend app\n",
    )
    assert plan is not None, output
    http = plan.frontends[0].http
    assert http is not None
    page = http.errorfiles[503]
    assert (page.status, page.reason, page.body, page.close) == (503, "Busy", b"busy\n", True)
    assert page.headers == (("content-type", "text/plain"),)

    (tmp_path / "bad.http").write_bytes(b"<h1>oops</h1>\n\n")
    plan, output = _plan(
        tmp_path,
        "frontend fe\n    mode http\n    bind 127.0.0.1:8080\n"
        f"    errorfile 503 {tmp_path / 'bad.http'}\n    errorfile 403 {tmp_path / 'gone'}\n"
        "    default_backend app\n",
    )
    assert plan is None
    assert "haproxy.cfg:4] : 'errorfile' : " in output
    assert "is no HTTP response staplegate can send: the first line" in output
    assert "haproxy.cfg:5] : 'errorfile' : cannot read" in output


def test_a_backend_keeps_its_tcp_request_content_rules_in_mode_tcp_only(tmp_path: Path) -> None:
    backend = (
        "backend db\n    mode {mode}\n    tcp-request content reject if {{ src 10.0.0.0/8 }}\n"
        "    server d 127.0.0.1:9002\n"
    )
    front = "frontend fe\n    mode {mode}\n    bind 127.0.0.1:3306\n    default_backend db\n"
    plan, output = _plan(tmp_path, front.format(mode="tcp") + backend.format(mode="tcp"))
    assert plan is not None, output
    (db,) = [b for b in plan.backends if b.name == "db"]
    assert len(db.content_rules) == 1
    plan, output = _plan(tmp_path, front.format(mode="http") + backend.format(mode="http"))
    assert plan is None
    assert "backend 'db' is 'mode http': staplegate evaluates 'tcp-request content'" in output


def test_loaded_is_called_with_a_sound_generation_before_the_plan_is_built(
    tmp_path: Path,
) -> None:
    config = tmp_path / "haproxy.cfg"
    seen: list[object] = []
    good = "frontend fe\n    bind 127.0.0.1:8080\n    default_backend app\nbackend app\n"
    config.write_text(good, encoding="utf-8")
    generation, plan = validate(
        [str(config)], now=NOW, err=io.StringIO(), startup=True, loaded=seen.append
    )
    assert plan is not None
    assert seen == [generation]

    config.write_text(good.replace("default_backend app", "default_backend nowhere"))
    _, plan = validate([str(config)], now=NOW, err=io.StringIO(), startup=True, loaded=seen.append)
    assert plan is None
    assert len(seen) == 1  # not called for a configuration with errors


def test_a_server_without_address_or_port_runs_in_mode_http_only(tmp_path: Path) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        "frontend fe\n    mode http\n    bind 127.0.0.1:8080\n    default_backend hop\n"
        "backend hop\n    mode http\n    server next 0.0.0.0\n"
        "backend tcp_hop\n    mode tcp\n    server next 0.0.0.0\n"
        "backend unchecked\n    mode http\n    server a 127.0.0.1 check\n",
        encoding="utf-8",
    )
    err = io.StringIO()
    _generation, plan = validate([str(config)], now=NOW, err=err, startup=True)
    output = err.getvalue()
    assert plan is None
    assert "server 'tcp_hop/next': a server without an address or a port" in output
    assert "in 'mode http' only" in output
    assert "server 'unchecked/a': 'check' needs a port" in output
    assert "'hop/next'" not in output
