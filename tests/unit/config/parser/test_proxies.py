"""Parser, proxy sections: mode, timeouts, options, balance, capabilities, defaults."""

from __future__ import annotations

from staplegate.config.model import (
    Balance,
    CookiePersistence,
    Mode,
    ProxyKind,
    TcpCheckStep,
)
from tests.unit.config.helpers import BACKEND, SIDECAR, A, W, check, one_error, warnings

# ------------------------------------------------------------------ proxy keywords


def test_mode_timeouts_options() -> None:
    config, diags = check(
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 1m\n"
        "    timeout server 50000\n    timeout http-request 500ms\n    timeout queue 1h\n"
        "    timeout check 1d\n    timeout http-keep-alive 2000us\n    option httplog\n"
        "    option forwardfor header X-Real-IP\n    option redispatch\n"
        "    option httpchk GET /health\n    log global\n    maxconn 50\n    retries 2\n"
        "frontend fe\n    bind :80\n    no option httplog\n    option tcplog\n"
        "    default_backend app\n" + BACKEND
    )
    assert diags == []
    assert config is not None
    fe = config.frontend("fe")
    t = fe.timeouts
    assert (t.connect, t.client, t.server, t.http_request) == (5000, 60000, 50000, 500)
    assert (t.queue, t.check, t.http_keep_alive) == (3_600_000, 86_400_000, 2)
    assert fe.mode is Mode.HTTP
    assert fe.maxconn == 50
    assert fe.settings.options.tcplog
    assert not fe.settings.options.httplog
    app = config.backend("app")
    assert app.settings.options.forwardfor_header == "X-Real-IP"
    assert (app.settings.options.httpchk_method, app.settings.options.httpchk_uri) == (
        "GET",
        "/health",
    )
    assert app.settings.options.redispatch
    assert app.settings.retries == 2


def test_proxy_value_errors() -> None:
    cases = {
        "mode udp": "unknown proxy mode 'udp'.",
        "mode health": "'mode health' is a HAProxy keyword that staplegate does not support and "
        "it would change traffic",
        "timeout client": "'timeout client' expects an integer value (in milliseconds)",
        "timeout client 10q": "unexpected character 'q' in 'timeout client'",
        "timeout client 3000d": "timer overflow in argument '3000d' to 'timeout client' "
        "(maximum value is 2147483647 ms or ~24.8 days)",
        "timeout client 10us": "timer underflow in argument '10us' to 'timeout client' "
        "(minimum non-null value is 1 ms)",
        "timeout forever 1s": "'timeout' supports 'client', 'server', 'connect', 'check', "
        "'queue', 'http-keep-alive', 'http-request', 'tunnel', 'tarpit', 'client-fin' and "
        "'server-fin' (got 'forever')",
        "option frobnicate": "unknown option 'frobnicate'.",
        "option httpclose": "'option httpclose' is a HAProxy keyword that staplegate does not "
        "support and it would change traffic",
        "option forwardfor if-nothing": "'option forwardfor' : unexpected argument 'if-nothing'.",
        "maxconn lots": "'maxconn' expects an integer argument ('lots' is not an integer).",
        "default_backend": "'default_backend' expects a backend name.",
        "stick-table type ip size 1m": "'stick-table' is a HAProxy keyword that staplegate "
        "does not support and it would change traffic" + SIDECAR.format("stick tables"),
        "tcp-request connection reject": "'tcp-request connection' is a HAProxy keyword that "
        "staplegate does not support and it would change traffic",
        "defualt_backend app": "unknown keyword 'defualt_backend' in 'frontend' section; did "
        "you mean 'default_backend' maybe ?",
    }
    for line, message in cases.items():
        text = f"frontend fe\n    bind :80\n    {line}\n    default_backend app\n" + BACKEND
        if line.startswith("default_backend"):
            text = f"frontend fe\n    bind :80\n    {line}\n" + BACKEND
        assert one_error(text) == A.format(3, message), line


def test_balance_algorithms() -> None:
    for algo in Balance:
        config, diags = check(f"backend b\n    balance {algo.value}\n    server s 127.0.0.1:1\n")
        assert diags == []
        assert config is not None
        assert config.backend("b").balance is algo
    assert one_error("backend b\n    balance uri\n") == A.format(
        2,
        "'balance uri' is a HAProxy keyword that staplegate does not support and it would "
        "change traffic",
    )
    assert one_error("backend b\n    balance random-ish\n") == A.format(
        2, "unknown balancing algorithm 'random-ish'."
    )


