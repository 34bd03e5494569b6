"""Evaluate `if|unless` conditions and apply `http-request` rules to one request, pure.

Conditions test the connection (`ssl_fc`, `ssl_fc_sni`, `req.ssl_sni`, `src`) and, in mode
http, the request (`hdr(host)`: the Host header exactly as sent, port included, as HAProxy's
`hdr(host)` fetch returns it; `path`: the target's path without its query string, not
decoded, as HAProxy's `path` returns it). Rules run in order, like HAProxy's: header edits
change the request in place; `return`, `deny`, `redirect` and `use-service` stop evaluation
and answer locally (`use-service prometheus-exporter` answers the `ServiceSnapshot` the
master last pushed to this worker: the data plane never computes metrics).
Client certificates add `ssl_c_used` and `ssl_c_verify N` to conditions. Header values are
literal text plus the `%[fetch,converter]` expressions of `config/samples.py` (the config
parser refused every other one): `src`, `src_port`, `ssl_fc`, `ssl_fc_sni` and the client
certificate's `ssl_c_*`. A fetch with nothing to return gives an empty string, as in HAProxy.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from staplegate.config.maps import lookup
from staplegate.config.model import (
    AclFetch,
    AclMatch,
    AclTerm,
    Condition,
    HttpAction,
    HttpAllow,
    HttpAuth,
    HttpDelHeader,
    HttpDeny,
    HttpMonitor,
    HttpRedirect,
    HttpRedirectScheme,
    HttpReplace,
    HttpReturn,
    HttpSetDst,
    HttpSetHeader,
    HttpSetStatus,
    HttpSetTarget,
    HttpSetVar,
    HttpUseService,
)
from staplegate.config.samples import (
    REQUEST_SAMPLE_FETCHES,
    RESPONSE_SAMPLE_FETCHES,
    Converter,
    LogVariable,
    SampleExpression,
    compile_converter,
    parse_header_format,
)
from staplegate.proxy import stats_admin
from staplegate.proxy.basic_auth import authenticated_user
from staplegate.proxy.http_message import (
    LocalResponse,
    error_response,
    has_line_break,
    reason_phrase,
)
from staplegate.proxy.http_request import RequestHead
from staplegate.proxy.http_response import ResponseHead
from staplegate.tls.clientcert import ClientCertificate, escape


@dataclass(frozen=True, slots=True)
class Inspected:
    """What `tcp-request inspect-delay` read of a plain mode-tcp connection before routing:
    the bytes' length and, when they are a TLS ClientHello, its first ALPN protocol."""

    length: int
    client_hello: bool = False
    alpn: str | None = None
    http_request: bool = False  # they begin with an HTTP/1.x request line (`HTTP`)


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What conditions may look at."""

    client_address: tuple[str, int]
    server_name: str | None
    tls: bool = True
    host: str | None = None  # None in mode tcp, or a request without Host
    client_certificate: ClientCertificate | None = None  # on binds that ask for one
    target: bytes | None = None  # the request line's target; None in mode tcp
    head: RequestHead | None = None  # mode http: method and headers
    frontend_address: tuple[str, int] | None = None  # `dst_port`
    usable_servers: Callable[[str], int] | None = None  # `nbsrv(backend)`
    response: ResponseHead | None = None  # response rules: the answer being sent
    inspected: Inspected | None = None  # mode tcp after `tcp-request inspect-delay`
    alpn: str | None = None  # `ssl_fc_alpn`: the protocol the TLS handshake agreed on


def request_path(target: bytes | None) -> str | None:
    """HAProxy's `path`: from the first `/` (after the authority of an absolute-form target)
    to before `?`; None when there is none (`*`, authority-form, `http://host`)."""
    if target is None:
        return None
    if target[:1] != b"/":
        scheme_end = target.find(b"://")
        if scheme_end <= 0:
            return None
        start = target.find(b"/", scheme_end + 3)
        if start < 0:
            return None
        target = target[start:]
    query = target.find(b"?")
    return (target if query < 0 else target[:query]).decode("latin-1")


def source_in(
    networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network], address: str
) -> bool:
    """HAProxy's `src` match: an IPv4 pattern also matches an IPv4-mapped IPv6 client."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:  # a UNIX socket peer, or no address: nothing matches, as in HAProxy
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        mapped: ipaddress.IPv4Address | ipaddress.IPv6Address = ip.ipv4_mapped
    else:
        mapped = ip
    return any(
        (mapped in network) if network.version == mapped.version else (ip in network)
        for network in networks
    )


def condition_holds(condition: Condition | None, facts: RequestFacts) -> bool:
    """Any group (`||`) whose terms all hold (AND); `unless` negates the result."""
    if condition is None:
        return True
    if condition.alternatives:
        result = any(all(_term_holds(term, facts) for term in group) for group in condition.groups)
    else:
        result = all(_term_holds(term, facts) for term in condition.terms)
    return not result if condition.unless else result


