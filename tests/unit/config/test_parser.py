"""Parser: every supported keyword's happy path and error paths, with HAProxy-style messages."""

from __future__ import annotations

import pytest

from staplegate.config.diagnostics import Reason, Severity
from staplegate.config.model import (
    AclFetch,
    AclMatch,
    Balance,
    HttpDelHeader,
    HttpDeny,
    HttpRedirectScheme,
    HttpReturn,
    HttpSetHeader,
    LogFormat,
    LogTargetKind,
    Mode,
    ProxyKind,
    ProxyProtocol,
    StatsLevel,
    TlsVersion,
    Verify,
)
from staplegate.config.values import AddressFamily

from .helpers import BACKEND, check, diagnostics, errors, warnings

A = "[ALERT] config : parsing [t.cfg:{}] : {}"
W = "[WARNING] config : parsing [t.cfg:{}] : {}"


def one_error(text: str) -> str:
    found = errors(text)
    assert len(found) == 1, found
    return found[0]


# ------------------------------------------------------------------ global keywords
def test_global_ocsp_settings() -> None:
    config, diags = check(
        "global\n"
        "    ocsp-update.mode on\n"
        "    ocsp-update.disable off\n"
        "    ocsp-update.maxdelay 7200\n"
        "    ocsp-update.mindelay 600\n"
        "    ocsp-update.httpproxy 127.0.0.1:3128\n"
    )
    assert diags == []
    assert config is not None
    g = config.global_
    assert (g.ocsp_update_mode, g.ocsp_update_disable) == (True, False)
    assert (g.ocsp_update_mindelay, g.ocsp_update_maxdelay) == (600, 7200)
    assert str(g.ocsp_update_httpproxy) == "127.0.0.1:3128"


@pytest.mark.parametrize("keyword", ["ocsp-update.mode", "ocsp-update.disable"])
@pytest.mark.parametrize("value", ["yes", "ON", ""])
def test_on_off_globals_only_warn_and_keep_the_previous_value(keyword: str, value: str) -> None:
    config, diags = check(f"global\n    {keyword} on\n    {keyword} {value}\n")
    assert diags == [W.format(3, f"'{keyword}' : expecting <on|off>")]
    assert config is not None
    assert getattr(config.global_, keyword.replace(".", "_").replace("-", "_")) is True


def test_mindelay_above_default_max_fails_in_line_order() -> None:
    assert one_error("global\n    ocsp-update.mindelay 7200\n") == A.format(
        2, "'ocsp-update.mindelay' can not be higher than tune.ssl.ocsp-update.maxdelay."
    )
    config, diags = check("global\n    ocsp-update.maxdelay 86400\n    ocsp-update.mindelay 7200\n")
    assert diags == []
    assert config is not None
    assert config.global_.ocsp_update_mindelay == 7200


def test_maxdelay_below_min_names_the_tune_spelling() -> None:
    assert one_error(
        "global\n    ocsp-update.mindelay 200\n    ocsp-update.maxdelay 100\n"
    ) == A.format(3, "'ocsp-update.maxdelay' can not be lower than tune.ssl.ocsp-update.mindelay.")


def test_min_equal_max_is_accepted() -> None:
    config, diags = check("global\n    ocsp-update.mindelay 3600\n")
    assert diags == []
    assert config is not None


def test_delay_missing_and_negative() -> None:
    assert one_error("global\n    tune.ssl.ocsp-update.maxdelay\n") == A.format(
        2, "'tune.ssl.ocsp-update.maxdelay' expects an integer argument."
    )
    assert one_error("global\n    ocsp-update.mindelay -5\n") == A.format(
        2, "'ocsp-update.mindelay' expects a positive numeric value."
    )


def test_delay_atoi_quirks_are_reproduced_with_a_warning() -> None:
    config, diags = check("global\n    ocsp-update.mindelay 5m\n    ocsp-update.maxdelay abc\n")
    # 'abc' is 0 for atoi, which is lower than mindelay 5: HAProxy refuses it
    assert diags[0].startswith(
        W.format(2, "'ocsp-update.mindelay' value '5m' is read as 5 seconds")
    )
    assert diags[1] == A.format(
        3, "'ocsp-update.maxdelay' can not be lower than tune.ssl.ocsp-update.mindelay."
    )
    config, diags = check("global\n    ocsp-update.mindelay abc\n")
    assert config is not None
    assert config.global_.ocsp_update_mindelay == 0
    assert len(diags) == 1
    assert "is read as 0 seconds" in diags[0]