def test_capabilities() -> None:
    assert warnings("backend b\n    bind :80\n") == [
        W.format(2, "'bind' ignored because backend 'b' has no frontend capability.")
    ]
    assert warnings("frontend f\n    bind :80\n    server s 127.0.0.1:1\n") == [
        W.format(3, "'server' ignored because frontend 'f' has no backend capability.")
    ]
    assert one_error("defaults\n    bind :80\n") == A.format(
        2, "'bind' not allowed in 'defaults' section."
    )


def test_ignored_proxy_keywords_warn() -> None:
    got = warnings(
        "defaults\n    option dontlognull\n    errorfile 503 /e/503.http\n    option tcpka\n"
        "    log-format %ci\n"
    )  # errorfile: served (tests/e2e/test_errorfile_e2e.py), no warning
    assert got == [
        W.format(
            2,
            "'option dontlognull' is accepted but ignored by staplegate (staplegate "
            "logs every connection)",
        ),
        W.format(
            4,
            "'option tcpka' is a HAProxy keyword that staplegate does not support and "
            "it is ignored (it is a socket tuning)",
        ),
        W.format(
            5,
            "'log-format' is a HAProxy keyword that staplegate does not support and it "
            "is ignored (staplegate writes HAProxy's default formats)",
        ),
    ]
    assert one_error("defaults\n    errorfile 503\n") == A.format(
        2, "'errorfile' expects <code> and <file> as arguments."
    )


def test_defaults_inheritance_and_listen_folding() -> None:
    config, diags = check(
        "defaults\n    mode http\n    timeout client 5s\n    default-server check\n"
        "defaults tcp\n    mode tcp\n    timeout client 7s\n"
        "listen both\n    bind :80\n    server s 127.0.0.1:1\n"
        "frontend named from tcp\n    bind :81\n    default_backend both\n"
    )
    assert diags == []
    assert config is not None
    assert config.listens == ("both",)
    both_fe, both_be = config.frontend("both"), config.backend("both")
    assert both_fe.kind is ProxyKind.LISTEN
    assert both_fe.default_backend == "both"
    # the last unnamed/named defaults before a section applies, 'from' picks one by name
    assert both_fe.mode is Mode.TCP
    assert both_fe.timeouts.client == 7000
    assert both_be.servers[0].check is False
    named = config.frontend("named")
    assert named.mode is Mode.TCP
    assert named.timeouts.client == 7000


def test_default_server_from_defaults() -> None:
    config, _ = check(
        "defaults\n    default-server check inter 9s\nbackend b\n    server s 127.0.0.1:1\n"
    )
    assert config is not None
    server = config.backend("b").servers[0]
    assert (server.check, server.inter_ms) == (True, 9000)


def test_empty_proxy_and_server_names_are_alerts_not_tracebacks() -> None:
    """`backend ""` raised StopIteration (issue 14, defect 10); HAProxy's message now."""
    assert one_error('backend ""\n    server a 127.0.0.1:9000\n') == A.format(
        1, "'backend' expects an <id> argument"
    )
    assert one_error('frontend ""\n    bind :443 ssl crt x.pem\n') == A.format(
        1, "'frontend' expects an <id> argument"
    )
    assert one_error('backend app\n    server "" 127.0.0.1:9000\n') == A.format(
        2, "'server' expects an <id> argument"
    )


STATS_FRONTEND = "frontend stats\n    bind 127.0.0.1:8404\n    mode http\n"


def test_stats_lines_build_the_page_settings() -> None:
    config, problems = check(
        STATS_FRONTEND
        + "    stats uri /stats\n"
        + "    stats refresh 1500ms\n"
        + "    stats auth admin:s3cret\n"
        + "    stats auth ops:pw:with:colons\n"
        + "    stats realm Staple\\ health\n"
        + "    stats hide-version\n"
        + "    stats show-legends\n"
        + "    stats show-node lb1\n"
        + "    stats show-desc Stats for the edge <pair>\n"
        + "    stats scope www\n"
        + "    stats scope stats\n"
    )
    assert problems == []
    assert config is not None
    page = config.frontends[0].stats
    assert page is not None
    assert page.uri == "/stats"
    assert page.refresh_s == 2  # rounded up to whole seconds (a meta refresh)
    assert page.auth == ("admin:s3cret", "ops:pw:with:colons")
    assert page.realm == "Staple health"
    assert page.hide_version
    assert page.show_legends
    assert page.node == "lb1"
    assert page.description == "Stats for the edge <pair>"
    assert page.scope == ("www", "stats")