def _term_holds(term: AclTerm, facts: RequestFacts) -> bool:
    fetch = term.fetch
    if fetch is AclFetch.ANY_OF:
        value = any(_term_holds(member, facts) for member in term.members)
    elif fetch is AclFetch.SRC and term.match is AclMatch.IP:
        value = source_in(term.networks, facts.client_address[0])
    else:
        samples = _acl_samples(term, facts)
        for converter in term.converters:
            if converter == "lower" or converter == "upper":
                samples = [s.lower() if converter == "lower" else s.upper() for s in samples]
                continue
            compiled = compile_converter(converter)  # a map, read with the configuration
            mapped = (map_value(compiled, sample) for sample in samples)
            samples = [value for value in mapped if value is not None]
        value = _matches(term, samples)
    return not value if term.negated else value


def _acl_samples(term: AclTerm, facts: RequestFacts) -> list[str]:
    """What `term`'s fetch returns for this request: [] when it has nothing (no sample)."""
    fetch = term.fetch
    if fetch is AclFetch.SSL_FC_SNI or fetch is AclFetch.REQ_SSL_SNI:
        return [facts.server_name] if facts.server_name else []
    if fetch is AclFetch.HDR_HOST:
        return [facts.host] if facts.host is not None else []
    if fetch is AclFetch.PATH:
        path = request_path(facts.target)
        return [path] if path is not None else []
    if fetch is AclFetch.SSL_FC:
        return ["1" if facts.tls else "0"]
    if fetch is AclFetch.SSL_FC_ALPN:
        return [facts.alpn] if facts.alpn else []
    if fetch is AclFetch.ALWAYS_TRUE:
        return ["1"]
    if fetch is AclFetch.ALWAYS_FALSE:
        return ["0"]
    if fetch is AclFetch.SSL_C_USED:
        return ["1" if facts.client_certificate is not None else "0"]
    if fetch is AclFetch.SSL_C_VERIFY:
        cert = facts.client_certificate
        return [str(cert.verify_result if cert is not None else 0)]
    if fetch is AclFetch.SRC:
        return [facts.client_address[0]]
    if fetch is AclFetch.SRC_PORT:
        return [str(facts.client_address[1])]
    if fetch is AclFetch.DST_PORT:
        address = facts.frontend_address
        return [str(address[1])] if address is not None else []
    if fetch is AclFetch.REQ_SSL_HELLO_TYPE or fetch is AclFetch.REQ_SSL_ALPN:
        inspected = facts.inspected
        if inspected is None or not inspected.client_hello:
            return []  # not a ClientHello: no sample, as in HAProxy
        if fetch is AclFetch.REQ_SSL_HELLO_TYPE:
            return ["1"]
        return [inspected.alpn] if inspected.alpn is not None else []
    if fetch is AclFetch.REQ_PROTO_HTTP:
        if facts.head is not None:  # mode http: the request parsed
            return ["1"]
        inspected = facts.inspected
        return ["1" if inspected is not None and inspected.http_request else "0"]
    if fetch is AclFetch.REQ_LEN:
        inspected = facts.inspected
        return [str(inspected.length if inspected is not None else 0)]
    if fetch is AclFetch.VAR:
        value = variable(facts, term.arg or "")
        return [value] if value is not None else []
    if fetch is AclFetch.NBSRV:
        count = facts.usable_servers
        return [str(count(term.arg or ""))] if count is not None else []
    if fetch is AclFetch.HTTP_AUTH or fetch is AclFetch.HTTP_AUTH_GROUP:
        user = authenticated_user(term.auth, facts.head)
        if fetch is AclFetch.HTTP_AUTH:
            return ["1" if user is not None else "0"]
        userlist = term.auth.userlist if term.auth is not None else None
        if user is None or userlist is None:
            return []
        return sorted(userlist.users[user].groups)  # matched against the rule's groups
    if fetch is AclFetch.SSL_C_S_DN or fetch is AclFetch.SSL_C_I_DN:
        cert = facts.client_certificate
        if cert is None:
            return []
        dn = cert.subject if fetch is AclFetch.SSL_C_S_DN else cert.issuer
        if term.arg is None:
            return [dn.oneline()]
        entry = dn.entry(term.arg, term.occurrence or 1)
        return [entry] if entry is not None else []
    if fetch is AclFetch.STATUS:
        response = facts.response
        return [str(response.status)] if response is not None else []
    if fetch is AclFetch.RES_HDR or fetch is AclFetch.RES_HDR_CNT:
        values = header_values(facts.response, term.arg or "", split=True)
        if fetch is AclFetch.RES_HDR_CNT:
            return [str(len(values))]
        if term.occurrence is not None:
            return _occurrence(values, term.occurrence)
        return values
    if fetch is AclFetch.HDR or fetch is AclFetch.FHDR or fetch is AclFetch.HDR_CNT:
        values = header_values(facts.head, term.arg or "", split=fetch is not AclFetch.FHDR)
        if fetch is AclFetch.HDR_CNT:
            return [str(len(values))]
        if term.occurrence is not None:
            return _occurrence(values, term.occurrence)
        return values
    sample = request_sample(fetch.value, term.arg, facts)
    return [sample] if sample is not None else []


