"""Configuration diagnostics: HAProxy's line shape, and a sink that keeps the order found."""

from __future__ import annotations

from staplegate.config.diagnostics import (
    Diagnostic,
    DiagnosticSink,
    Reason,
    Severity,
    SourceLocation,
)


def test_a_located_diagnostic_prints_as_haproxy_does_without_the_pid() -> None:
    diagnostic = Diagnostic(Severity.ERROR, "/etc/haproxy.cfg", 12, "bind", "no address")
    assert str(diagnostic) == "[ALERT] config : parsing [/etc/haproxy.cfg:12] : no address"
    assert diagnostic.location == SourceLocation("/etc/haproxy.cfg", 12)
    assert str(diagnostic.location) == "/etc/haproxy.cfg:12"
    whole_file = Diagnostic(Severity.WARNING, "a.cfg", 0, "", "no frontend")
    assert str(whole_file) == "[WARNING] config : no frontend"


def test_the_sink_keeps_the_order_found_and_knows_when_one_is_fatal() -> None:
    sink = DiagnosticSink()
    where = SourceLocation("a.cfg", 3)
    sink.warning(where, "option", "ignored")
    assert not sink.has_errors
    sink.error(where, "timeout", "not a duration")
    sink.add(Diagnostic(Severity.INFO, "a.cfg", 4, "crt", "no OCSP URI"))
    sink.extend([Diagnostic(Severity.WARNING, "b.cfg", 1, "x", "late")])
    found = sink.snapshot()
    assert [d.keyword for d in found] == ["option", "timeout", "crt", "x"]
    assert [d.reason for d in found[:2]] == [Reason.IGNORED, Reason.INVALID_VALUE]
    assert sink.has_errors
    assert [d.severity.value for d in found] == ["WARNING", "ALERT", "NOTICE", "WARNING"]
    sink.warning(where, "more", "after the snapshot")
    assert len(found) == 4  # a snapshot is a copy
