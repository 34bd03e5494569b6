"""`http-request` rules and conditions on a request head: Host, SNI, redirects, framing."""

from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import replace
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from staplegate.config.diagnostics import SourceLocation
from staplegate.config.model import (
    AclFetch,
    AclMatch,
    AclTerm,
    Condition,
    HttpAllow,
    HttpAuth,
    HttpDelHeader,
    HttpDeny,
    HttpRedirect,
    HttpRedirectScheme,
    HttpReplace,
    HttpSetDst,
    HttpSetHeader,
    HttpSetStatus,
    HttpSetTarget,
    HttpUseService,
    PasswordScheme,
    Userlist,
    UserlistRef,
    UserlistUser,
)
from staplegate.config.parser.rules import PREDEFINED_ACLS
from staplegate.config.samples import (
    SampleSyntaxError,
    parse_header_format,
    parse_sample_expression,
)
from staplegate.proxy.http_message import BodyKind
from staplegate.proxy.http_request import RequestHead, RequestReader
from staplegate.proxy.http_response import ResponseHead
from staplegate.proxy.http_rules import (
    EXPOSITION_CONTENT_TYPE,
    CompiledRule,
    RequestFacts,
    ServiceSnapshot,
    StatsService,
    apply_response_rules,
    apply_rules,
    condition_holds,
    expand,
    replace_headers,
    request_path,
    request_sample,
)


def test_conditions_on_host_and_sni() -> None:
    facts = RequestFacts(("192.0.2.1", 1), "www.example.test", True, "API.test")
    host = AclTerm(AclFetch.HDR_HOST, ("api.test",), ignore_case=True)
    sni = AclTerm(AclFetch.SSL_FC_SNI, ("www.example.test",))
    assert condition_holds(Condition(False, (host, sni)), facts)
    assert not condition_holds(Condition(True, (host,)), facts)
    assert not condition_holds(
        Condition(False, (AclTerm(AclFetch.HDR_HOST, ("api.test",)),)), facts
    )


def test_redirect_keeps_host_and_path() -> None:
    head = RequestHead("GET", b"/p?q", "1.1", [(b"Host", b"h.test")], keep_alive=True)
    facts = RequestFacts(("192.0.2.1", 1), None, True, "h.test")
    answer, name = apply_rules([CompiledRule(HttpRedirectScheme("https"))], head, facts)
    assert name == "redirect"
    assert answer is not None
    assert ("location", "https://h.test/p?q") in answer.headers
    assert answer.status == 302


def test_rules_that_change_host_or_hop_by_hop_headers_are_seen_by_later_steps() -> None:
    head = RequestHead("GET", b"/", "1.1", [(b"Host", b"a.test"), (b"X-Y", b"1")], keep_alive=True)
    assert head.encode() == b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Y: 1\r\n\r\n"
    facts = RequestFacts(("192.0.2.1", 1), None, True, head.host)
    rules = [
        CompiledRule(HttpSetHeader("Host", "b.test")),
        CompiledRule(HttpSetHeader("Connection", "close", add=True)),
        CompiledRule(HttpDelHeader("X-Y")),
    ]
    assert apply_rules(rules, head, facts) == (None, None)
    assert head.host == "b.test"
    assert head.encode() == b"GET / HTTP/1.1\r\nHost: b.test\r\n\r\n"  # Connection dropped