def _occurrence(values: list[str], occurrence: int) -> list[str]:
    """HAProxy's `occ`: 1 is the first, -1 the last, 0 every one."""
    if occurrence == 0:
        return values
    index = occurrence - 1 if occurrence > 0 else occurrence
    try:
        return [values[index]]
    except IndexError:
        return []


def variable(facts: RequestFacts, name: str) -> str | None:
    """`var(txn.x)`: what a `set-var` rule stored for this request, or None."""
    head = facts.head
    variables: dict[str, str] | None = getattr(head, "variables", None)
    return variables.get(name) if variables is not None else None


def header_values(head: RequestHead | ResponseHead | None, name: str, *, split: bool) -> list[str]:
    """Every value of header `name` (lower case) in order; `split`: HAProxy's `hdr`, which
    cuts each line at its commas (`req.fhdr` does not)."""
    if head is None:
        return []
    wanted = name.encode("latin-1")
    found: list[str] = []
    for key, raw in head.headers:
        if key.lower() != wanted:
            continue
        text = raw.decode("latin-1").strip()
        if split:
            found.extend(part.strip() for part in text.split(","))
        else:
            found.append(text)
    return found


def request_sample(name: str, arg: str | None, facts: RequestFacts) -> str | None:
    """`url`, `query`, `url_param(x)`, `method`, `base` (and `path`) of the request."""
    target = facts.target
    if target is None:
        return None
    if name == "path":
        return request_path(target)
    if name == "url":
        return target.decode("latin-1")
    if name == "pathq":
        path = request_path(target)
        if path is None:
            return None
        query_at = target.find(b"?")
        return path + (target[query_at:].decode("latin-1") if query_at >= 0 else "")
    if name == "url_ip" or name == "url_port":
        return _url_address(target, port=name == "url_port")
    if name == "method":
        head = facts.head
        return head.method if head is not None else None
    if name == "base":
        path = request_path(target)
        if path is None:
            return None
        return (facts.host or "") + path
    query_at = target.find(b"?")
    if query_at < 0:
        return None
    query = target[query_at + 1 :].decode("latin-1")
    if name == "query":
        return query
    # url_param / urlp: the first parameter of that name (its value as sent, not decoded)
    for pair in query.split("&"):
        key, sep, value = pair.partition("=")
        if key == arg:
            return value if sep else ""
    return None


def _url_address(target: bytes, *, port: bool) -> str | None:
    """HAProxy's `url_ip` / `url_port`: an absolute-form target's host when it is an IP
    address (a name gives no sample), or its port (the scheme's when none is written)."""
    scheme_end = target.find(b"://")
    if scheme_end <= 0:
        return None
    scheme = target[:scheme_end].lower()
    rest = target[scheme_end + 3 :]
    end = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=len(rest))
    authority = rest[:end].rpartition(b"@")[2].decode("latin-1")
    if authority.startswith("["):
        host, _, after = authority[1:].partition("]")
        number = after[1:] if after.startswith(":") else ""
    else:
        host, _, number = authority.partition(":")
    if port:
        if number:
            return number if number.isdigit() else None
        return "443" if scheme == b"https" else "80"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _matches(term: AclTerm, samples: list[str]) -> bool:
    match = term.match
    if match is AclMatch.FOUND:
        return bool(samples)
    if not samples:
        return False
    if match is AclMatch.BOOL:
        return any(_integer(s) not in (None, 0) for s in samples)
    if match is AclMatch.INT or match is AclMatch.LEN:
        for sample in samples:
            number = len(sample) if match is AclMatch.LEN else _integer(sample)
            if number is None:
                continue
            for low, high in term.ranges:
                if (low is None or number >= low) and (high is None or number <= high):
                    return True
        return False
    if match is AclMatch.IP:
        return any(source_in(term.networks, s) for s in samples)
    if match is AclMatch.REG:
        return any(r.search(s) for s in samples for r in term.regexes)
    values = term.values
    for sample in samples:
        subject = sample.lower() if term.ignore_case else sample
        if match is AclMatch.EXACT:
            if subject in values:
                return True
        elif match is AclMatch.BEGIN:
            if subject.startswith(values):
                return True
        elif match is AclMatch.END:
            if subject.endswith(values):
                return True
        elif match is AclMatch.SUB:
            if any(v in subject for v in values):
                return True
        elif any(_delimited(subject, v, "/?.:" if match is AclMatch.DOM else "/?") for v in values):
            return True
    return False


def _integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _delimited(subject: str, word: str, delimiters: str) -> bool:
    """HAProxy's `-m dom` / `-m dir`: `word` appears bounded by delimiters or the ends."""
    start = subject.find(word)
    while start >= 0:
        end = start + len(word)
        before_ok = start == 0 or subject[start - 1] in delimiters
        after_ok = end == len(subject) or subject[end] in delimiters
        if before_ok and after_ok:
            return True
        start = subject.find(word, start + 1)
    return False


