"""The parser state: shared argument readers and the ignored/refused/unknown tail."""

from __future__ import annotations

from staplegate.config.diagnostics import Reason, Severity, SourceLocation
from staplegate.config.parser.global_section import GLOBAL
from staplegate.config.parser.proxies import PROXY
from staplegate.config.parser.registry import Section
from staplegate.config.parser.state import ParserState
from tests.unit.config.helpers import SIDECAR

HERE = SourceLocation("t.cfg", 7)


def _messages(state: ParserState) -> list[tuple[Severity, str]]:
    return [(d.severity, d.message) for d in state.sink.snapshot()]


def test_int_and_time_readers_keep_haproxy_messages() -> None:
    state = ParserState()
    assert state.int_arg("maxconn", "12", HERE, minimum=0) == 12
    assert state.int_arg("maxconn", None, HERE) is None
    assert state.time_arg("timeout client", "5s", HERE) == 5000
    assert state.time_arg("timeout client", "5x", HERE) is None
    assert state.time_arg("timeout client", "30d", HERE) is None
    assert _messages(state) == [
        (Severity.ERROR, "'maxconn' expects an integer argument."),
        (Severity.ERROR, "unexpected character 'x' in 'timeout client'"),
        (
            Severity.ERROR,
            "timer overflow in argument '30d' to 'timeout client' (maximum value is "
            "2147483647 ms or ~24.8 days)",
        ),
    ]


def test_valid_name() -> None:
    state = ParserState()
    assert state.valid_name("app-1.x:y_z", "backend", HERE)
    assert not state.valid_name("a b", "backend", HERE)
    assert _messages(state) == [
        (Severity.ERROR, "character ' ' is not permitted in 'backend' name 'a b'."),
    ]


def test_classify_rest_warns_errs_and_suggests() -> None:
    state = ParserState()
    state.classify_rest(Section.GLOBAL, GLOBAL, ["chroot", "/x"], HERE)
    state.classify_rest(Section.GLOBAL, GLOBAL, ["tune.bufsize", "1"], HERE)
    state.classify_rest(Section.GLOBAL, GLOBAL, ["lua-load", "x.lua"], HERE)
    state.classify_rest(Section.GLOBAL, GLOBAL, ["chrot"], HERE)
    state.classify_rest(Section.BACKEND, PROXY, ["http-reuse", "never"], HERE)
    state.classify_rest(Section.BACKEND, PROXY, ["option", "bogus"], HERE)
    state.classify_rest(Section.BACKEND, PROXY, ["stats", "frob"], HERE)
    found = _messages(state)
    assert [severity for severity, _ in found] == [
        Severity.WARNING,
        Severity.WARNING,
        Severity.ERROR,
        Severity.ERROR,
        Severity.ERROR,
        Severity.ERROR,
        Severity.ERROR,
    ]
    assert found[0][1].endswith("it is ignored (staplegate does not chroot)")
    assert found[1][1].endswith("(performance tunings do not change traffic)")
    assert found[2][1] == (
        "'lua-load' is a HAProxy keyword that staplegate does not support and it would "
        "change traffic" + SIDECAR.format("Lua")
    )
    assert (
        found[3][1] == "unknown keyword 'chrot' in 'global' section; did you mean 'chroot' maybe ?"
    )
    assert "'http-reuse never'" in found[4][1]
    assert found[5][1] == "unknown option 'bogus'."
    # `stats frob` is unknown, but `stats` alone is a refused proxy keyword
    assert found[6][1].startswith("'stats' is a HAProxy keyword")
    assert state.sink.snapshot()[6].reason is Reason.UNSUPPORTED