def test_rules_cannot_change_the_framing_the_reader_found() -> None:
    head = RequestReader().feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")[0]
    assert isinstance(head, RequestHead)
    facts = RequestFacts(("192.0.2.1", 1), None, True, "a")
    rules = [CompiledRule(HttpDelHeader("Content-Length"))]
    apply_rules(rules, head, facts)
    assert (head.body, head.content_length) == (BodyKind.LENGTH, 3)
    assert head.encode() == b"POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 3\r\n\r\n"
    chunked = RequestReader().feed(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )[0]
    assert isinstance(chunked, RequestHead)
    apply_rules([CompiledRule(HttpSetHeader("Content-Length", "0"))], chunked, facts)
    assert chunked.body is BodyKind.CHUNKED
    assert chunked.encode() == b"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    "rule",
    [
        HttpSetHeader("Content-Length", "abc"),
        HttpSetHeader("Content-Length", "3", add=True),
        HttpSetHeader("Transfer-Encoding", "chunked", add=True),
        HttpDelHeader("Content-Length"),
    ],
)
def test_any_rule_on_framing_headers_leaves_one_original_framing_line(
    rule: HttpSetHeader | HttpDelHeader,
) -> None:
    head = RequestReader().feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")[0]
    assert isinstance(head, RequestHead)
    facts = RequestFacts(("192.0.2.1", 1), None, True, "a")
    apply_rules([CompiledRule(rule)], head, facts)
    assert head.encode() == b"POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 3\r\n\r\n"


def test_a_rule_value_with_a_line_break_is_never_sent() -> None:
    head = RequestReader().feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")[0]
    assert isinstance(head, RequestHead)
    facts = RequestFacts(("192.0.2.1", 1), "x\r\n\r\nGET /admin HTTP/1.1", True, "a")
    apply_rules([CompiledRule(HttpSetHeader("X-Sni", "%[ssl_fc_sni]"))], head, facts)
    assert head.headers[-1] == (b"X-Sni", b"x\\x0D\\x0A\\x0D\\x0AGET /admin HTTP/1.1")
    head.headers[-1] = (b"X-Sni", b"x\r\n\r\nGET /admin HTTP/1.1")  # whatever filled it in
    head.extra = b"X-Forwarded-For: 192.0.2.1\r\n"
    assert head.encode() == b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n"
    head.extra = b"X-Forwarded-For: 1\nX: 2\r\n"
    assert head.encode() == b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


@pytest.mark.parametrize(
    ("target", "location"),
    [
        (b"/x?y=1", "https://a.test/x?y=1"),
        (b"http://a.test/x?y=1", "https://a.test/x?y=1"),
        (b"http://u@a.test?y=1", "https://a.test/?y=1"),
        (b"http://a.test", "https://a.test/"),
    ],
)
def test_redirect_scheme_uses_the_host_and_the_path_of_any_target(
    target: bytes, location: str
) -> None:
    head = RequestHead("GET", target, "1.1", [(b"Host", b"a.test")], keep_alive=True)
    answer, _ = apply_rules(
        [CompiledRule(HttpRedirectScheme("https", 301))],
        head,
        RequestFacts(("127.0.0.1", 1), None, False, head.host),
    )
    assert answer is not None
    assert dict(answer.headers)["location"] == location


@pytest.mark.parametrize(
    ("target", "path"),
    [
        (b"/a/b?x=1", "/a/b"),
        (b"/a%20b", "/a%20b"),  # not decoded, as HAProxy's `path`
        (b"/", "/"),
        (b"http://h.test/p?q", "/p"),
        (b"http://u@h.test:8080/p/q", "/p/q"),
        (b"http://h.test", None),
        (b"http://h.test?q", None),
        (b"*", None),
        (b"h.test:443", None),
        (None, None),
    ],
)
def test_request_path_is_haproxys_path_fetch(target: bytes | None, path: str | None) -> None:
    assert request_path(target) == path