#: Prometheus' text exposition format (what prometheus_client's generate_latest writes)
EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServiceSnapshot:
    """What `use-service prometheus-exporter` answers in one worker: the master's latest
    exposition, replaced whole by `process.ipc.read_messages` (one per plan, shared by its
    rules)."""

    __slots__ = ("body",)

    def __init__(self, body: bytes = b"") -> None:
        self.body = body


class MustStapleGate:
    """`monitor-uri`'s must-staple check in one worker: the staple table keys of every
    must-staple certificate the configuration serves, and the worker's staple lookup
    (set by the worker once its table exists). The monitor answers 503 while one of them
    has no staple: clients refuse such a certificate (RFC 7633)."""

    __slots__ = ("keys", "lookup")

    def __init__(self, keys: tuple[bytes, ...] = ()) -> None:
        self.keys = keys
        self.lookup: Callable[[bytes], bytes] | None = None

    def unstapled(self) -> bool:
        lookup = self.lookup
        return lookup is not None and any(not lookup(key) for key in self.keys)


@dataclass(frozen=True)
class CompiledRule:
    """An `http-request` rule ready to run (a `return ... file` already read)."""

    action: HttpAction
    condition: Condition | None = None
    file_body: bytes | None = None
    service: ServiceSnapshot | None = None  # set for `use-service`
    gate: MustStapleGate | None = None  # set for `monitor-uri`


def _fetch(expression: SampleExpression, facts: RequestFacts) -> str | bytes:
    name = expression.fetch
    cert = facts.client_certificate
    if name == "src":
        return facts.client_address[0]
    if name == "src_port":
        return str(facts.client_address[1])
    if name == "dst_port":
        address = facts.frontend_address
        return str(address[1]) if address is not None else ""
    if name == "ssl_fc_sni" or name == "req.ssl_sni" or name == "req_ssl_sni":
        return escape(facts.server_name or "")
    if name == "ssl_fc":
        return "1" if facts.tls else "0"
    if name == "ssl_fc_alpn":
        return facts.alpn or ""
    if name in REQUEST_SAMPLE_FETCHES:
        args = expression.args
        if name in ("hdr", "req.hdr", "req.fhdr"):
            values = header_values(facts.head, args[0].strip().lower(), split=name != "req.fhdr")
            # in a sample expression HAProxy returns the last occurrence unless told which
            picked = _occurrence(values, int(args[1]) if len(args) > 1 else -1)
            return picked[0] if picked else ""
        return request_sample(name, args[0] if args else None, facts) or ""
    if name == "uuid":
        return str(uuid.uuid4())
    if name == "var":
        return variable(facts, expression.args[0]) or ""
    if name in RESPONSE_SAMPLE_FETCHES:
        response = facts.response
        if response is None:
            return ""
        if name == "status":
            return str(response.status)
        if name == "res.ver":
            return response.version
        args = expression.args
        values = header_values(response, args[0].strip().lower(), split=name != "res.fhdr")
        picked = _occurrence(values, int(args[1]) if len(args) > 1 else -1)
        return picked[0] if picked else ""
    if name == "ssl_c_used":
        return "1" if cert is not None else "0"
    if name == "ssl_c_verify":
        return str(cert.verify_result if cert is not None else 0)
    if cert is None:
        return b"" if name in ("ssl_c_serial", "ssl_c_der", "ssl_c_sha1") else ""
    if name == "ssl_c_serial":
        return cert.serial
    if name == "ssl_c_sha1":
        return cert.sha1
    if name in ("ssl_c_notbefore", "ssl_c_notafter"):
        return cert.validity(end=name == "ssl_c_notafter")
    if name == "ssl_c_der":
        return cert.der
    dn = cert.subject if name == "ssl_c_s_dn" else cert.issuer
    args = expression.args
    if not args:
        return dn.oneline()
    return dn.entry(args[0], int(args[1]) if len(args) > 1 else 1) or ""


def map_value(compiled: Converter, text: str) -> str | None:
    """A `map_*` converter on `text`: the mapped value, its default, or None (no sample)."""
    assert compiled.table is not None
    found = lookup(compiled.table, text)
    return found if found is not None else compiled.default


def _convert(value: str | bytes, spec: str) -> str | bytes:
    compiled = compile_converter(spec)  # cached: compiled when the config was read
    converter = compiled.name
    if compiled.table is not None:  # no sample: the expression's value is empty
        return map_value(compiled, value if isinstance(value, str) else value.decode()) or ""
    if converter == "field":
        text = value if isinstance(value, str) else value.decode("latin-1")
        return _field(text, compiled.index, compiled.delimiters)
    if converter == "regsub" and compiled.regex is not None:
        text = value if isinstance(value, str) else value.decode("latin-1")
        return compiled.regex.sub(compiled.replacement, text, count=compiled.count)
    if converter == "hex":
        data = value if isinstance(value, bytes) else value.encode("utf-8")
        return data.hex().upper()
    if converter == "base64":
        data = value if isinstance(value, bytes) else value.encode("utf-8")
        return base64.b64encode(data).decode("ascii")
    text = value if isinstance(value, str) else value.decode("latin-1")
    return text.lower() if converter == "lower" else text.upper()


