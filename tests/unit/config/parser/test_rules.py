"""Parser, rules: `acl`, conditions, `use_backend` and `http-request` actions."""

from __future__ import annotations

from staplegate.config.model import (
    AclFetch,
    AclMatch,
    HttpDelHeader,
    HttpDeny,
    HttpRedirectScheme,
    HttpReplace,
    HttpReturn,
    HttpSetHeader,
    HttpSetStatus,
    HttpUseService,
)
from staplegate.config.parser.rules import CONDITION_HELP
from staplegate.config.samples import SAMPLE_FETCHES
from tests.unit.config.helpers import BACKEND, A, check, one_error

#: what a refused fetch's message lists (the fetches header values know)
KNOWN_FETCHES = ", ".join(sorted(SAMPLE_FETCHES))

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
    help_text = CONDITION_HELP
    cases = {
        "use_backend app if { req.cook(a) -m found }": "'use_backend' : fetch 'req.cook(a)' "
        f"is not supported: {help_text}; ignoring the condition would change traffic",
        "use_backend app if { hdr(host),map(/nonexistent/a.map) -m found }": "'use_backend' : "
        "'map' : map file '/nonexistent/a.map' cannot be read: No such file or directory",
        "use_backend app if { hdr(host),base64 -m found }": "'use_backend' : converter "
        "'base64' is not supported in conditions (staplegate has: lower, upper and the map "
        "lookups); ignoring "
        "the condition would change traffic",
        "use_backend app if { hdr_beg }": "'use_backend' : fetch 'hdr_beg' needs an argument, "
        "as in 'hdr_beg(x-name)'.",
        "use_backend app if { path(x) /a }": "'use_backend' : fetch 'path' takes no argument.",
        "use_backend app if { src www.example.test }": "'use_backend' : 'www.example.test' "
        "is not an IPv4 or IPv6 address or network ('src' matches ADDRESS or ADDRESS/MASK; "
        "host names are not resolved).",
        "use_backend app if { src }": "'use_backend' : 'src' needs at least one address or "
        "network to match.",
        "use_backend app if { src -m beg 10. }": "'use_backend' : 'src' matches addresses "
        "and networks only (no '-m').",
        "use_backend app if { path_beg -m end /a }": "'use_backend' : '-m end' cannot be used "
        "with 'path_beg' (use 'path -m …' to choose the match)",
        "use_backend app if { always_true 1 }": "'use_backend' : 'always_true' takes no value.",
        "use_backend app if { path -m reg ^(a }": "'use_backend' : regex '^(a' is invalid: "
        "missing ), unterminated subpattern at position 1.",
        "use_backend app if { dst_port gt }": "'use_backend' : 'dst_port' : 'gt' expects a "
        "number after it.",
        "use_backend app if { dst_port 80:x }": "'use_backend' : 'dst_port' : '80:x' is not an "
        "integer or a range.",
        "use_backend app if { path -m fuzzy a }": "'use_backend' : match method '-m fuzzy' "
        f"is not supported: {help_text}",
        "use_backend app if { path -x a }": "'use_backend' : flag '-x' is not supported: "
        f"{help_text}",
        "use_backend app if localhost": "'use_backend' : unknown or unsupported ACL "
        f"'localhost' in 'if localhost': {help_text}",
        "use_backend app if unknown_acl": "'use_backend' : unknown or unsupported ACL "
        f"'unknown_acl' in 'if unknown_acl': {help_text}",
        "use_backend app if { ssl_fc_sni a } || ": "'use_backend' : 'if { ssl_fc_sni a } ||' "
        "has an empty alternative (around '||' or '!').",
        "use_backend app if || { ssl_fc_sni a }": "'use_backend' : 'if || { ssl_fc_sni a }' "
        "has an empty alternative (around '||' or '!').",
        "use_backend app if { ssl_fc_sni }": "'use_backend' : 'ssl_fc_sni' needs at least one "
        "host name to match.",
        "use_backend app if { ssl_fc_sni a": "'use_backend' : missing closing '}' in condition.",
        "use_backend": "'use_backend' expects a backend name.",
        "acl host url_xyz -i a": "'acl host' : fetch 'url_xyz' is not supported: "
        f"{help_text}; ignoring the condition would change traffic",
    }
    for line, message in cases.items():
        text = f"frontend fe\n    bind :443\n    {line}\n    default_backend app\n" + BACKEND
        assert one_error(text) == A.format(3, message), line