def test_path_and_path_beg_conditions() -> None:
    def facts(target: bytes) -> RequestFacts:
        return RequestFacts(("192.0.2.1", 1), None, False, "h.test", None, target)

    exact = AclTerm(AclFetch.PATH, ("/metrics",))
    begins = AclTerm(AclFetch.PATH, ("/api/",), match=AclMatch.BEGIN)
    folded = AclTerm(AclFetch.PATH, ("/admin",), ignore_case=True, match=AclMatch.BEGIN)
    assert condition_holds(Condition(False, (exact,)), facts(b"/metrics?x"))
    assert not condition_holds(Condition(False, (exact,)), facts(b"/metrics/"))
    assert condition_holds(Condition(False, (begins,)), facts(b"http://h.test/api/v1"))
    assert not condition_holds(Condition(False, (begins,)), facts(b"/API/v1"))
    assert condition_holds(Condition(False, (folded,)), facts(b"/ADMIN/x"))
    assert not condition_holds(Condition(False, (exact,)), facts(b"*"))  # no path: no match
    # mode tcp has no request: a path condition never holds, a negated one always does
    tcp = RequestFacts(("192.0.2.1", 1), None)
    assert not condition_holds(Condition(False, (begins,)), tcp)
    assert condition_holds(Condition(False, (replace(begins, negated=True),)), tcp)


@pytest.mark.parametrize(
    ("client", "held"),
    [
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),  # an IPv4-mapped client matches an IPv4 pattern
        ("192.0.2.1", False),
        ("::2", False),
        ("/run/staplegate.sock", False),  # not an address: nothing matches
    ],
)
def test_localhost_is_src_127_0_0_1_8_and_ipv6_loopback(client: str, held: bool) -> None:
    localhost = PREDEFINED_ACLS["LOCALHOST"]
    facts = RequestFacts((client, 1), None)
    assert condition_holds(Condition(False, (localhost,)), facts) is held
    assert condition_holds(Condition(False, (replace(localhost, negated=True),)), facts) is (
        not held
    )