def _field(text: str, index: int, delimiters: str) -> str:
    """HAProxy's `field`: the INDEXth field (from the end when negative) between any of the
    delimiter characters; empty when there is none."""
    fields = re.split("[" + re.escape(delimiters) + "]", text)
    position = index - 1 if index > 0 else index
    try:
        return fields[position]
    except IndexError:
        return ""


def evaluate(expression: SampleExpression, facts: RequestFacts) -> str:
    """One `%[…]`; the parser guaranteed binary fetches start with a text converter."""
    value = _fetch(expression, facts)
    for converter in expression.converters:
        value = _convert(value, converter)
    text = value if isinstance(value, str) else escape(value.decode("latin-1"))
    return f'"{text}"' if expression.quote else text


def expand(value: str, facts: RequestFacts) -> str:
    """A header value with its `%[sample]` expressions evaluated (and `%%` made `%`)."""
    if "%" not in value:
        return value
    return "".join(
        part if isinstance(part, str) else evaluate(part, facts)
        for part in parse_header_format(value)
    )


def apply_rules(
    rules: Sequence[CompiledRule], head: RequestHead, facts: RequestFacts
) -> tuple[LocalResponse | None, str | None]:
    """Run `rules` on `head`; returns (local answer or None, the action's name for logs)."""
    for rule in rules:
        if not condition_holds(rule.condition, facts):
            continue
        action = rule.action
        if isinstance(action, HttpSetHeader):
            name = action.name.encode("latin-1")
            value = expand(action.value, facts).encode("latin-1")
            if not action.add:
                lower = name.lower()
                head.headers = [(k, v) for k, v in head.headers if k.lower() != lower]
            head.headers.append((name, value))
            head.headers_changed()
        elif isinstance(action, HttpDelHeader):
            lower = action.name.encode("latin-1").lower()
            head.headers = [(k, v) for k, v in head.headers if k.lower() != lower]
            head.headers_changed()
        elif isinstance(action, HttpDeny):
            return error_response(action.status), "deny"
        elif isinstance(action, HttpAuth):
            return unauthorized(action.realm), "auth"
        elif isinstance(action, HttpAllow):
            return None, "allow"  # no later rule of this list runs
        elif isinstance(action, HttpReturn):
            return _return(action, rule.file_body, facts), "return"
        elif isinstance(action, (HttpRedirectScheme, HttpRedirect)):
            return _redirect(action, head, facts), "redirect"
        elif isinstance(action, HttpUseService):
            return _service(rule.service), "use-service"
        elif isinstance(action, HttpSetVar):
            _set_variable(head, action, facts)
        elif isinstance(action, HttpSetDst):
            _set_destination(head, action, facts)
        elif isinstance(action, HttpSetTarget):
            value = expand(action.value, facts).encode("latin-1", "replace")
            if not _set_target(head, action, value):  # HAProxy's strict-mode: a failed
                return error_response(500), f"set-{action.part}"  # rewrite is an error
        elif isinstance(action, HttpReplace):
            if action.name is not None:
                changed = replace_headers(head.headers, action, facts)
                if changed is not None:
                    head.headers = changed
                    head.headers_changed()
            elif not _replace_target(head, action, facts):
                return error_response(500), f"replace-{action.part}"
        elif isinstance(action, HttpMonitor) and _monitored(action.uri, head.target):
            failing = (rule.gate is not None and rule.gate.unstapled()) or any(
                condition_holds(c, facts) for c in action.fail
            )
            return _monitor_answer(503 if failing else 200), "monitor"
        if head.host != facts.host or head.target is not facts.target:
            # a rule rewrote Host or the target: later conditions see the new one
            facts = replace(facts, host=head.host, target=head.target)
    return None, None


def apply_response_rules(
    rules: Sequence[CompiledRule], response: ResponseHead, facts: RequestFacts
) -> LocalResponse | None:
    """`http-response` (then `http-after-response`) rules on a server's answer, in order;
    later conditions and values see the headers and status earlier rules left. A `deny`
    that applies ends the rules: its answer replaces the server's."""
    facts = replace(facts, response=response, inspected=None)
    for rule in rules:
        if not condition_holds(rule.condition, facts):
            continue
        action = rule.action
        headers = response.headers
        if isinstance(action, HttpSetHeader):
            name = action.name.encode("latin-1")
            value = expand(action.value, facts).encode("latin-1", "replace")
            if not action.add:
                lower = name.lower()
                headers = [(k, v) for k, v in headers if k.lower() != lower]
            else:
                headers = list(headers)
            headers.append((name, value))
        elif isinstance(action, HttpDelHeader):
            lower = action.name.encode("latin-1").lower()
            headers = [(k, v) for k, v in headers if k.lower() != lower]
        elif isinstance(action, HttpReplace):
            changed = replace_headers(headers, action, facts)
            if changed is None:
                continue
            headers = changed
        elif isinstance(action, HttpSetStatus):
            reason = action.reason if action.reason is not None else reason_phrase(action.status)
            response.set_status(action.status, reason.encode("latin-1", "replace"))
            continue
        elif isinstance(action, HttpDeny):
            return error_response(action.status)
        else:  # the parser admits only these actions here
            continue
        response.set_headers(headers)
    return None