def test_httpproxy_errors() -> None:
    assert one_error("global\n    ocsp-update.httpproxy 127.0.0.1:3128 extra\n") == A.format(
        2, "'ocsp-update.httpproxy' cannot handle unexpected argument 'extra'."
    )
    assert one_error("global\n    ocsp-update.httpproxy 127.0.0.1:99999\n").startswith(
        A.format(2, "ocsp-update: Failed to parse destination address in '127.0.0.1:99999'")
    )


def test_bases_and_ssl_defaults() -> None:
    config, diags = check(
        "global\n"
        "    crt-base /etc/ssl/private\n"
        "    key-base keys\n"
        "    ca-base /etc/ssl/certs\n"
        "    ssl-default-bind-ciphers ECDHE-RSA-AES128-GCM-SHA256\n"
        "    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256\n"
        "    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets no-tlsv11\n"
        "    ssl-load-extra-files none\n"
        "    ssl-load-extra-del-ext\n"
        "    tune.ssl.default-dh-param 2048\n"
        "    crt-base /elsewhere\n"
    )
    assert config is not None
    g = config.global_
    assert (g.crt_base, g.key_base, g.ca_base) == ("/etc/ssl/private", "keys", "/etc/ssl/certs")
    assert g.ssl_default_bind_options.min_ver is TlsVersion.TLSV12
    assert g.ssl_default_bind_options.no_tls_tickets
    assert g.ssl_default_bind_options.disabled == {TlsVersion.TLSV11}
    assert g.ssl_load_extra_files == frozenset()
    assert g.ssl_load_extra_del_ext
    assert g.tune_ssl_default_dh_param == 2048
    assert diags == [
        W.format(
            10,
            "'tune.ssl.default-dh-param' is accepted but ignored by staplegate (without "
            "ssl-dh-param-file, OpenSSL sizes the DHE group to the certificate's key)",
        ),
        W.format(11, "'crt-base' already specified. Continuing."),
    ]


def test_global_value_errors() -> None:
    cases = {
        "ssl-default-bind-options ssl-min-ver TLSv9": "'ssl-default-bind-options' : "
        "'ssl-min-ver' expects 'SSLv3', 'TLSv1.0', 'TLSv1.1', 'TLSv1.2' or 'TLSv1.3'",
        "ssl-default-bind-options frobnicate": "'ssl-default-bind-options' : unknown or "
        "unsupported option 'frobnicate'.",
        "ssl-load-extra-files ocsp pem": "ssl-load-extra-files: unknown argument 'pem', allowed "
        "values are 'none', 'all', 'bundle', 'sctl', 'ocsp', 'issuer' and 'key'.",
        "nbthread zero": "'nbthread' expects an integer argument ('zero' is not an integer).",
        "nbthread 0": "'nbthread' expects an integer argument (0 is lower than the minimum 1).",
        "maxconn": "'maxconn' expects an integer argument.",
        "hard-stop-after 5x": "unexpected character 'x' in 'hard-stop-after'",
        "crt-base": "'crt-base' expects a directory path as an argument.",
        "ssl-default-bind-ciphers": "'ssl-default-bind-ciphers' expects a cipher suite as an "
        "argument.",
        "tune.ssl.default-dh-param 512": "'tune.ssl.default-dh-param' expects an integer "
        "argument (512 is lower than the minimum 1024).",
        "pidfile": "'pidfile' expects one argument.",
        "httpclient.resolvers.prefer ipv5": "'httpclient.resolvers.prefer' : expects 'ipv4' or "
        "'ipv6'.",
    }
    for line, message in cases.items():
        assert one_error(f"global\n    {line}\n") == A.format(2, message), line