def test_path_src_and_predefined_acls() -> None:
    """Issue 16: `path`, `path_beg`, `src` and HAProxy's predefined ACLs TRUE, FALSE and
    LOCALHOST (before, each was refused as an unsupported fetch or an unknown ACL)."""
    config, diags = check(
        "frontend fe\n    mode http\n    bind :80\n"
        "    acl api path_beg -i /API/ /v2/\n"
        "    acl office src 192.0.2.0/24 2001:db8::1 10.0.0.0/255.0.0.0\n"
        "    http-request deny if !LOCALHOST { path_beg /admin }\n"
        "    http-request deny unless FALSE\n"
        "    http-request set-header X-A 1 if TRUE office\n"
        "    use_backend app if api\n"
        "    use_backend app if { path -m end .php } { src 127.0.0.1 }\n"
        "    use_backend app if { always_true } !{ always_false }\n"
        "    default_backend app\nbackend app\n    mode http\n    server a 127.0.0.1:1\n"
    )
    assert diags == []
    assert config is not None
    frontend = config.frontend("fe")
    deny_admin, deny_false, set_header = (r.condition for r in frontend.http_request_rules)
    assert deny_admin is not None
    assert deny_false is not None
    assert set_header is not None
    localhost, admin = deny_admin.terms
    assert (localhost.fetch, localhost.negated) == (AclFetch.SRC, True)
    assert [str(n) for n in localhost.networks] == ["127.0.0.0/8", "::1/128"]
    assert (admin.fetch, admin.match, admin.values) == (AclFetch.PATH, AclMatch.BEGIN, ("/admin",))
    assert deny_false.unless
    assert deny_false.terms[0].fetch is AclFetch.ALWAYS_FALSE
    assert [t.fetch for t in set_header.terms] == [AclFetch.ALWAYS_TRUE, AclFetch.SRC]
    assert [str(n) for n in set_header.terms[1].networks] == [
        "192.0.2.0/24",
        "2001:db8::1/128",
        "10.0.0.0/8",
    ]
    api, php, always = (r.condition for r in frontend.use_backends)
    assert api is not None
    assert php is not None
    assert always is not None
    assert (api.terms[0].values, api.terms[0].ignore_case) == (("/api/", "/v2/"), True)
    assert (php.terms[0].fetch, php.terms[0].match) == (AclFetch.PATH, AclMatch.END)
    assert [(t.fetch, t.negated) for t in always.terms] == [
        (AclFetch.ALWAYS_TRUE, False),
        (AclFetch.ALWAYS_FALSE, True),
    ]