def apply_after_response_rules(
    rules: Sequence[CompiledRule], answer: LocalResponse, facts: RequestFacts
) -> LocalResponse:
    """`http-after-response` rules on an answer staplegate makes itself (HAProxy runs them
    on every response, its own included)."""
    head = ResponseHead(
        answer.status,
        answer.reason.encode("latin-1"),
        "1.1",
        [(n.encode("latin-1"), v.encode("latin-1", "replace")) for n, v in answer.headers],
        keep_alive=not answer.close,
        head_request=False,
    )
    apply_response_rules(rules, head, facts)  # no deny: the parser refuses it here
    headers = tuple(
        (n.decode("latin-1"), v.decode("latin-1"))
        for n, v in head.headers
        if n.lower() != b"content-length"
    )
    reason = head.reason.decode("latin-1")
    return LocalResponse(head.status, reason, headers, answer.body, answer.close)


def render_unique_id(
    parts: Sequence[str | SampleExpression | LogVariable],
    facts: RequestFacts,
    *,
    now_s: int,
    request_number: int,
    pid: int,
) -> str:
    """`unique-id-format` for one request (HAProxy's widths in hexadecimal: addresses byte
    by byte, ports, counter and pid on 4 digits, the date on 8)."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, SampleExpression):
            out.append(evaluate(part, facts))
        else:
            out.append(_log_variable(part, facts, now_s, request_number, pid))
    return "".join(out)


def _log_variable(
    variable: LogVariable, facts: RequestFacts, now_s: int, request_number: int, pid: int
) -> str:
    name = variable.name
    if name in ("ci", "fi"):
        address = facts.client_address if name == "ci" else facts.frontend_address
        host = address[0] if address is not None else "0.0.0.0"
        if not variable.hexa:
            return host
        try:
            return ipaddress.ip_address(host.split("%", 1)[0]).packed.hex().upper()
        except ValueError:
            return host
    if name == "cp":
        number = facts.client_address[1]
    elif name == "fp":
        number = facts.frontend_address[1] if facts.frontend_address is not None else 0
    elif name == "Ts":
        return f"{now_s:08X}" if variable.hexa else str(now_s)
    elif name == "rt":
        number = request_number
    else:
        number = pid
    return f"{number:04X}" if variable.hexa else str(number)


def _set_destination(head: RequestHead, action: HttpSetDst, facts: RequestFacts) -> None:
    """`set-dst` / `set-dst-port`: a value that is no address (or port) changes nothing, as
    in HAProxy when the expression fails."""
    value = evaluate(action.expression, facts).strip()
    current = getattr(head, "destination", None) or facts.frontend_address or ("", 0)
    if action.port:
        if value.isdigit() and 0 < int(value) < 65536:
            head.destination = (current[0], int(value))
        return
    try:
        address = str(ipaddress.ip_address(value))
    except ValueError:
        return
    head.destination = (address, current[1])


def _set_variable(head: RequestHead, action: HttpSetVar, facts: RequestFacts) -> None:
    """`set-var(NAME) EXPR`, `set-var-fmt(NAME) FMT`, `unset-var(NAME)` on this request."""
    variables: dict[str, str] | None = getattr(head, "variables", None)
    if variables is None:
        variables = head.variables = {}
    if action.unset:
        variables.pop(action.name, None)
    elif action.expression is not None:
        variables[action.name] = evaluate(action.expression, facts)
    else:
        variables[action.name] = expand(action.value, facts)


def _set_target(head: RequestHead, action: HttpSetTarget, value: bytes) -> bool:
    """HAProxy's set-path/set-pathq/set-query/set-uri on the request line; the head is then
    sent as rebuilt from its parts (its bytes as read are dropped). False: the result would
    not be a valid request target (empty, or with a space or a line break)."""
    target = head.target
    origin = b""
    if target[:1] != b"/" and action.part != "uri":  # absolute-form: keep scheme://authority
        scheme_end = target.find(b"://")
        if scheme_end > 0:
            slash = target.find(b"/", scheme_end + 3)
            origin, target = (target, b"") if slash < 0 else (target[:slash], target[slash:])
    path, question, query = target.partition(b"?")
    if action.part == "uri":
        target = value
    elif action.part == "path":
        target = value + question + query
    elif action.part == "pathq":
        target = value
    elif question or value:  # query: the `?` stays, and is added only for a value
        target = path + b"?" + value
    if any(c in target for c in b" \r\n\t") or not target:
        return False
    head.target = origin + target
    head.headers = head.headers  # drop the bytes as read: `encode` rebuilds the line
    return True


_BACKREF = re.compile(r"\\([0-9])")


def _replaced(action: HttpReplace, value: str, facts: RequestFacts) -> str | None:
    """`value` rewritten when the rule's regex is found in it (the whole value becomes the
    expanded format, `\\N` being the match's group N), else None."""
    found = action.regex.search(value)
    if found is None:
        return None
    template = expand(action.replacement, facts)
    groups = found.groups()

    def group(ref: re.Match[str]) -> str:
        index = int(ref.group(1))
        if index == 0:
            return found.group(0)
        return (groups[index - 1] or "") if index <= len(groups) else ""

    return _BACKREF.sub(group, template)