def test_process_keywords() -> None:
    config, diags = check(
        "global\n    nbthread 4\n    maxconn 1000\n    pidfile run/sg.pid\n"
        "    hard-stop-after 1m\n    daemon\n    user haproxy\n    group haproxy\n"
    )
    assert config is not None
    g = config.global_
    assert (g.nbthread, g.maxconn, g.pidfile, g.hard_stop_after_ms) == (
        4,
        1000,
        "run/sg.pid",
        60000,
    )
    assert (g.daemon, g.user, g.group) == (True, "haproxy", "haproxy")
    assert diags == [
        W.format(
            6,
            "'daemon' is accepted but ignored by staplegate (staplegate runs in the "
            "foreground under its supervisor)",
        ),
        W.format(
            7,
            "'user' is accepted but ignored by staplegate (start staplegate as the "
            "intended user instead)",
        ),
        W.format(
            8,
            "'group' is accepted but ignored by staplegate (start staplegate with the "
            "intended group instead)",
        ),
    ]


def test_stats_socket_forms() -> None:
    config, diags = check(
        "global\n"
        "    stats socket /run/sg/admin.sock mode 660 level admin expose-fd listeners\n"
        "    stats socket ipv4@127.0.0.1:9999 level user\n"
        "    stats socket unix@rel.sock\n"
    )
    assert diags == []
    assert config is not None
    unix, tcp, rel = config.global_.stats_sockets
    assert (unix.address.family, unix.address.host, unix.mode) == (
        AddressFamily.UNIX,
        "/run/sg/admin.sock",
        0o660,
    )
    assert unix.level is StatsLevel.ADMIN
    assert unix.expose_fd_listeners
    assert (str(tcp.address), tcp.level) == ("127.0.0.1:9999", StatsLevel.USER)
    assert rel.level is StatsLevel.OPERATOR
    assert rel.address.host == "rel.sock"


def test_stats_socket_errors() -> None:
    assert one_error("global\n    stats socket /s level root\n") == A.format(
        2, "'stats socket' : 'level' only supports 'user', 'operator', and 'admin'"
    )
    assert one_error("global\n    stats socket /s mode rw\n") == A.format(
        2, "'stats socket' : 'mode' expects an octal mode."
    )
    assert one_error("global\n    stats socket /s expose-fd all\n") == A.format(
        2, "'stats socket' : 'expose-fd' only supports 'listeners'"
    )
    assert one_error("global\n    stats socket /s bogus\n") == A.format(
        2, "'stats socket' unknown keyword 'bogus'."
    )
    assert one_error("global\n    stats socket\n") == A.format(
        2, "'stats socket' expects an address (UNIX path or ipv4@addr:port)."
    )


def test_stats_limits_are_honoured_not_ignored() -> None:
    """`stats maxconn`, `stats timeout` and a socket's `maxconn` reach the model, silently."""
    config, diags = check(
        "global\n"
        "    stats socket /run/sg/admin.sock level admin maxconn 3\n"
        "    stats socket /run/sg/user.sock level user maxconn 0\n"
        "    stats maxconn 4\n"
        "    stats timeout 1m\n"
    )
    assert diags == []
    assert config is not None
    g = config.global_
    assert (g.stats_maxconn, g.stats_timeout_ms) == (4, 60_000)
    assert [s.maxconn for s in g.stats_sockets] == [3, None]
    defaults, _ = check("global\n    stats socket /s\n")
    assert defaults is not None
    assert (defaults.global_.stats_maxconn, defaults.global_.stats_timeout_ms) == (10, None)
    # unit-less is milliseconds, as in HAProxy
    bare, _ = check("global\n    stats timeout 2500\n")
    assert bare is not None
    assert bare.global_.stats_timeout_ms == 2500


def test_stats_limit_errors() -> None:
    """HAProxy's cli.c wording: 0 or a negative number is refused."""
    assert one_error("global\n    stats maxconn 0\n") == A.format(
        2, "'stats maxconn' expects a positive value"
    )
    assert one_error("global\n    stats maxconn\n") == A.format(
        2, "'stats maxconn' expects a positive value"
    )
    assert one_error("global\n    stats timeout 0\n") == A.format(
        2, "'stats timeout' expects a positive value"
    )
    assert one_error("global\n    stats timeout 5x\n") == A.format(
        2, "unexpected character 'x' in 'stats timeout'"
    )
    assert one_error("global\n    stats socket /s maxconn -1\n") == A.format(
        2, "'stats socket' : 'maxconn' : invalid value -1, must be >= 0"
    )


