"""Parser, shared readers: `log` lines (global and proxies) with HAProxy-style messages."""

from __future__ import annotations

from staplegate.config.diagnostics import SourceLocation
from staplegate.config.model import (
    LogFormat,
    LogTargetKind,
    TlsVersion,
)
from staplegate.config.parser.readers import read_ssl_options
from staplegate.config.parser.state import ParserState
from tests.unit.config.helpers import A, check, one_error


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


def test_ssl_options_reader_is_shared_by_global_defaults_and_bind() -> None:
    state = ParserState()
    here = SourceLocation("t.cfg", 3)
    options = read_ssl_options(state, ["ssl-min-ver", "TLSv1.2", "no-tls-tickets"], here, "k")
    assert options is not None
    assert (options.min_ver, options.no_tls_tickets) == (TlsVersion.TLSV12, True)
    assert read_ssl_options(state, ["force-tlsv12"], here, "k") is None
    assert read_ssl_options(state, ["bogus"], here, "k") is None
    assert [d.message for d in state.sink.snapshot()] == [
        "'k force-tlsv12' is a HAProxy keyword that staplegate does not support and it would "
        "change traffic",
        "'k' : unknown or unsupported option 'bogus'.",
    ]