def replace_headers(
    headers: list[tuple[bytes, bytes]], action: HttpReplace, facts: RequestFacts
) -> list[tuple[bytes, bytes]] | None:
    """`replace-header` (each line of the header) or `replace-value` (each comma-separated
    value) on a copy of `headers`; None when nothing matched."""
    assert action.name is not None
    wanted = action.name.lower().encode("latin-1")
    out: list[tuple[bytes, bytes]] = []
    changed = False
    for key, raw in headers:
        if key.lower() != wanted:
            out.append((key, raw))
            continue
        text = raw.decode("latin-1")
        if action.part == "header":
            new = _replaced(action, text, facts)
            values = [text if new is None else new]
            changed = changed or new is not None
        else:
            values = []
            for part in text.split(","):
                part = part.strip()
                new = _replaced(action, part, facts)
                values.append(part if new is None else new)
                changed = changed or new is not None
        value = ", ".join(values)
        if has_line_break(value.encode("latin-1", "replace")):
            out.append((key, raw))  # never split a header line: the rewrite is dropped
            continue
        out.append((key, value.encode("latin-1", "replace")))
    return out if changed else None


def _replace_target(head: RequestHead, action: HttpReplace, facts: RequestFacts) -> bool:
    """`replace-path|replace-pathq|replace-uri`; False when the result is no valid target
    (HAProxy's strict mode answers 500)."""
    target = head.target
    if action.part == "uri":
        current = target
    else:
        path = request_path(target)
        if path is None:
            return True
        current = path.encode("latin-1")
        if action.part == "pathq":
            query_at = target.find(b"?")
            if query_at >= 0:
                current += target[query_at:]
    new = _replaced(action, current.decode("latin-1"), facts)
    if new is None:
        return True
    part = {"path": "path", "pathq": "pathq", "uri": "uri"}[action.part]
    return _set_target(head, HttpSetTarget(part, ""), new.encode("latin-1", "replace"))


def _monitored(uri: str, target: bytes) -> bool:
    """HAProxy's `monitor-uri` match: the request's URI as sent, or the path of an
    absolute-form one."""
    wanted = uri.encode("latin-1")
    return target == wanted or (target[:1] != b"/" and request_path(target) == uri)


#: HAProxy's monitor answers (its `http_err_msgs` texts for 200 and 503)
_MONITOR_BODIES = {
    200: b"<html><body><h1>200 OK</h1>\nService ready.\n</body></html>\n",
    503: b"<html><body><h1>503 Service Unavailable</h1>\n"
    b"No server is available to handle this request.\n</body></html>\n",
}


def _monitor_answer(status: int) -> LocalResponse:
    headers = (("content-type", "text/html"), ("cache-control", "no-cache"))
    return LocalResponse(
        status, reason_phrase(status), headers, _MONITOR_BODIES[status], close=False, builtin=True
    )


def _return(action: HttpReturn, file_body: bytes | None, facts: RequestFacts) -> LocalResponse:
    if action.log_format:  # `lf-string`: evaluated for this request
        body = expand(action.body or "", facts).encode("utf-8", "surrogateescape")
    else:
        body = file_body if file_body is not None else (action.body or "").encode()
    headers: tuple[tuple[str, str], ...] = ()
    if action.content_type is not None:
        headers = (("content-type", action.content_type),)
    return LocalResponse(action.status, reason_phrase(action.status), headers, body, close=False)


def _service(snapshot: ServiceSnapshot | None) -> LocalResponse:
    if snapshot is None or not snapshot.body:  # the master has not pushed one yet
        return error_response(503)
    headers = (("content-type", EXPOSITION_CONTENT_TYPE), ("cache-control", "no-cache"))
    return LocalResponse(200, reason_phrase(200), headers, snapshot.body, close=False)


def _origin_uri(head: RequestHead, action: HttpRedirect | HttpRedirectScheme) -> str:
    """The request's path and query as a redirect appends them (HAProxy's `drop-query`
    and `append-slash` applied)."""
    target = head.target
    scheme_end = target.find(b"://")
    if scheme_end > 0 and target[:1] != b"/":  # absolute-form: keep its path (and query)
        rest = target[scheme_end + 3 :]
        cut = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=len(rest))
        target = rest[cut:] if rest[cut:].startswith(b"/") else b"/" + rest[cut:]
    uri = target.decode("latin-1")
    if action.drop_query:
        uri = uri.split("?", 1)[0]
    if action.append_slash and not uri.endswith("/"):
        uri += "/"
    return uri


