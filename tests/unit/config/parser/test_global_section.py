"""Parser, `global` section: every supported keyword's happy path and error paths."""

from __future__ import annotations

import pytest

from staplegate.config.diagnostics import Reason, Severity
from staplegate.config.model import (
    CrlWatchMode,
    StatsLevel,
    TlsVersion,
)
from staplegate.config.values import AddressFamily
from tests.unit.config.helpers import SIDECAR, A, W, check, diagnostics, one_error, warnings

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
        "change traffic" + SIDECAR.format("Lua"),
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


def test_ocsp_update_crl_watch_is_a_staplegate_knob_defaulting_to_no_ocsp_only() -> None:
    defaults, _ = check("global\n")
    assert defaults is not None
    assert defaults.global_.ocsp_update_crl_watch is CrlWatchMode.NO_OCSP_ONLY
    for word, mode in (("on", CrlWatchMode.ON), ("off", CrlWatchMode.OFF)):
        config, diags = check(f"global\n    ocsp-update.crl-watch {word}\n")
        assert diags == []
        assert config is not None
        assert config.global_.ocsp_update_crl_watch is mode
    for bad in ("", " yes", " on off"):
        assert one_error(f"global\n    ocsp-update.crl-watch{bad}\n") == A.format(
            2, "'ocsp-update.crl-watch' expects <on|off|no-ocsp-only>."
        )


def test_ocsp_update_revoked_hook_takes_the_rest_of_the_line_as_a_command() -> None:
    defaults, _ = check("global\n")
    assert defaults is not None
    assert defaults.global_.ocsp_update_revoked_hook is None
    config, diags = check(
        'global\n    ocsp-update.revoked-hook "/usr/local/bin/page-oncall --team tls" now\n'
    )
    assert diags == []
    assert config is not None
    assert config.global_.ocsp_update_revoked_hook == "/usr/local/bin/page-oncall --team tls now"
    assert one_error("global\n    ocsp-update.revoked-hook\n") == A.format(
        2, "'ocsp-update.revoked-hook' expects a command to run."
    )


def test_shared_store_url_and_password_file() -> None:
    config, diags = check(
        "global\n"
        "    ocsp-update.shared-store rediss://redis.internal:6380/2\n"
        "    ocsp-update.shared-store-password-file /etc/staplegate/redis.pass\n"
    )
    assert diags == []
    assert config is not None
    assert config.global_.ocsp_update_shared_store == "rediss://redis.internal:6380/2"
    assert config.global_.ocsp_update_shared_store_password_file == "/etc/staplegate/redis.pass"


def test_shared_store_with_a_password_in_the_url_is_an_alert_that_never_echoes_it() -> None:
    error = one_error("global\n    ocsp-update.shared-store redis://:hunter2@127.0.0.1:6379/0\n")
    assert error.startswith(A.format(2, "'ocsp-update.shared-store': the URL must not carry")[:40])
    assert "line 2" in error or ":2]" in error
    assert "hunter2" not in error
    assert "STAPLEGATE_REDIS_PASSWORD" in error


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:6379", "must start with redis://"),
        ("redis://127.0.0.1:notaport/0", "port"),
        ("redis:///0", "names no host"),
        ("redis://127.0.0.1:6379/zero", "database number"),
        ("redis://127.0.0.1:6379/0?ssl=1", "no query"),
    ],
)
def test_shared_store_bad_urls_are_alerts(url: str, why: str) -> None:
    error = one_error(f"global\n    ocsp-update.shared-store {url}\n")
    assert why in error
    assert one_error("global\n    ocsp-update.shared-store\n").endswith(
        "'ocsp-update.shared-store' expects one redis:// or rediss:// URL."
    )
