"""Conditional blocks: HAProxy's `.if` language, read while the lines are parsed."""

from __future__ import annotations

import pytest

from staplegate.config.parser.conditional import ConditionError, evaluate
from staplegate.config.parser.dispatch import parse_texts
from tests.unit.config.helpers import A, W, check, one_error


def test_expressions() -> None:
    env = {"WITH_QUIC": "1", "NAME": "edge"}
    cases = {
        "defined(WITH_QUIC)": True,
        "defined(NOPE)": False,
        "feature(QUIC)": False,  # staplegate has no QUIC: the block is skipped
        "feature(OPENSSL) && !feature(LUA)": True,
        "feature(QUIC) || streq(edge,edge)": True,
        "!(defined(NOPE) || strneq(a,a))": True,
        "version_atleast(2.6) && version_before(3.3)": True,
        "version_atleast(3.3)": False,
        "strstr(haproxy,prox)": True,
        "1 && 0": False,
        "openssl_version_atleast(1.0.0)": True,
    }
    for text, expected in cases.items():
        assert evaluate(text.split(), env) is expected, text
    for bad in ("frobnicate(x)", "(defined(A)", "defined(A) &&", "version_atleast(x)"):
        with pytest.raises(ConditionError):
            evaluate(bad.split(), env)


def test_blocks_choose_the_lines_read() -> None:
    text = (
        "global\n"
        ".if feature(QUIC)\n"
        "    this-keyword-does-not-exist\n"
        ".elif defined(HOME_X)\n"
        "    maxconn 10\n"
        ".else\n"
        "    maxconn 20\n"
        ".endif\n"
        ".if version_atleast(2.0)\n"
        '    .warning "reading the 2.0+ part"\n'
        "    .if feature(LUA)\n"
        "        lua-load /x.lua\n"
        "    .endif\n"
        ".endif\n"
    )
    config, diags = check(text)
    assert config is not None
    assert config.global_.maxconn == 20
    assert diags == [W.format(10, "reading the 2.0+ part")]
    parsed = parse_texts([("t.cfg", text)], env={"HOME_X": "1"})
    assert parsed.global_.maxconn == 10


def test_block_errors() -> None:
    assert one_error(".endif\n") == A.format(1, "'.endif' without a matching '.if'.")
    assert one_error(".if 1\n.else\n.elif 1\n.endif\n") == A.format(
        3, "'.elif' after '.else' in the same block."
    )
    assert one_error('.if 1\n.alert "stop here"\n.endif\n') == A.format(2, "stop here")