def _redirect(
    action: HttpRedirect | HttpRedirectScheme, head: RequestHead, facts: RequestFacts
) -> LocalResponse:
    if isinstance(action, HttpRedirectScheme):
        location = f"{action.scheme}://{head.host or ''}{_origin_uri(head, action)}"
    elif action.kind == "location":
        location = expand(action.value, facts)
    else:  # prefix: HAProxy drops a prefix of "/" (the path already starts with one)
        prefix = expand(action.value, facts)
        location = ("" if prefix == "/" else prefix) + _origin_uri(head, action)
    return LocalResponse(
        action.code,
        reason_phrase(action.code),
        (("location", location), ("cache-control", "no-cache")),
        close=False,
    )


#: HAProxy's realm when `stats realm` is not set
DEFAULT_STATS_REALM = "HAProxy Statistics"


def unauthorized(realm: str) -> LocalResponse:
    """HAProxy's 401 asking for Basic credentials (`http-request auth`, `stats auth`)."""
    quoted = realm.replace("\\", "\\\\").replace('"', '\\"')
    return LocalResponse(
        401,
        reason_phrase(401),
        (
            ("www-authenticate", f'Basic realm="{quoted}"'),
            ("cache-control", "no-cache"),
            ("content-type", "text/html"),
        ),
        b"<html><body><h1>401 Unauthorized</h1>\n"
        b"You need a valid user and password to access this content.\n</body></html>\n",
        close=False,
    )


class StatsService:
    """A frontend's `stats` page in one worker: its URI, credentials or `stats
    http-request` rules, and the page the master last rendered for it (replaced whole by
    `process.ipc.read_messages`); with `stats admin`, also the page's admin variant and the
    channel its actions take (`proxy.stats_admin`)."""

    __slots__ = (
        "_credentials",
        "_uri",
        "admin",
        "admin_html",
        "channel",
        "csv",
        "html",
        "name",
        "realm",
        "rules",
    )

    def __init__(
        self,
        name: str,
        uri: str,
        auth: Sequence[str],
        realm: str | None,
        admin: Condition | None = None,
        rules: Sequence[CompiledRule] = (),
    ) -> None:
        self.name = name
        self._uri = uri.encode("latin-1", "replace")
        self._credentials = frozenset(base64.b64encode(pair.encode()) for pair in auth)
        self.realm = realm or DEFAULT_STATS_REALM
        self.rules = tuple(rules)  # HAProxy: never together with `stats auth`
        self.html = b""
        self.csv = b""
        self.admin = admin  # `stats admin if|unless …`
        self.admin_html = b""
        self.channel = stats_admin.AdminChannel()  # the worker wires it to the master

    @property
    def uri(self) -> bytes:
        return self._uri

    def matches(self, head: RequestHead) -> bool:
        """HAProxy's rule: the URI begins with the `stats uri` prefix."""
        return head.target.startswith(self._uri)

    def _gate(self, head: RequestHead, facts: RequestFacts | None) -> LocalResponse | None:
        """What the first applying `stats http-request` rule answers (deny: 403, auth: 401),
        or 401 when `stats auth` is set and not met; None lets the request through."""
        if self.rules:
            if facts is None:  # cannot happen (the stream passes them): fail closed
                return error_response(403)
            verdict, _ = apply_rules(self.rules, head, facts)
            return verdict
        if self._credentials and not self._authorized(head):
            return unauthorized(self.realm)
        return None

    def takes_form(self, head: RequestHead, facts: RequestFacts | None) -> bool:
        """A POST that the `stats http-request` rules or `stats auth` and `stats admin`
        allow: the caller reads its form and sends the action to the master
        (`proxy.stats_admin`)."""
        return (
            head.method == "POST"
            and self.admin is not None
            and facts is not None
            and self._gate(head, facts) is None
            and condition_holds(self.admin, facts)
        )

    def answer(self, head: RequestHead, facts: RequestFacts | None = None) -> LocalResponse:
        """The page (its admin variant when `stats admin` holds for `facts`), its `;csv`
        export, or what the rules or `stats auth` answer instead (`_gate`); any POST that
        reaches here is denied (303 to `;st=DENY`, as HAProxy). `facts` are needed when
        there are rules or an admin condition."""
        gate = self._gate(head, facts)
        if gate is not None:
            return gate
        if head.method == "POST":
            return stats_admin.redirect(self._uri, stats_admin.DENY)
        admin = self.admin is not None and facts is not None and condition_holds(self.admin, facts)
        csv = b";csv" in head.target[len(self._uri) :]
        body = self.csv if csv else (self.admin_html or self.html) if admin else self.html
        if not body:  # the master has not pushed a page yet
            return error_response(503)
        if not csv and b";st=" in head.target:
            body = body.replace(stats_admin.BANNER_MARK, stats_admin.banner(head.target, self._uri))
        kind = "text/plain; charset=utf-8" if csv else "text/html; charset=utf-8"
        headers = (("content-type", kind), ("cache-control", "no-cache"))
        return LocalResponse(200, reason_phrase(200), headers, body, close=False)

    def _authorized(self, head: RequestHead) -> bool:
        for name, value in head.headers:
            if name.lower() == b"authorization":
                scheme, _, token = value.strip().partition(b" ")
                if scheme.lower() == b"basic" and token.strip() in self._credentials:
                    return True
        return False