def test_src_networks_and_the_constant_acls() -> None:
    office = AclTerm(
        AclFetch.SRC,
        ("192.0.2.0/24", "2001:db8::/32"),
        networks=(ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::/32")),
    )
    assert condition_holds(Condition(False, (office,)), RequestFacts(("192.0.2.200", 1), None))
    assert condition_holds(Condition(False, (office,)), RequestFacts(("2001:db8::5", 1), None))
    assert not condition_holds(Condition(False, (office,)), RequestFacts(("192.0.3.1", 1), None))
    facts = RequestFacts(("192.0.2.1", 1), None)
    true, false = PREDEFINED_ACLS["TRUE"], PREDEFINED_ACLS["FALSE"]
    assert condition_holds(Condition(False, (true,)), facts)
    assert not condition_holds(Condition(False, (false,)), facts)
    assert condition_holds(Condition(True, (false,)), facts)  # `unless FALSE`
    assert not condition_holds(Condition(False, (true, false)), facts)


def test_rules_see_the_path_and_the_source() -> None:
    head = RequestHead("GET", b"/admin/users?id=1", "1.1", [(b"Host", b"h.test")], keep_alive=True)
    deny_admin = CompiledRule(
        HttpDeny(),
        Condition(
            False,
            (
                replace(PREDEFINED_ACLS["LOCALHOST"], negated=True),
                AclTerm(AclFetch.PATH, ("/admin",), match=AclMatch.BEGIN),
            ),
        ),
    )
    remote = RequestFacts(("192.0.2.1", 1), None, False, "h.test", None, head.target)
    local = RequestFacts(("127.0.0.1", 1), None, False, "h.test", None, head.target)
    answer, action = apply_rules([deny_admin], head, remote)
    assert answer is not None
    assert (answer.status, action) == (403, "deny")
    assert apply_rules([deny_admin], head, local) == (None, None)


def test_use_service_answers_the_latest_snapshot_and_503_before_the_first() -> None:
    head = RequestHead("GET", b"/metrics", "1.1", [(b"Host", b"h.test")], keep_alive=True)
    facts = RequestFacts(("127.0.0.1", 1), None, False, "h.test", target=b"/metrics")
    snapshot = ServiceSnapshot()
    rule = CompiledRule(HttpUseService("prometheus-exporter"), service=snapshot)
    answer, name = apply_rules([rule], head, facts)
    assert name == "use-service"
    assert answer is not None
    assert answer.status == 503
    snapshot.body = b"# HELP x\n"
    answer, _ = apply_rules([rule], head, facts)
    assert answer is not None
    assert (answer.status, answer.body) == (200, b"# HELP x\n")
    assert ("content-type", EXPOSITION_CONTENT_TYPE) in answer.headers


def _stats_get(target: bytes, *headers: tuple[bytes, bytes]) -> RequestHead:
    return RequestHead("GET", target, "1.1", [(b"Host", b"a.test"), *headers], keep_alive=True)


def test_the_stats_service_answers_its_prefix_with_basic_auth() -> None:
    service = StatsService("stats", "/stats", ["admin:s3cret", "ops:pw"], None)
    assert service.matches(_stats_get(b"/stats"))
    assert service.matches(_stats_get(b"/stats;csv;norefresh"))
    assert not service.matches(_stats_get(b"/other"))
    missing = service.answer(_stats_get(b"/stats"))
    assert missing.status == 401
    assert ("www-authenticate", 'Basic realm="HAProxy Statistics"') in missing.headers
    wrong = _stats_get(b"/stats", (b"Authorization", b"Basic " + base64.b64encode(b"admin:x")))
    assert service.answer(wrong).status == 401
    right = _stats_get(b"/stats", (b"authorization", b"basic " + base64.b64encode(b"ops:pw")))
    assert service.answer(right).status == 503  # nothing pushed by the master yet
    service.html, service.csv = b"<html>page</html>", b"# pxname,\n"
    assert service.answer(right).body == b"<html>page</html>"
    csv = _stats_get(b"/stats;csv", (b"Authorization", b"Basic " + base64.b64encode(b"ops:pw")))
    assert service.answer(csv).body == b"# pxname,\n"
    assert ("content-type", "text/plain; charset=utf-8") in service.answer(csv).headers


def test_a_stats_realm_with_a_quote_stays_one_header_value() -> None:
    service = StatsService("stats", "/", ["a:b"], 'my "realm"')
    header = dict(service.answer(_stats_get(b"/")).headers)["www-authenticate"]
    assert header == 'Basic realm="my \\"realm\\""'
    open_page = StatsService("stats", "/", [], None)
    open_page.html = b"x"
    assert open_page.answer(_stats_get(b"/")).status == 200


def test_stats_admin_gives_the_admin_page_and_takes_posts_when_its_condition_holds() -> None:
    local = AclTerm(
        AclFetch.SRC, (), match=AclMatch.IP, networks=(ipaddress.ip_network("127.0.0.1"),)
    )
    service = StatsService("stats", "/stats", [], None, Condition(False, (local,)))
    service.html, service.csv, service.admin_html = b"ro <!--stats-admin-status-->", b"c", b"rw"
    inside = RequestFacts(("127.0.0.1", 1), None, False)
    outside = RequestFacts(("192.0.2.9", 1), None, False)
    page = _stats_get(b"/stats")
    assert service.answer(page, inside).body == b"rw"
    assert service.answer(page, outside).body == b"ro <!--stats-admin-status-->"
    assert service.answer(page).body == b"ro <!--stats-admin-status-->"  # no facts: not met
    assert service.answer(_stats_get(b"/stats;csv"), inside).body == b"c"
    # the status banner of `;st=<code>`, where the page marks its place
    shown = service.answer(_stats_get(b"/stats;st=DENY"), outside).body
    assert b"Action denied." in shown
    assert b"<!--stats-admin-status-->" not in shown
    post = RequestHead("POST", b"/stats", "1.1", [(b"Host", b"a.test")], keep_alive=True)
    assert service.takes_form(post, inside)
    assert not service.takes_form(post, outside)
    assert not service.takes_form(page, inside)  # a GET is a page
    denied = service.answer(post, outside)
    assert denied.status == 303
    assert ("location", "/stats;st=DENY") in denied.headers
    # `unless`, and a page without `stats admin` never takes a form
    unless = StatsService("stats", "/", [], None, Condition(True, (local,)))
    assert unless.takes_form(post, outside)
    assert not unless.takes_form(post, inside)
    assert not StatsService("stats", "/", [], None).takes_form(post, inside)


def test_stats_auth_comes_before_stats_admin() -> None:
    always = Condition(False, (PREDEFINED_ACLS["TRUE"],))
    service = StatsService("stats", "/", ["admin:pw"], None, always)
    facts = RequestFacts(("127.0.0.1", 1), None, False)
    post = RequestHead("POST", b"/", "1.1", [(b"Host", b"a.test")], keep_alive=True)
    assert not service.takes_form(post, facts)
    assert service.answer(post, facts).status == 401
    token = b"Basic " + base64.b64encode(b"admin:pw")
    signed = RequestHead(
        "POST", b"/", "1.1", [(b"Host", b"a.test"), (b"Authorization", token)], keep_alive=True
    )
    assert service.takes_form(signed, facts)


def test_redirect_location_prefix_and_their_options() -> None:
    """HAProxy's redirect forms: `location` is the whole Location (log-format), `prefix`
    comes before the path and query (`/` alone adds nothing), `drop-query` and
    `append-slash` edit what is appended, `code` picks the status."""
    head = RequestHead("GET", b"/docs?x=1", "1.1", [(b"Host", b"a.test")], keep_alive=True)
    facts = RequestFacts(("192.0.2.1", 1), None, True, "a.test", None, b"/docs?x=1", head)
    cases: list[tuple[HttpRedirect | HttpRedirectScheme, int, str]] = [
        (
            HttpRedirect("location", "https://b.test/%[path]?from=%[hdr(host)]"),
            302,
            "https://b.test//docs?from=a.test",
        ),
        (HttpRedirect("prefix", "https://b.test", 301), 301, "https://b.test/docs?x=1"),
        (HttpRedirect("prefix", "/", 308, drop_query=True, append_slash=True), 308, "/docs/"),
        (HttpRedirectScheme("https", 303, drop_query=True), 303, "https://a.test/docs"),
    ]
    for action, status, location in cases:
        answer, name = apply_rules((CompiledRule(action),), head, facts)
        assert name == "redirect"
        assert answer is not None
        assert (answer.status, dict(answer.headers)["location"]) == (status, location), action


def test_set_path_query_pathq_and_uri() -> None:
    """HAProxy's target rewrites: the other parts kept (an absolute-form target keeps its
    scheme and authority), `set-query` adds `?` only for a value, later conditions see the
    new target, and a result that is no valid target is a 500 (HAProxy's strict-mode)."""
    cases = [
        (b"/a/b?x=1", HttpSetTarget("path", "/new%[path]"), b"/new/a/b?x=1"),
        (b"/a?x=1", HttpSetTarget("query", "y=2&%[query]"), b"/a?y=2&x=1"),
        (b"/a", HttpSetTarget("query", ""), b"/a"),
        (b"/a?", HttpSetTarget("query", ""), b"/a?"),
        (b"/a?x=1", HttpSetTarget("pathq", "/b?z"), b"/b?z"),
        (b"http://h.test/a?x", HttpSetTarget("path", "/c"), b"http://h.test/c?x"),
        (b"/a", HttpSetTarget("uri", "/u?%[method]"), b"/u?GET"),
    ]
    for target, action, expected in cases:
        head = RequestHead("GET", target, "1.1", [(b"Host", b"h.test")], keep_alive=True)
        facts = RequestFacts(("192.0.2.1", 1), None, True, "h.test", None, target, head)
        then = CompiledRule(
            HttpSetHeader("X-Seen", "%[path]"),
            Condition(False, (AclTerm(AclFetch.PATH, ("/nothing",)),), ()),
        )
        answer, _ = apply_rules((CompiledRule(action), then), head, facts)
        assert answer is None
        assert head.target == expected, action
        assert head.encode().startswith(b"GET " + expected + b" HTTP/1.1\r\n")
    head = RequestHead("GET", b"/a", "1.1", [(b"Host", b"h.test")], keep_alive=True)
    facts = RequestFacts(("192.0.2.1", 1), None, True, "h.test", None, b"/a", head)
    answer, name = apply_rules((CompiledRule(HttpSetTarget("path", "/a b")),), head, facts)
    assert answer is not None
    assert (answer.status, name, head.target) == (500, "set-path", b"/a")


def test_field_and_regsub_converters() -> None:
    head = RequestHead(
        "GET", b"/.well-known/acme-challenge/tok3n", "1.1", [(b"Host", b"a.test")], keep_alive=True
    )
    facts = RequestFacts(("192.0.2.1", 1), None, True, "a.test", None, head.target, head)
    assert expand("%[path,field(-1,/)].thumb", facts) == "tok3n.thumb"
    assert expand("%[path,field(2,/)]", facts) == ".well-known"
    assert expand("%[path,field(9,/)]", facts) == ""
    assert expand("%[path,regsub(^/\\.well-known,)]", facts) == "/acme-challenge/tok3n"
    assert expand("%[path,regsub(e,E,g)]", facts) == "/.wEll-known/acmE-challEngE/tok3n"
    assert expand("%[path,regsub(E,x,i)]", facts) == "/.wxll-known/acme-challenge/tok3n"
    for bad in ("%[path,field(0,/)]", "%[path,regsub(a)]", "%[path,lower(1)]", "%[path,json]"):
        with pytest.raises(SampleSyntaxError):
            parse_header_format(bad)


def test_must_staple_gate_fails_while_one_key_has_no_staple() -> None:
    from staplegate.proxy.http_rules import MustStapleGate

    gate = MustStapleGate((b"a", b"b"))
    assert not gate.unstapled()  # no table yet (a worker before its first message)
    held = {b"a": b"staple"}
    gate.lookup = lambda key: held.get(key, b"")
    assert gate.unstapled()
    held[b"b"] = b"staple"
    assert not gate.unstapled()
    assert not MustStapleGate(()).unstapled()


def _userlist_ref() -> UserlistRef:
    users = {
        "admin": UserlistUser("admin", PasswordScheme.INSECURE, "pw", frozenset({"admin"})),
        "ro": UserlistUser("ro", PasswordScheme.INSECURE, "pw", frozenset({"readonly"})),
    }
    userlist = Userlist(SourceLocation("t.cfg", 1), "ops", MappingProxyType(users))
    return UserlistRef("ops", {"ops": userlist})


def _basic(user: str) -> tuple[bytes, bytes]:
    return b"Authorization", b"Basic " + base64.b64encode(f"{user}:pw".encode())


def _auth_facts(head: RequestHead) -> RequestFacts:
    return RequestFacts(("127.0.0.1", 1), None, False, None, None, head.target, head)


def test_http_auth_conditions_and_the_auth_and_allow_actions() -> None:
    ref = _userlist_ref()
    valid = AclTerm(AclFetch.HTTP_AUTH, match=AclMatch.BOOL, auth=ref)
    admin = AclTerm(AclFetch.HTTP_AUTH_GROUP, ("admin",), auth=ref)
    for user, is_valid, is_admin in (("admin", True, True), ("ro", True, False)):
        facts = _auth_facts(_stats_get(b"/", _basic(user)))
        assert condition_holds(Condition(False, (valid,)), facts) is is_valid
        assert condition_holds(Condition(False, (admin,)), facts) is is_admin
    anonymous = _auth_facts(_stats_get(b"/"))
    assert not condition_holds(Condition(False, (valid,)), anonymous)
    assert not condition_holds(Condition(False, (admin,)), anonymous)
    rules = [
        CompiledRule(HttpAllow(), Condition(False, (admin,))),
        CompiledRule(HttpAuth('Ops "zone"'), Condition(True, (valid,))),
        CompiledRule(HttpDeny()),
    ]
    head = _stats_get(b"/")
    answer, action = apply_rules(rules, head, _auth_facts(head))
    assert answer is not None
    assert (answer.status, action) == (401, "auth")
    assert ("www-authenticate", 'Basic realm="Ops \\"zone\\""') in answer.headers
    head = _stats_get(b"/", _basic("admin"))
    assert apply_rules(rules, head, _auth_facts(head)) == (None, "allow")  # the deny never ran
    head = _stats_get(b"/", _basic("ro"))
    answer, action = apply_rules(rules, head, _auth_facts(head))
    assert answer is not None
    assert (answer.status, action) == (403, "deny")


def test_stats_http_request_rules_decide_before_the_page() -> None:
    ref = _userlist_ref()
    valid = AclTerm(AclFetch.HTTP_AUTH, match=AclMatch.BOOL, auth=ref)
    rules = [CompiledRule(HttpAuth("HAProxy Statistics"), Condition(True, (valid,)))]
    service = StatsService("stats", "/", [], None, rules=rules)
    service.html = b"<html>page</html>"
    head = _stats_get(b"/")
    assert service.answer(head, _auth_facts(head)).status == 401
    assert service.answer(head).status == 403  # rules without facts: closed, never open
    head = _stats_get(b"/", _basic("ro"))
    assert service.answer(head, _auth_facts(head)).body == b"<html>page</html>"


def test_response_rules_set_the_status_and_deny_ends_them() -> None:
    def server_answer(status: int, kind: bytes) -> ResponseHead:
        return ResponseHead(
            status,
            b"Whatever",
            "1.1",
            [(b"Content-Type", kind), (b"Content-Length", b"2")],
            keep_alive=True,
            head_request=False,
        )

    facts = RequestFacts(("192.0.2.1", 1), None, True, "a")
    mp3 = AclTerm(AclFetch.RES_HDR, ("audio/mp3",), arg="content-type")
    failed = AclTerm(AclFetch.STATUS, ("500",), match=AclMatch.INT, ranges=((500, 500),))
    rules = (
        CompiledRule(HttpSetStatus(503, "Try later"), Condition(False, (failed,))),
        CompiledRule(HttpDeny(502), Condition(False, (mp3,))),
        CompiledRule(HttpSetHeader("X-After", "%[status]"), None),
    )
    broken = server_answer(500, b"text/plain")
    assert apply_response_rules(rules, broken, facts) is None
    assert (broken.status, broken.reason) == (503, b"Try later")
    assert broken.wire.startswith(b"HTTP/1.1 503 Try later\r\n")
    assert b"x-after: 503" in broken.wire.lower()  # later rules see the new status
    song = server_answer(200, b"audio/mp3")
    denied = apply_response_rules(rules, song, facts)
    assert denied is not None
    assert (denied.status, denied.builtin) == (502, True)  # an errorfile may replace it
    assert b"x-after" not in song.wire.lower()  # deny ended the rules


def test_replace_rules_rewrite_whole_values_with_back_references() -> None:
    facts = RequestFacts(("192.0.2.1", 1), None, True, "a")
    cookie = HttpReplace(
        "header", "X-Cookie", re.compile(r"foo=([^;]*);(.*)"), r"foo=\1;ip=%[src];\2"
    )
    headers = [(b"X-Cookie", b"foo=bar;rest"), (b"Other", b"foo=1")]
    assert replace_headers(headers, cookie, facts) == [
        (b"X-Cookie", b"foo=bar;ip=192.0.2.1;rest"),
        (b"Other", b"foo=1"),
    ]
    value = HttpReplace("value", "X-F", re.compile(r"^192\.168\.(.*)$"), r"172.16.\1")
    assert replace_headers([(b"x-f", b"10.0.0.1, 192.168.1.5")], value, facts) == [
        (b"x-f", b"10.0.0.1, 172.16.1.5")
    ]
    assert replace_headers([(b"x-f", b"10.0.0.1")], value, facts) is None  # nothing matched
    # the format is expanded for each request before the back-references
    from_request = HttpReplace("header", "X-A", re.compile("a"), "x%[hdr(x-b)]")
    head = RequestHead("GET", b"/", "1.1", [(b"x-b", b"1")], keep_alive=True)
    assert replace_headers([(b"X-A", b"a")], from_request, replace(facts, head=head)) == [
        (b"X-A", b"x1")
    ]


def test_replace_path_keeps_the_query_and_a_bad_result_is_an_error() -> None:
    def run(action: HttpReplace, target: bytes) -> tuple[int | None, bytes]:
        head = RequestHead("GET", target, "1.1", [(b"host", b"a")], keep_alive=True)
        facts = RequestFacts(("192.0.2.1", 1), None, True, "a", None, target, head)
        answer, _ = apply_rules((CompiledRule(action, None),), head, facts)
        return (answer.status if answer is not None else None), head.target

    path = HttpReplace("path", None, re.compile("/old/(.*)"), r"/new/\1")
    assert run(path, b"/old/a?x=1") == (None, b"/new/a?x=1")
    assert run(path, b"/other") == (None, b"/other")
    pathq = HttpReplace("pathq", None, re.compile(r"\?x=1$"), "/q")
    assert run(pathq, b"/a?x=1") == (None, b"/q")
    empty = HttpReplace("uri", None, re.compile(".*"), "")
    assert run(empty, b"/a")[0] == 500  # HAProxy's strict mode: no valid target


@pytest.mark.parametrize(
    ("target", "ip", "port", "pathq"),
    [
        (b"http://192.0.2.7:8080/a?b=1", "192.0.2.7", "8080", "/a?b=1"),
        (b"http://192.0.2.7/a", "192.0.2.7", "80", "/a"),
        (b"https://[2001:db8::1]/", "2001:db8::1", "443", "/"),
        (b"http://name.test:81/x", None, "81", "/x"),  # a name: no url_ip sample
        (b"http://u:p@192.0.2.7?q", "192.0.2.7", "80", None),  # no path: no pathq sample
        (b"/origin?q=1", None, None, "/origin?q=1"),
    ],
)
def test_url_ip_url_port_and_pathq(
    target: bytes, ip: str | None, port: str | None, pathq: str | None
) -> None:
    facts = RequestFacts(("192.0.2.1", 1), None, False, "a", None, target)
    assert request_sample("url_ip", None, facts) == ip
    assert request_sample("url_port", None, facts) == port
    assert request_sample("pathq", None, facts) == pathq


def test_set_dst_rules_change_only_with_a_valid_value() -> None:
    head = RequestHead(
        "GET", b"http://192.0.2.7:8080/a", "1.1", [(b"x-dst", b"nope")], keep_alive=True
    )
    facts = RequestFacts(
        ("192.0.2.1", 1), None, False, "a", None, head.target, head, ("127.0.0.1", 80)
    )
    rules = (
        CompiledRule(HttpSetDst(False, parse_sample_expression("url_ip")), None),
        CompiledRule(HttpSetDst(True, parse_sample_expression("url_port")), None),
        CompiledRule(HttpSetDst(False, parse_sample_expression("hdr(x-dst)")), None),
    )
    apply_rules(rules, head, facts)
    assert head.destination == ("192.0.2.7", 8080)  # "nope" is no address: kept


@given(st.binary(max_size=120))
def test_url_fetches_never_raise_on_any_target(target: bytes) -> None:
    facts = RequestFacts(("192.0.2.1", 1), None, False, "a", None, target)
    for name in ("url_ip", "url_port", "pathq"):
        value = request_sample(name, None, facts)
        assert value is None or isinstance(value, str)
