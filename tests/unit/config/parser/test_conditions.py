"""Conditions: each HAProxy form read by `conditions.py` and evaluated by `http_rules`.

A condition is parsed from configuration text, then judged on requests, so a test says in
HAProxy's words what holds: `acl` lines of one name are alternatives, `||` separates AND
groups, derived keywords (`path_end`, `hdr_sub(x)`) equal `-m`, integer patterns, `-f FILE`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from staplegate.config.diagnostics import Severity
from staplegate.config.model import AclFetch, AclMatch, Condition
from staplegate.config.parser.conditions import looks_past_host, request_fetches
from staplegate.config.parser.dispatch import ConfigParser
from staplegate.config.semantic import build_config
from staplegate.proxy.http_request import RequestHead
from staplegate.proxy.http_rules import RequestFacts, condition_holds

BACKEND = "backend app\n    mode http\n    server a 127.0.0.1:1\n"


def _conditions(lines: str, read_file: dict[str, str] | None = None) -> list[Condition]:
    """The conditions of `http-request deny` rules written after `lines` in a frontend."""
    files = read_file or {}

    def read(path: str) -> str:
        try:
            return files[path]
        except KeyError:
            raise FileNotFoundError(2, "No such file or directory") from None

    parser = ConfigParser(env={}, read_file=read)
    parser.feed(
        "frontend fe\n    mode http\n    bind :80\n"
        + lines
        + "    default_backend app\n"
        + BACKEND,
        file="t.cfg",
    )
    config, diagnostics = build_config(parser.finish())
    problems = [str(d) for d in diagnostics if d.severity is Severity.ERROR]
    assert config is not None, problems
    conditions = [r.condition for r in config.frontend("fe").http_request_rules]
    assert all(c is not None for c in conditions)
    return [c for c in conditions if c is not None]


def _request(
    target: bytes = b"/",
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    method: str = "GET",
    client: str = "192.0.2.10",
    sni: str | None = None,
    port: int = 443,
) -> RequestFacts:
    head_lines = headers if headers is not None else [(b"Host", b"www.example.test")]
    head = RequestHead(method, target, "1.1", list(head_lines), keep_alive=True)
    return RequestFacts(
        (client, 40000), sni, True, head.host, None, target, head, ("127.0.0.1", port)
    )


def _holds(condition_text: str, facts: RequestFacts, acls: str = "") -> bool:
    (condition,) = _conditions(acls + f"    http-request deny {condition_text}\n")
    return condition_holds(condition, facts)


def test_named_acl_on_several_lines_is_an_or_and_or_groups_bind_looser_than_and() -> None:
    acls = (
        "    acl static path_end .css .js\n"
        "    acl static path_beg /static/\n"
        "    acl admin path_beg /admin\n"
        "    acl office src 10.0.0.0/8\n"
    )
    assert _holds("if static", _request(b"/a/b.js?v=1"), acls)
    assert _holds("if static", _request(b"/static/x.png"), acls)
    assert not _holds("if static", _request(b"/x.png"), acls)
    assert _holds("if !static", _request(b"/x.png"), acls)
    # HAProxy: `a b || c` is (a and b) or c
    rule = "if admin !office || { method DELETE }"
    assert _holds(rule, _request(b"/admin/x"), acls)
    assert not _holds(rule, _request(b"/admin/x", client="10.1.2.3"), acls)
    assert _holds(rule, _request(b"/x", method="DELETE", client="10.1.2.3"), acls)
    assert _holds("if { path /a } or { path /b } OR { path /c }", _request(b"/c"))


@pytest.mark.parametrize(
    ("criterion", "target", "expected"),
    [
        ("path_sub -i /API/", b"/v1/api/x", True),
        ("path_reg ^/v[0-9]+/", b"/v12/x", True),
        ("path_reg ^/v[0-9]+/", b"/vx/x", False),
        ("path_dir static", b"/a/static/b.png", True),
        ("path_dir stat", b"/a/static/b.png", False),
        ("path_len gt 5", b"/abcdef", True),
        ("path_len gt 5", b"/abc", False),
        ("url_beg /a?", b"/a?b=1", True),
        ("url_end =1", b"/a?b=1", True),
        ("query -m sub b=1", b"/a?x=2&b=1", True),
        ("query -m found", b"/a", False),
        ("url_param(b) 1", b"/a?x=2&b=1", True),
        ("url_param(b) -m found", b"/a?bb=1", False),
        ("urlp_beg(id) 12", b"/?id=1234", True),
        ("base_beg www.example.test/app", b"/app/x?q", True),
        ("path -m beg /a /b", b"/b/c", True),
        ("path -m str /a", b"/a", True),
        ("path /a", b"/a/", False),
    ],
)
def test_request_line_fetches(criterion: str, target: bytes, expected: bool) -> None:
    assert _holds(f"if {{ {criterion} }}", _request(target)) is expected, criterion


def test_method_header_and_connection_fetches() -> None:
    headers = [
        (b"Host", b"Cloud.Example.Test:8443"),
        (b"X-Tag", b"a, b"),
        (b"X-Tag", b"c"),
        (b"User-Agent", b"curl/8.0"),
    ]
    facts = _request(b"/", headers, method="POST", sni="cloud.example.test", port=8443)
    cases = {
        "{ method POST PUT }": True,
        "{ method GET }": False,
        "{ hdr_sub(host) -i cloud }": True,
        "{ hdr_beg(host) cloud }": False,  # case matters without -i
        "{ hdr_dom(host) -i example.test }": True,
        "{ hdr_dom(host) -i ample.test }": False,
        "{ hdr(host),lower -m beg cloud. }": True,
        "{ req.hdr(x-tag) b }": True,  # hdr() splits at commas
        "{ req.fhdr(x-tag) b }": False,  # fhdr() does not
        "{ req.fhdr(x-tag) -m str 'a, b' }": True,
        "{ hdr_cnt(x-tag) eq 3 }": True,
        "{ hdr_cnt(x-missing) 0 }": True,
        "{ hdr(x-tag,-1) c }": True,
        "{ hdr(x-tag,1) c }": False,
        "{ hdr(user-agent) -m reg -i ^CURL/ }": True,
        "{ hdr(x-missing) -m found }": False,
        "{ hdr(x-tag) -m found }": True,
        "{ hdr_len(user-agent) 8 }": True,
        "{ dst_port 8443 }": True,
        "{ dst_port 80 443 }": False,
        "{ dst_port 8000:9000 }": True,
        "{ dst_port lt 1024 }": False,
        "{ src_port ge 1024 }": True,
        "{ ssl_fc_sni_end .example.test }": True,
        "{ ssl_fc_sni -m found }": True,
        "{ ssl_c_used }": False,
        "{ ssl_c_s_dn(CN) -m found }": False,
    }
    for condition, expected in cases.items():
        assert _holds(f"if {condition}", facts) is expected, condition


def test_pattern_files_are_read_once_with_comments_and_blank_lines_skipped() -> None:
    (condition,) = _conditions(
        "    acl blocked src -f /etc/blocked.lst\n    http-request deny if blocked\n",
        {"/etc/blocked.lst": "# bad networks\n\n  192.0.2.0/24  \n198.51.100.7\n"},
    )
    assert condition.terms[0].match is AclMatch.IP
    assert len(condition.terms[0].networks) == 2
    assert condition_holds(condition, _request(client="192.0.2.99"))
    assert condition_holds(condition, _request(client="198.51.100.7"))
    assert not condition_holds(condition, _request(client="198.51.100.8"))
    (paths,) = _conditions(
        "    http-request deny if { path_beg -i -f paths.txt /extra }\n",
        {"paths.txt": "/Admin\n/debug\n"},
    )
    assert paths.terms[0].values == ("/admin", "/debug", "/extra")


def test_patterns_are_compiled_at_parse_time() -> None:
    (condition,) = _conditions("    http-request deny if { path_reg -i ^/x } { dst_port gt 80 }\n")
    regex, port = condition.terms
    assert regex.regexes == (re.compile("^/x", re.IGNORECASE),)
    assert port.ranges == ((81, None),)


def test_which_conditions_need_a_request_and_per_request_routing() -> None:
    host, method, sni = _conditions(
        "    http-request deny if { hdr(host) -i a.test }\n"
        "    http-request deny if { ssl_fc_sni a.test } || { method POST }\n"
        "    http-request deny if { ssl_fc_sni a.test }\n"
    )
    assert host.terms[0].fetch is AclFetch.HDR_HOST
    assert (request_fetches(host), looks_past_host(host)) == (["hdr(host)"], False)
    assert (request_fetches(method), looks_past_host(method)) == (["method"], True)
    assert (request_fetches(sni), looks_past_host(sni)) == ([], False)


def test_a_missing_pattern_file_is_an_alert_naming_the_line() -> None:
    parser = ConfigParser(env={}, read_file=lambda path: Path(path).read_text())
    parser.feed(
        "frontend fe\n    mode http\n    bind :80\n"
        "    acl bad path -f /nonexistent/staplegate-list.txt\n" + BACKEND,
        file="t.cfg",
    )
    (error,) = [str(d) for d in parser.finish().diagnostics if d.severity is Severity.ERROR]
    assert error == (
        "[ALERT] config : parsing [t.cfg:4] : 'acl bad' : failed to open pattern file "
        "</nonexistent/staplegate-list.txt> : No such file or directory."
    )