def test_any_stats_line_enables_the_page_with_haproxys_default_uri() -> None:
    config, problems = check(STATS_FRONTEND + "    stats refresh 10s\n")
    assert problems == []
    assert config is not None
    page = config.frontends[0].stats
    assert page is not None
    assert page.uri == "/haproxy?stats"
    bare, _ = check(STATS_FRONTEND + "    stats show-node\n")
    assert bare is not None
    assert bare.frontends[0].stats is not None
    assert bare.frontends[0].stats.node == ""  # the host name, at render time
    plain, _ = check(STATS_FRONTEND)
    assert plain is not None
    assert plain.frontends[0].stats is None


def test_stats_admin_reads_its_condition() -> None:
    config, problems = check(
        STATS_FRONTEND + "    acl LOCAL src 127.0.0.1\n    stats admin if LOCAL !FALSE\n"
    )
    assert problems == []
    assert config is not None
    page = config.frontends[0].stats
    assert page is not None  # `stats admin` alone enables the page, as any `stats` line
    assert page.uri == "/haproxy?stats"
    assert page.admin is not None
    assert not page.admin.unless
    assert len(page.admin.terms) == 2
    assert page.admin_rule == "if LOCAL !FALSE"
    unless, problems = check(STATS_FRONTEND + "    stats admin unless { src 10.0.0.0/8 }\n")
    assert problems == []
    assert unless is not None
    assert unless.frontends[0].stats is not None
    assert unless.frontends[0].stats.admin is not None
    assert unless.frontends[0].stats.admin.unless
    plain, _ = check(STATS_FRONTEND + "    stats enable\n")
    assert plain is not None
    assert plain.frontends[0].stats is not None
    assert plain.frontends[0].stats.admin is None


def test_stats_admin_needs_a_condition() -> None:
    wanted = "'stats admin' requires either 'if' or 'unless' followed by a condition."
    assert one_error(STATS_FRONTEND + "    stats admin\n") == A.format(4, wanted)
    assert one_error(STATS_FRONTEND + "    stats admin if\n") == A.format(4, wanted)
    assert one_error(STATS_FRONTEND + "    stats admin when TRUE\n") == A.format(4, wanted)
    assert "UNDEFINED" in one_error(STATS_FRONTEND + "    stats admin if UNDEFINED\n")
    assert "'stats admin' in a 'backend' section" in one_error(
        "backend app\n    mode http\n    stats admin if TRUE\n    server a1 127.0.0.1:9000\n"
    )


def test_stats_errors() -> None:
    assert one_error(STATS_FRONTEND + "    stats auth admin\n") == A.format(
        4, "'stats auth' expects <user>:<passwd>."
    )
    assert one_error(STATS_FRONTEND + "    stats uri\n") == A.format(
        4, "'stats uri' expects one argument."
    )
    assert one_error(STATS_FRONTEND + "    stats enable now\n") == A.format(
        4, "'stats enable' expects no argument."
    )
    assert "'stats enable' in a 'backend' section" in one_error(
        "backend app\n    mode http\n    stats enable\n    server a1 127.0.0.1:9000\n"
    )
    assert "'defaults' section" in one_error("defaults\n    stats enable\n")


def test_http_check_send_and_forwardfor_except() -> None:
    config, diags = check(
        "defaults\n    mode http\n    option forwardfor except 127.0.0.0/8\n"
        "frontend fe\n    bind :80\n    default_backend app\n"
        "backend app\n    option httpchk\n"
        "    http-check send meth HEAD uri /ready ver HTTP/1.1 hdr Host a.test hdr X-A 1\n"
        "    server a 127.0.0.1:1 check\n"
    )
    assert diags == []
    assert config is not None
    options = config.backend("app").settings.options
    assert (options.httpchk_method, options.httpchk_uri, options.httpchk_version) == (
        "HEAD",
        "/ready",
        "HTTP/1.1",
    )
    assert options.httpchk_headers == (("Host", "a.test"), ("X-A", "1"))
    assert config.frontend("fe").settings.options.forwardfor_except == "127.0.0.0/8"
    cases = {
        "option forwardfor except nowhere": "'option forwardfor' : 'except' expects an IPv4 "
        "or IPv6 network, got 'nowhere'.",
        "http-check send meth": "'http-check send' : 'meth' expects a value.",
        "http-check send body x": "'http-check send body' is a HAProxy keyword that staplegate "
        "does not support and it would change traffic",
        "http-check send hdr Bad:Name x": "'http-check send' : invalid header 'Bad:Name'.",
        "http-check expect header name x": "staplegate understands 'http-check expect [!] "
        "status|rstatus|string|rstring <pattern>' and 'http-check send [meth M] [uri U] "
        "[ver V] [hdr NAME VALUE]...'.",
        "http-check expect rstring (x": "'http-check expect' : invalid regex: missing ), "
        "unterminated subpattern at position 0.",
    }
    for line, message in cases.items():
        text = f"backend app\n    {line}\n    server a 127.0.0.1:1\n"
        assert one_error(text) == A.format(2, message), line