def test_a_user_acl_named_like_a_predefined_one_wins() -> None:
    config, diags = check(
        "frontend fe\n    bind :443\n    acl TRUE ssl_fc\n    use_backend app if TRUE\n"
        "    default_backend app\n" + BACKEND
    )
    assert diags == []
    assert config is not None
    condition = config.frontend("fe").use_backends[0].condition
    assert condition is not None
    assert condition.terms[0].fetch is AclFetch.SSL_FC


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
        "http-request return status 200 lf-file x": "'http-request return lf-file' is a "
        "HAProxy keyword that staplegate does not support and it would change traffic",
        "http-request return lf-string %[var(sess.x)]": "'http-request return' : variable "
        "'sess.x' : staplegate keeps variables for one request (txn, req, res scopes), not "
        "'sess' or 'proc'",
        "http-request return status 200 string ok": "'http-request return' : a content type "
        "must be defined when non-empty payload is configured.",
        "http-request return string a file b": "'http-request return' : 'string' and 'file' "
        "are mutually exclusive.",
        "http-request deny deny_status x": "'http-request deny' : status code must be an "
        "integer between 200 and 599 (got 'x').",
        "http-request redirect location /x set-cookie A=1": "'http-request redirect "
        "set-cookie' is a HAProxy keyword that staplegate does not support and it would "
        "change traffic",
        "redirect location /x code 305": "'redirect' : unsupported HTTP code '305' (301, 302, "
        "303, 307 or 308).",
        "redirect prefix %[req.cook(a)]": "'redirect' : sample fetch 'req.cook' is not "
        f"supported (known: {KNOWN_FETCHES})",
        "http-request redirect scheme ftp": "'http-request redirect' : scheme 'ftp' is not "
        "supported (use http or https).",
        "http-request set-header X-A %[req.cook(x)]": "'http-request set-header' : sample "
        f"fetch 'req.cook' is not supported (known: {KNOWN_FETCHES})",
        "http-request set-header X-A %[ssl_c_der]": "'http-request set-header' : sample fetch "
        "'ssl_c_der' is binary: write '%[ssl_c_der,hex]' or '%[ssl_c_der,base64]'",
        "http-request set-header X-A %ci": "'http-request set-header' : log-format variable "
        "'%ci…' is not supported in header values; use '%[fetch]' or write '%%' for a "
        "literal '%'",
        "http-request set-header X-A": "'http-request set-header' expects exactly 2 arguments.",
        "http-request set-var(proc.x) src": "'http-request set-var' : variable 'proc.x' : "
        "staplegate keeps variables for one request (txn, req, res scopes), not 'sess' or "
        "'proc'",
        "http-request set-var(txn.x,ifnotexists) src": "'http-request set-var' : 'set-var' : "
        "conditions after the name are not supported",
        "http-request unset-var(txn.x) src": "'http-request unset-var' : 'unset-var' takes no "
        "value",
        "http-request set-hdr X-A b": "'http-request' : unknown action 'set-hdr'; did you mean "
        "'set-header' maybe ?",
        "http-request set-path /x y": "'http-request set-path' expects exactly 1 argument.",
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


def test_use_service_prometheus_exporter() -> None:
    config, diags = check(
        "frontend stats\n    mode http\n    bind 127.0.0.1:8404\n"
        "    http-request use-service prometheus-exporter if { path /metrics }\n"
    )
    assert diags == []
    assert config is not None
    (rule,) = config.frontend("stats").http_request_rules
    assert rule.action == HttpUseService("prometheus-exporter")
    assert rule.condition is not None
    assert one_error(
        "frontend stats\n    mode http\n    bind 127.0.0.1:8404\n"
        "    http-request use-service lua.hello\n"
    ).endswith(
        "'http-request use-service' : unknown service 'lua.hello' "
        "(staplegate has: prometheus-exporter)."
    )
    assert "expects a service name" in one_error(
        "frontend stats\n    mode http\n    bind 127.0.0.1:8404\n    http-request use-service\n"
    )


def test_http_response_rules() -> None:
    config, diags = check(
        "frontend fe\n    mode http\n    bind :80\n"
        "    http-response set-header X-A %[status] if { ssl_fc }\n"
        "    http-response del-header Server\n"
        "    http-after-response add-header Via staplegate\n"
        "    default_backend app\n"
        "backend app\n    mode http\n    http-response set-header X-B 1\n"
        "    server a 127.0.0.1:1\n"
    )
    assert diags == []
    assert config is not None
    frontend = config.frontend("fe")
    assert [r.action for r in frontend.http_response_rules] == [
        HttpSetHeader("X-A", "%[status]"),
        HttpDelHeader("Server"),
    ]
    assert [r.action for r in frontend.http_after_response_rules] == [
        HttpSetHeader("Via", "staplegate", add=True)
    ]
    assert [r.action for r in config.backend("app").http_response_rules] == [
        HttpSetHeader("X-B", "1")
    ]
    cases = {
        "http-response set-header Content-Length 0": "'http-response set-header' : "
        "'Content-Length' is a framing or hop-by-hop header, which staplegate writes itself; "
        "a rule cannot change it.",
        "http-after-response del-header connection": "'http-after-response del-header' : "
        "'connection' is a framing or hop-by-hop header, which staplegate writes itself; a "
        "rule cannot change it.",
        "http-response set-header X-P %[path]": "'http-response set-header' : sample fetch "
        "'path' reads the request, which a response rule does not see (HAProxy refuses it "
        "too)",
        "http-response set-header X-P 1 if { path /a }": "'http-response set-header' : fetch "
        "'path' reads the request, which a response rule does not see (HAProxy refuses it "
        "too).",
        "http-request set-header X-S %[status]": "'http-request set-header' : sample fetch "
        "'status' reads the response, which a request rule does not have yet",
        "http-after-response deny": "'http-after-response deny' is a HAProxy keyword that "
        "staplegate does not support and it would change traffic",
        "http-response set-status 204": "'http-response set-status' : status 204 has no body, "
        "but the server's body would still be forwarded; staplegate refuses it",
        "http-response set-status 503 why": "'http-response set-status' : unexpected "
        "argument 'why'.",
        "http-request deny if { status 500 }": "'http-request deny' : fetch 'status' reads the "
        "server's response, which this rule does not see (HAProxy refuses it too).",
        "use_backend app if { res.hdr(x-a) b }": "'use_backend' : fetch 'res.hdr' reads the "
        "server's response, which this rule does not see (HAProxy refuses it too).",
    }
    for line, message in cases.items():
        text = f"frontend fe\n    bind :80\n    {line}\n    default_backend app\n" + BACKEND
        assert one_error(text) == A.format(3, message), line


