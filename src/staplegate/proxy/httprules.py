"""Evaluate `if|unless` conditions and apply `http-request` rules to one request, pure.

Conditions test the connection (`ssl_fc`, `ssl_fc_sni`, `req.ssl_sni`) and, in mode http,
the request (`hdr(host)`: the Host header exactly as sent, port included, as HAProxy's
`hdr(host)` fetch returns it). Rules run in order, like HAProxy's: header edits change the
request in place; `return`, `deny` and `redirect` stop evaluation and answer locally.
Header values are literal, except the sample expressions `%[src]`, `%[src_port]`,
`%[ssl_fc_sni]` and `%[ssl_fc]`, which are the ones people write for X-Forwarded-* headers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from staplegate.config.model import (
    AclFetch,
    AclMatch,
    AclTerm,
    Condition,
    HttpAction,
    HttpDelHeader,
    HttpDeny,
    HttpRedirectScheme,
    HttpReturn,
    HttpSetHeader,
)
from staplegate.proxy.httpmsg import LocalResponse, RequestHead, error_response, reason_phrase


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What conditions may look at."""

    client_address: tuple[str, int]
    server_name: str | None
    tls: bool = True
    host: str | None = None  # None in mode tcp, or a request without Host


def condition_holds(condition: Condition | None, facts: RequestFacts) -> bool:
    """All terms must hold (AND); `unless` negates the result."""
    if condition is None:
        return True
    result = all(_term_holds(term, facts) for term in condition.terms)
    return not result if condition.unless else result


def _term_holds(term: AclTerm, facts: RequestFacts) -> bool:
    if term.fetch is AclFetch.SSL_FC:
        value = facts.tls
    else:
        raw = facts.host if term.fetch is AclFetch.HDR_HOST else facts.server_name
        if raw is None:
            value = False
        else:
            subject = raw.lower() if term.ignore_case else raw
            wanted = [v.lower() if term.ignore_case else v for v in term.values]
            if term.match is AclMatch.BEGIN:
                value = any(subject.startswith(w) for w in wanted)
            elif term.match is AclMatch.END:
                value = any(subject.endswith(w) for w in wanted)
            else:
                value = subject in wanted
    return not value if term.negated else value


@dataclass(frozen=True)
class CompiledRule:
    """An `http-request` rule ready to run (a `return ... file` already read)."""

    action: HttpAction
    condition: Condition | None = None
    file_body: bytes | None = None


_SAMPLE = re.compile(r"%\[(src|src_port|ssl_fc_sni|ssl_fc)\]")


def expand(value: str, facts: RequestFacts) -> str:
    """Replace the few supported `%[sample]` expressions in a header value."""
    if "%[" not in value:
        return value

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "src":
            return facts.client_address[0]
        if name == "src_port":
            return str(facts.client_address[1])
        if name == "ssl_fc_sni":
            return facts.server_name or ""
        return "1" if facts.tls else "0"

    return _SAMPLE.sub(one, value)


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
        elif isinstance(action, HttpReturn):
            return _return(action, rule.file_body), "return"
        elif isinstance(action, HttpRedirectScheme):
            return _redirect(action, head), "redirect"
        if head.host != facts.host:  # a rule rewrote Host: later conditions see the new one
            facts = RequestFacts(facts.client_address, facts.server_name, facts.tls, head.host)
    return None, None


def _return(action: HttpReturn, file_body: bytes | None) -> LocalResponse:
    body = file_body if file_body is not None else (action.body or "").encode()
    headers: tuple[tuple[str, str], ...] = ()
    if action.content_type is not None:
        headers = (("content-type", action.content_type),)
    return LocalResponse(action.status, reason_phrase(action.status), headers, body, close=False)


def _redirect(action: HttpRedirectScheme, head: RequestHead) -> LocalResponse:
    host = head.host or ""
    target = head.target
    scheme_end = target.find(b"://")
    if scheme_end > 0 and target[:1] != b"/":  # absolute-form: keep its path (and query)
        rest = target[scheme_end + 3 :]
        cut = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=len(rest))
        target = rest[cut:] if rest[cut:].startswith(b"/") else b"/" + rest[cut:]
    location = f"{action.scheme}://{host}{target.decode('latin-1')}"
    return LocalResponse(
        action.code,
        reason_phrase(action.code),
        (("location", location), ("cache-control", "no-cache")),
        close=False,
    )