def test_cookie_insert_and_what_is_refused() -> None:
    config, diags = check(
        "defaults\n    mode http\n"
        "backend app\n    cookie SRV insert indirect nocache secure domain .a.test\n"
        "    server a 127.0.0.1:1 cookie s1\n"
    )
    assert diags == []
    assert config is not None
    backend = config.backend("app")
    assert backend.settings.cookie == CookiePersistence(
        "SRV", indirect=True, nocache=True, secure=True, domain=".a.test"
    )
    assert backend.servers[0].cookie == "s1"
    refused = "is a HAProxy keyword that staplegate does not support and it would change traffic"
    cases = {
        "cookie SRV rewrite": f"'cookie rewrite' {refused} (staplegate supports the 'insert' mode)",
        "cookie SRV": f"'cookie' {refused} (staplegate supports the 'insert' mode)",
        "cookie SRV insert maxidle 30m": f"'cookie maxidle' {refused}",
        "cookie": "'cookie' expects <cookie_name> as argument.",
    }
    for line, message in cases.items():
        text = f"backend app\n    {line}\n    server a 127.0.0.1:1\n"
        assert one_error(text) == A.format(2, message), line


def test_tcp_request_content_forms() -> None:
    config, diags = check(
        "frontend fe\n    bind :443\n    tcp-request inspect-delay 5s\n"
        "    tcp-request content accept if { req_ssl_hello_type 1 }\n"
        "    tcp-request content reject\n    default_backend app\n" + BACKEND
    )
    assert diags == []
    assert config is not None
    frontend = config.frontend("fe")
    assert frontend.settings.inspect_delay_ms == 5000
    assert [r.accept for r in frontend.tcp_content_rules] == [True, False]
    refused = "is a HAProxy keyword that staplegate does not support and it would change traffic"
    cases = {
        "tcp-request content track-sc0 src": f"'tcp-request content track-sc0' {refused}"
        + SIDECAR.format("stick tables"),
        "tcp-request connection reject": f"'tcp-request connection' {refused}",
        "tcp-request content accept when x": "'tcp-request content accept' : unexpected "
        "argument 'when'.",
    }
    for line, message in cases.items():
        text = f"frontend fe\n    bind :80\n    {line}\n    default_backend app\n" + BACKEND
        assert one_error(text) == A.format(3, message), line
    text = "defaults\n    tcp-request content reject\n" + BACKEND
    assert one_error(text) == A.format(
        2,
        "'tcp-request content' rules in a 'defaults' section are not supported by "
        "staplegate; write them in each frontend, listen or backend section",
    )


def test_tcp_request_content_in_a_backend() -> None:
    """A backend's rules are its own (checked when a connection enters it)."""
    config, diags = check(
        "frontend fe\n    mode tcp\n    bind :3306\n    default_backend db\n"
        "backend db\n    mode tcp\n    acl internal src 10.0.0.0/8 127.0.0.1\n"
        "    tcp-request content reject if ! internal\n    server a 127.0.0.1:1\n"
    )
    assert diags == []
    assert config is not None
    (rule,) = config.backend("db").tcp_content_rules
    assert rule.accept is False
    assert rule.condition is not None
    assert rule.condition.terms[0].negated
    assert config.frontend("fe").tcp_content_rules == ()