def test_response_deny_and_set_status() -> None:
    config, diags = check(
        "frontend fe\n    mode http\n    bind :80\n"
        "    acl mp3 res.hdr(content-type) -m sub audio\n"
        "    http-response deny if mp3\n"
        "    http-response deny deny_status 451 if { shdr_beg(x-region) eu }\n"
        '    http-response set-status 503 reason "Try later" if { status 500 }\n'
        "    http-after-response set-status 299 if { res.hdr_cnt(x-a) gt 1 }\n"
        "    default_backend app\n"
        + BACKEND.replace("backend app\n", "backend app\n    mode http\n")
    )
    assert diags == []
    assert config is not None
    frontend = config.frontend("fe")
    assert [r.action for r in frontend.http_response_rules] == [
        HttpDeny(502),  # HAProxy's default on a response
        HttpDeny(451),
        HttpSetStatus(503, "Try later"),
    ]
    assert [r.action for r in frontend.http_after_response_rules] == [HttpSetStatus(299)]
    (deny_rule, eu_rule, _) = frontend.http_response_rules
    assert deny_rule.condition is not None
    assert [t.fetch for t in deny_rule.condition.terms] == [AclFetch.RES_HDR]
    assert eu_rule.condition is not None
    assert [(t.fetch, t.match) for t in eu_rule.condition.terms] == [
        (AclFetch.RES_HDR, AclMatch.BEGIN)
    ]


def test_replace_actions() -> None:
    config, diags = check(
        "frontend fe\n    mode http\n    bind :80\n"
        "    http-request replace-header Cookie foo=([^;]*);(.*) foo=\\1;ip=%[src];\\2\n"
        "    http-request replace-value X-F ^192\\.168\\.(.*)$ 172.16.\\1\n"
        "    http-request replace-path /old/(.*) /new/\\1 if { hdr(host) a }\n"
        "    http-response replace-header Location ^http://(.*)$ https://\\1\n"
        "    default_backend app\n"
        "backend app\n    mode http\n    server a1 127.0.0.1:9000\n"
    )
    assert diags == []
    assert config is not None
    frontend = config.frontend("fe")
    parts = [(r.action.part, r.action.name) for r in frontend.http_request_rules]  # type: ignore[union-attr]
    assert parts == [("header", "Cookie"), ("value", "X-F"), ("path", None)]
    (location,) = frontend.http_response_rules
    assert isinstance(location.action, HttpReplace)
    assert location.action.regex.pattern == "^http://(.*)$"
    cases = {
        "http-request replace-header X-A (": "'http-request replace-header' expects exactly 3 "
        "arguments.",
        "http-request replace-path ( x": "'http-request replace-path' : regex '(' is invalid: "
        "missing ), unterminated subpattern at position 0.",
        "http-response replace-header Content-Length a b": "'http-response replace-header' : "
        "'Content-Length' is a framing or hop-by-hop header, which staplegate writes itself; "
        "a rule cannot change it.",
        "http-response replace-value X-A a %[path]": "'http-response replace-value' : sample "
        "fetch 'path' reads the request, which a response rule does not see (HAProxy refuses "
        "it too)",
    }
    for line, message in cases.items():
        text = f"frontend fe\n    bind :80\n    {line}\n    default_backend app\n" + BACKEND
        assert one_error(text) == A.format(3, message), line