def test_log_lines() -> None:
    config, diags = check(
        "global\n"
        "    log /dev/log local0\n"
        "    log 127.0.0.1 len 4096 format rfc5424 local1 info notice\n"
        "    log stdout format raw daemon\n"
        "    log tcp@127.0.0.1:1514 user\n"
    )
    assert diags == []
    assert config is not None
    dev, udp, out, tcp = config.global_.logs
    assert (dev.kind, dev.facility, dev.level) == (LogTargetKind.UNIX, "local0", None)
    assert (udp.kind, str(udp.address), udp.length, udp.format) == (
        LogTargetKind.UDP,
        "127.0.0.1:514",
        4096,
        LogFormat.RFC5424,
    )
    assert (udp.level, udp.min_level) == ("info", "notice")
    assert (out.kind, out.format) == (LogTargetKind.STDOUT, LogFormat.RAW)
    assert (tcp.kind, str(tcp.address)) == (LogTargetKind.TCP, "127.0.0.1:1514")


def test_log_errors() -> None:
    assert one_error("global\n    log /dev/log local9\n") == A.format(
        2, "unknown log facility 'local9'"
    )
    assert one_error("global\n    log /dev/log local0 loud\n") == A.format(
        2, "unknown optional log level 'loud'"
    )
    assert one_error("global\n    log /dev/log format json local0\n") == A.format(
        2, "unknown log format 'json'"
    )
    assert one_error("global\n    log /dev/log\n") == A.format(
        2, "'log' expects <facility> as argument."
    )


def test_ignored_and_refused_and_unknown_global_keywords() -> None:
    assert warnings("global\n    chroot /var/lib/haproxy\n") == [
        W.format(
            2,
            "'chroot' is a HAProxy keyword that staplegate does not support and it is "
            "ignored (staplegate does not chroot)",
        )
    ]
    assert warnings("global\n    tune.bufsize 32768\n") == [
        W.format(
            2,
            "'tune.bufsize' is a HAProxy keyword that staplegate does not support and "
            "it is ignored (performance tunings do not change traffic)",
        )
    ]
    assert one_error("global\n    lua-load x.lua\n") == A.format(
        2,
        "'lua-load' is a HAProxy keyword that staplegate does not support and it would "
        "change traffic",
    )
    assert one_error("global\n    ocsp-update.mod on\n") == A.format(
        2,
        "unknown keyword 'ocsp-update.mod' in 'global' section; did you mean "
        "'ocsp-update.mode' maybe ?",
    )
    assert one_error("global\n    frobnicate\n") == A.format(
        2, "unknown keyword 'frobnicate' in 'global' section."
    )


def test_pre_3_0_mode_spelling_is_refused() -> None:
    (d,) = diagnostics("global\n    tune.ssl.ocsp-update.mode on\n")
    assert d.severity is Severity.ERROR
    assert d.reason is Reason.UNSUPPORTED


# ------------------------------------------------------------------ sections
def test_keyword_out_of_section_and_directives() -> None:
    assert one_error("maxconn 10\n") == A.format(1, "unknown keyword 'maxconn' out of section.")
    assert one_error(".if defined(X)\n") == A.format(
        1, "'.if' directives (conditional blocks and messages) are not supported by staplegate"
    )


def test_ignored_and_refused_sections() -> None:
    assert warnings("userlist admins\n    user bob password x\n") == [
        W.format(
            1,
            "'userlist' section is ignored: staplegate supports none of the keywords "
            "that could use it",
        )
    ]
    assert one_error("log-forward syslog\n    bind 127.0.0.1:514\n") == A.format(
        1, "'log-forward' sections are not supported by staplegate and would change traffic"
    )