def test_tcp_check_rules() -> None:
    config, diags = check(
        'backend app\n    option tcp-check\n    tcp-check comment "no error"\n'
        "    tcp-check connect\n    tcp-check send-binary 2a310d0a\n"
        "    tcp-check expect ! string -ERR\n    server a 127.0.0.1:1 check\n"
        "backend cache\n    option redis-check\n    server a 127.0.0.1:2 check\n"
    )
    assert diags == []
    assert config is not None
    assert config.backend("app").settings.tcp_check == (  # markers keep HAProxy's numbers
        TcpCheckStep("comment", pattern="no error"),
        TcpCheckStep("connect"),
        TcpCheckStep("send", b"*1\r\n"),
        TcpCheckStep("expect", b"-ERR", "string", "-ERR", negate=True),
    )
    assert config.backend("cache").settings.tcp_check == (
        TcpCheckStep("send", b"PING\r\n"),
        TcpCheckStep("expect", b"+PONG", "string", "+PONG"),
    )
    cases = {
        "tcp-check send x": "'tcp-check send' needs 'option tcp-check' written before it in "
        "this section.",
        "tcp-check expect status 200": "'tcp-check expect' is a HAProxy keyword that "
        "staplegate does not support and it would change traffic (staplegate runs "
        "'tcp-check send|send-binary', 'expect [!] string|rstring|binary', 'connect' "
        "without options and 'comment')",
    }
    for line, message in cases.items():
        text = f"backend app\n    {line}\n    server a 127.0.0.1:1\n"
        assert one_error(text) == A.format(2, message), line


def test_errorfile_lines_merge_over_the_defaults_status_by_status() -> None:
    config, diags = check(
        "defaults\n    mode http\n    errorfile 503 /e/503.http\n    errorfile 400 /e/400.http\n"
        "backend app\n    errorfile 503 /mine/503.http\n    server a 127.0.0.1:9000\n"
    )
    assert diags == []
    assert config is not None
    files = {e.status: e.path for e in config.backend("app").settings.errorfiles}
    assert files == {400: "/e/400.http", 503: "/mine/503.http"}


def test_errorfile_codes() -> None:
    found = warnings("defaults\n    errorfile 418 /e/418.http\n")
    assert any("status code '418' not handled" in w for w in found)
    assert "'errorfile' expects <code> and <file>" in one_error("defaults\n    errorfile 503\n")
    assert "'errorfile'" in one_error("defaults\n    errorfile five /e/5.http\n")


def test_option_mysql_check_forms() -> None:
    config, diags = check(
        "backend a\n    option mysql-check\n    server a 127.0.0.1:1 check\n"
        "backend b\n    option mysql-check user chk\n    server b 127.0.0.1:2 check\n"
        "backend c\n    option mysql-check user chk pre-41\n    server c 127.0.0.1:3 check\n"
    )
    assert diags == []
    assert config is not None
    (handshake,) = config.backend("a").settings.tcp_check or ()
    assert (handshake.action, handshake.kind) == ("expect", "mysql")
    b_steps = config.backend("b").settings.tcp_check or ()
    c_steps = config.backend("c").settings.tcp_check or ()
    assert [s.action for s in b_steps] == ["expect", "send", "expect"]
    # post-41 (the default): 4 capability bytes, max packet, charset, 23 zeroes, user, 2 NULs
    login = b_steps[1].data
    assert login[:4] == (37).to_bytes(3, "little") + b"\x01"
    assert login[4:8] == b"\x00\x82\x00\x00"
    assert login[36:40] == b"chk\x00"
    assert login.endswith(b"\x00\x00" + b"\x01\x00\x00\x00\x01")  # then COM_QUIT
    pre_41 = c_steps[1].data
    assert pre_41[:4] == (10).to_bytes(3, "little") + b"\x01"
    assert pre_41[4:9] == b"\x00\x80\x00\x00\x01"
    for line, message in {
        "option mysql-check user": "'option mysql-check' only supports 'user <username> "
        "[post-41|pre-41]'.",
        "option mysql-check user chk post-80": "'option mysql-check' : unknown client version "
        "'post-80' (expects 'post-41' or 'pre-41').",
    }.items():
        assert one_error(f"backend app\n    {line}\n    server a 127.0.0.1:1\n") == A.format(
            2, message
        )


def test_inspect_delay_in_a_backend_is_refused_not_ignored() -> None:
    message = one_error(
        "backend app\n    mode tcp\n    tcp-request inspect-delay 5s\n    server a 127.0.0.1:1\n"
    )
    assert message.startswith(A.format(3, "'tcp-request inspect-delay' in a 'backend' section"))
    config, diags = check(
        "frontend fe\n    mode tcp\n    bind 127.0.0.1:1\n    tcp-request inspect-delay 5s\n"
        "    default_backend app\n"
        "backend app\n    mode tcp\n    server a1 127.0.0.1:9000\n"
    )
    assert diags == []
    assert config is not None