def test_proxy_section_errors() -> None:
    assert one_error("frontend\n") == A.format(1, "'frontend' expects an <id> argument")
    assert one_error("backend bad/name\n") == A.format(
        1, "character '/' is not permitted in 'backend' name 'bad/name'."
    )
    assert one_error(
        "frontend fe from nowhere\n    bind :80\n    default_backend app\n" + BACKEND
    ) == A.format(1, "frontend 'fe': unable to find defaults section 'nowhere'.")


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
        "option forwardfor if-none": "'option forwardfor if-none' is a HAProxy keyword that "
        "staplegate does not support and it would change traffic",
        "maxconn lots": "'maxconn' expects an integer argument ('lots' is not an integer).",
        "default_backend": "'default_backend' expects a backend name.",
        "stick-table type ip size 1m": "'stick-table' is a HAProxy keyword that staplegate "
        "does not support and it would change traffic",
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
    )
    assert got == [
        W.format(
            2,
            "'option dontlognull' is accepted but ignored by staplegate (staplegate "
            "logs every connection)",
        ),
        W.format(
            3,
            "'errorfile' is accepted but ignored by staplegate (staplegate serves its "
            "own error responses)",
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


# ------------------------------------------------------------------ bind
def test_bind_options() -> None:
    config, diags = check(
        "global\n    crt-base certs\n"
        "crt-store web\n    load crt x\n"
        "frontend fe\n"
        '    bind 127.0.0.1:8443 ssl crt a.pem crt /abs/b.pem crt-list l.txt crt "@web/x" '
        "alpn h2,http/1.1 ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3 ciphers ECDHE "
        "ciphersuites TLS_AES_128_GCM_SHA256 strict-sni accept-proxy no-tls-tickets\n"
        "    default_backend app\n" + BACKEND
    )
    assert config is not None, diags
    (bind,) = config.frontend("fe").binds
    assert bind.ssl
    assert bind.strict_sni
    assert bind.accept_proxy
    assert [(s.keyword, s.path) for s in bind.cert_sources] == [
        ("crt", "certs/a.pem"),
        ("crt", "/abs/b.pem"),
        ("crt-list", "l.txt"),
        ("crt", "@web/x"),
    ]
    assert bind.alpn == ("h2", "http/1.1")
    assert (bind.ssl_options.min_ver, bind.ssl_options.max_ver) == (
        TlsVersion.TLSV12,
        TlsVersion.TLSV13,
    )
    assert bind.ssl_options.no_tls_tickets
    assert (bind.ciphers, bind.ciphersuites) == ("ECDHE", "TLS_AES_128_GCM_SHA256")


@pytest.mark.parametrize(
    ("text", "family", "host", "port"),
    [
        (":443", AddressFamily.IPV4, "0.0.0.0", 443),
        ("*:443", AddressFamily.IPV4, "0.0.0.0", 443),
        ("127.0.0.1:8443", AddressFamily.IPV4, "127.0.0.1", 8443),
        ("[::1]:443", AddressFamily.IPV6, "::1", 443),
        ("ipv6@:443", AddressFamily.IPV6, "::", 443),
        ("ipv4@127.0.0.1:444", AddressFamily.IPV4, "127.0.0.1", 444),
    ],
)
def test_bind_address_forms(text: str, family: AddressFamily, host: str, port: int) -> None:
    config, diags = check(f"frontend fe\n    bind {text}\n    default_backend app\n" + BACKEND)
    assert diags == []
    assert config is not None
    (address,) = config.frontend("fe").binds[0].addresses
    assert (address.family, address.host, address.port) == (family, host, port)


def test_bind_errors() -> None:
    cases = {
        ":443 ssl crt x.pem ocsp-update on": "'bind :443' unknown keyword 'ocsp-update'. It is "
        "only valid in a crt-list line or on a crt-store 'load' line.",
        ":443 ssl crt": "'bind :443' : 'crt' : missing certificate location",
        ":443 ssl alpn": "'bind :443' : 'alpn' : missing the comma-delimited ALPN protocol suite",
        ":443 ssl crt x.pem ssl-min-ver TLSv1.4": "'bind :443' : 'ssl-min-ver' : expects "
        "'SSLv3', 'TLSv1.0', 'TLSv1.1', 'TLSv1.2' or 'TLSv1.3'",
        ":443 ssl crt x.pem verify sometimes": "'bind :443' : 'verify' : expects 'none', "
        "'optional' or 'required'.",
        ":443 ssl crt x.pem verify optional crt-ignore-err 10,X509_V_ERR_BOGUS": "'bind :443' "
        ": 'crt-ignore-err' : unknown verify error 'X509_V_ERR_BOGUS': use 'all', a number "
        "from 1 to 127 or an X509_V_ERR_* name.",
        ":443 ssl crt x.pem curves X25519": "'bind :443' : 'curves' is a HAProxy keyword that "
        "staplegate does not support and it would change traffic",
        ":443 ssl crt x.pem strict-snii": "'bind :443' unknown keyword 'strict-snii'. Did you "
        "mean 'strict-sni' maybe ?",
        ":8000-8010": "'bind :8000-8010' : port ranges are not supported by staplegate "
        "(':8000-8010')",
        "abns@sock": "'bind abns@sock' : address family 'abns' in 'abns@sock' is not supported "
        "by staplegate",
        "127.0.0.1": "'bind 127.0.0.1' : missing port number in '127.0.0.1'",
        "/run/sg.sock": "'bind /run/sg.sock' is a HAProxy keyword that staplegate does not "
        "support and it would change traffic (UNIX socket listeners)",
    }
    for line, message in cases.items():
        text = f"frontend fe\n    bind {line}\n    default_backend app\n" + BACKEND
        assert one_error(text) == A.format(2, message), line


def test_bind_warnings() -> None:
    assert warnings(
        "frontend fe\n    bind :443 crt x.pem name web\n    default_backend app\n" + BACKEND
    ) == [
        W.format(
            2,
            "'bind :443' : 'name' is a HAProxy keyword that staplegate does not support "
            "and it is ignored (it only labels statistics)",
        ),
        W.format(
            2,
            "'bind :443' : certificates are configured but 'ssl' is not set: the "
            "listener will accept plain TCP/HTTP. Add 'ssl' to terminate TLS.",
        ),
    ]


# ------------------------------------------------------------------ server
def test_server_options_and_default_server() -> None:
    config, diags = check(
        "global\n    ca-base /etc/ssl/certs\n"
        "backend app\n    default-server check inter 3s fall 5\n"
        "    server s1 127.0.0.1:9000 rise 4 weight 50 backup maxconn 10 send-proxy-v2\n"
        "    server s2 app.internal:9001 ssl verify required ca-file ca.pem sni "
        "str(app.example.test) no-check disabled\n"
    )
    assert diags == []
    assert config is not None
    s1, s2 = config.backend("app").servers
    assert (s1.check, s1.inter_ms, s1.rise, s1.fall, s1.weight) == (True, 3000, 4, 5, 50)
    assert s1.backup
    assert s1.maxconn == 10
    assert s1.send_proxy is ProxyProtocol.V2
    assert (s2.check, s2.ssl, s2.verify, s2.disabled) == (False, True, Verify.REQUIRED, True)
    assert (s2.ca_file, s2.sni) == ("/etc/ssl/certs/ca.pem", "str(app.example.test)")
    assert s2.address.family is AddressFamily.HOSTNAME


def test_server_errors() -> None:
    cases = {
        "server s1": "'server' expects <name> and <addr>[:<port>] as arguments.",
        "server s1 127.0.0.1": "'server s1' : missing port number in '127.0.0.1'",
        "server s1 127.0.0.1:80 weight 300": "'server s1' : 'weight' : 300 is higher than the "
        "maximum 256.",
        "server s1 127.0.0.1:80 rise": "'server s1' : 'rise' expects an argument.",
        "server s1 127.0.0.1:80 inter 2x": "unexpected character 'x' in 'inter'",
        "server s1 127.0.0.1:80 verify optional": "'server s1' : 'verify' : expects 'none' or "
        "'required'.",
        "server s1 127.0.0.1:80 cookie a": "'server s1' : 'cookie' is a HAProxy keyword that "
        "staplegate does not support and it would change traffic",
        "server s1 127.0.0.1:80 chek": "'server s1' unknown keyword 'chek'. Did you mean "
        "'check' maybe ?",
    }
    for line, message in cases.items():
        assert one_error(f"backend app\n    {line}\n") == A.format(2, message), line


# ------------------------------------------------------------------ rules
def test_use_backend_conditions() -> None:
    config, diags = check(
        "frontend fe\n    bind :443\n"
        "    acl is_shop req.ssl_sni -i Shop.Example.Test\n"
        "    use_backend app if is_shop\n"
        "    use_backend app unless { ssl_fc_sni -m end .example.test }\n"
        "    use_backend app if !is_shop { ssl_fc }\n"
        "    default_backend app\n" + BACKEND
    )
    assert diags == []
    assert config is not None
    first, second, third = config.frontend("fe").use_backends
    assert first.condition is not None
    assert not first.condition.unless
    (term,) = first.condition.terms
    assert (term.fetch, term.values, term.ignore_case) == (
        AclFetch.REQ_SSL_SNI,
        ("shop.example.test",),
        True,
    )
    assert second.condition is not None
    assert second.condition.unless
    assert second.condition.terms[0].match is AclMatch.END
    assert third.condition is not None
    assert [t.negated for t in third.condition.terms] == [True, False]
    assert third.condition.terms[1].fetch is AclFetch.SSL_FC


def test_condition_errors() -> None:
    help_text = (
        "staplegate understands only 'if|unless { ssl_fc_sni -i HOST... }' conditions "
        "(also req.ssl_sni, ssl_fc, ssl_c_used, ssl_c_verify N, hdr(host) in mode http, "
        "and named ACLs of those forms)"
    )
    cases = {
        "use_backend app if { path -i a }": "'use_backend' : fetch 'path' is not "
        f"supported: {help_text}; ignoring the condition would change traffic",
        "use_backend app if unknown_acl": "'use_backend' : unknown or unsupported ACL "
        f"'unknown_acl' in 'if unknown_acl': {help_text}",
        "use_backend app if { ssl_fc_sni a } || { ssl_fc_sni b }": "'use_backend' : 'if { "
        "ssl_fc_sni a } || { ssl_fc_sni b }' uses '||' : "
        f"{help_text}; write one rule per alternative",
        "use_backend app if { ssl_fc_sni -m reg ^a }": "'use_backend' : match method '-m reg' "
        f"is not supported: {help_text}",
        "use_backend app if { ssl_fc_sni }": "'use_backend' : 'ssl_fc_sni' needs at least one "
        "host name to match.",
        "use_backend app if { ssl_fc_sni a": "'use_backend' : missing closing '}' in condition.",
        "use_backend": "'use_backend' expects a backend name.",
        "acl host path -i a": "'acl host' : fetch 'path' is not supported: "
        f"{help_text}; ignoring the condition would change traffic",
    }
    for line, message in cases.items():
        text = f"frontend fe\n    bind :443\n    {line}\n    default_backend app\n" + BACKEND
        assert one_error(text) == A.format(3, message), line


def test_http_request_rules() -> None:
    config, diags = check(
        "frontend fe\n    mode http\n    bind :80\n"
        "    http-request redirect scheme https code 301 unless { ssl_fc }\n"
        "    http-request return status 404 content-type text/plain string nope\n"
        "    http-request return status 503 content-type text/html file err/503.html\n"
        "    http-request deny deny_status 429 if { ssl_fc_sni -i bad.example.test }\n"
        "    http-request deny\n"
        "    http-request set-header X-Forwarded-Proto https if { ssl_fc }\n"
        "    http-request add-header X-Pct 100%%\n"
        "    http-request set-header X-Src %[src]:%[src_port]%%\n"
        "    http-request del-header X-Debug -m str\n"
        "    default_backend app\nbackend app\n    mode http\n    server a 127.0.0.1:1\n"
    )
    assert diags == []
    assert config is not None
    actions = [r.action for r in config.frontend("fe").http_request_rules]
    assert actions == [
        HttpRedirectScheme("https", 301),
        HttpReturn(404, "text/plain", "nope", None),
        HttpReturn(503, "text/html", None, "err/503.html"),
        HttpDeny(429),
        HttpDeny(403),
        HttpSetHeader("X-Forwarded-Proto", "https"),
        HttpSetHeader("X-Pct", "100%%", add=True),
        HttpSetHeader("X-Src", "%[src]:%[src_port]%%", add=False),
        HttpDelHeader("X-Debug"),
    ]
    assert config.frontend("fe").http_request_rules[0].condition is not None


def test_http_request_errors() -> None:
    cases = {
        "http-request return status 99": "'http-request return' : status code must be an "
        "integer between 200 and 599 (got '99').",
        "http-request return status 200 lf-string x": "'http-request return lf-string' is a "
        "HAProxy keyword that staplegate does not support and it would change traffic",
        "http-request return string a file b": "'http-request return' : 'string' and 'file' "
        "are mutually exclusive.",
        "http-request deny deny_status x": "'http-request deny' : status code must be an "
        "integer between 200 and 599 (got 'x').",
        "http-request redirect location /x": "'http-request redirect location' is a HAProxy "
        "keyword that staplegate does not support and it would change traffic",
        "http-request redirect scheme ftp": "'http-request redirect' : scheme 'ftp' is not "
        "supported (use http or https).",
        "http-request set-header X-A %[req.cook(x)]": "'http-request set-header' : sample "
        "fetch 'req.cook' is not supported (known: src, src_port, ssl_c_der, ssl_c_i_dn, "
        "ssl_c_notafter, ssl_c_notbefore, ssl_c_s_dn, ssl_c_serial, ssl_c_sha1, ssl_c_used, "
        "ssl_c_verify, ssl_fc, ssl_fc_sni)",
        "http-request set-header X-A %[ssl_c_der]": "'http-request set-header' : sample fetch "
        "'ssl_c_der' is binary: write '%[ssl_c_der,hex]' or '%[ssl_c_der,base64]'",
        "http-request set-header X-A %ci": "'http-request set-header' : log-format variable "
        "'%ci…' is not supported in header values; use '%[fetch]' or write '%%' for a "
        "literal '%'",
        "http-request set-header X-A": "'http-request set-header' expects exactly 2 arguments.",
        "http-request set-var(txn.x) str(a)": "'http-request set-var(txn.x)' is a HAProxy "
        "keyword that staplegate does not support and it would change traffic",
        "http-request set-hdr X-A b": "'http-request' : unknown action 'set-hdr'; did you mean "
        "'set-header' maybe ?",
        "http-request set-path /x": "'http-request set-path' is a HAProxy keyword that "
        "staplegate does not support and it would change traffic",
    }
    for line, message in cases.items():
        text = f"frontend fe\n    bind :80\n    {line}\n    default_backend app\n" + BACKEND
        assert one_error(text) == A.format(3, message), line


def test_http_request_in_defaults_is_refused() -> None:
    assert one_error("defaults\n    http-request deny\n") == A.format(
        2,
        "'http-request rules in a 'defaults' section are not supported by staplegate; "
        "write them in each proxy".replace("'http-request rules", "'http-request' rules"),
    )


# ------------------------------------------------------------------ defaults and listen
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


def test_errors_are_all_collected() -> None:
    found = errors(
        "global\n    frobnicate\n    maxconn x\nfrontend fe\n    bind :80 bogus\n"
        "    mode udp\n    default_backend missing\n"
    )
    assert [e.split("] : ", 1)[0].rsplit(":", 1)[1] for e in found] == ["2", "3", "5", "6", "4"]


def test_ocsp_update_maxconn_and_rate_limit_are_staplegate_knobs() -> None:
    config, diags = check("global\n    ocsp-update.maxconn 4\n    ocsp-update.rate-limit 20\n")
    assert diags == []
    assert config is not None
    assert (config.global_.ocsp_update_maxconn, config.global_.ocsp_update_rate_limit) == (4, 20)
    defaults, _ = check("global\n")
    assert defaults is not None
    assert (defaults.global_.ocsp_update_maxconn, defaults.global_.ocsp_update_rate_limit) == (
        16,
        250,
    )
    assert one_error("global\n    ocsp-update.maxconn 0\n") == A.format(
        2, "'ocsp-update.maxconn' expects an integer argument (0 is lower than the minimum 1)."
    )
    assert one_error("global\n    ocsp-update.rate-limit\n") == A.format(
        2, "'ocsp-update.rate-limit' expects an integer argument."
    )


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


def test_tune_http_maxhdr_is_read_as_haproxy_range_1_to_32767() -> None:
    config, diags = check("global\n    tune.http.maxhdr 200\n")
    assert config is not None
    assert config.global_.tune_http_maxhdr == 200
    assert diags == []
    default, _ = check("global\n")
    assert default is not None
    assert default.global_.tune_http_maxhdr == 101
    message = "'tune.http.maxhdr' expects an integer argument (40000 is higher than the maximum"
    assert one_error("global\n    tune.http.maxhdr 40000\n") == A.format(2, message + " 32767).")
