"""A frontend's router: `use_backend` rules in order, then `default_backend`, else nothing."""

from __future__ import annotations

import ipaddress

from staplegate.config.model import AclFetch, AclMatch, AclTerm, Condition
from staplegate.deploy.plan import FrontendPlan, RouteRule
from staplegate.deploy.routing import condition_holds, make_router
from staplegate.proxy.backends import BackendPool, BackendServer
from staplegate.proxy.records import ConnectionInfo, ProxyTimeouts


def sni_is(name: str, *, unless: bool = False) -> Condition:
    return Condition(unless, (AclTerm(AclFetch.SSL_FC_SNI, (name,), ignore_case=True),))


def frontend(rules: tuple[RouteRule, ...], default: str | None) -> FrontendPlan:
    return FrontendPlan(
        name="fe",
        binds=(),
        default_backend=default,
        rules=rules,
        timeouts=ProxyTimeouts(),
        maxconn=10,
    )


def hello(server_name: str | None) -> ConnectionInfo:
    return ConnectionInfo("fe", ("192.0.2.1", 1234), server_name, None)


POOLS = {
    name: BackendPool(name, (BackendServer(f"{name}1", "127.0.0.1", 9),))
    for name in ("api", "www", "fallback")
}


def test_the_first_matching_rule_wins_then_the_default_backend() -> None:
    route = make_router(
        frontend(
            (RouteRule("api", sni_is("api.test")), RouteRule("www", sni_is("API.test"))),
            "fallback",
        ),
        POOLS,
    )
    assert route(hello("api.test")) is POOLS["api"]
    assert route(hello("other.test")) is POOLS["fallback"]
    assert route(hello(None)) is POOLS["fallback"]


def test_without_a_default_backend_an_unmatched_connection_has_no_pool() -> None:
    route = make_router(frontend((RouteRule("www", sni_is("www.test")),), None), POOLS)
    assert route(hello("www.test")) is POOLS["www"]
    assert route(hello("api.test")) is None


def test_no_condition_always_holds_and_unless_inverts() -> None:
    assert condition_holds(None, hello(None))
    assert condition_holds(sni_is("www.test", unless=True), hello("api.test"))
    assert not condition_holds(sni_is("www.test", unless=True), hello("WWW.test"))


def test_routing_on_path_source_and_ssl_fc() -> None:
    api = Condition(False, (AclTerm(AclFetch.PATH, ("/api/",), match=AclMatch.BEGIN),))
    office = Condition(
        False,
        (AclTerm(AclFetch.SRC, ("10.0.0.0/8",), networks=(ipaddress.ip_network("10.0.0.0/8"),)),),
    )
    plain = Condition(True, (AclTerm(AclFetch.SSL_FC),))
    route = make_router(
        frontend(
            (RouteRule("api", api), RouteRule("www", office), RouteRule("fallback", plain)),
            None,
        ),
        POOLS,
    )

    def info(client: str, target: bytes | None, *, tls: bool = True) -> ConnectionInfo:
        return ConnectionInfo("fe", (client, 1), None, None, "h.test", target=target, tls=tls)

    assert route(info("192.0.2.1", b"/api/v1?x")) is POOLS["api"]
    assert route(info("10.1.2.3", b"/other")) is POOLS["www"]
    assert route(info("192.0.2.1", b"/other")) is None
    assert route(info("192.0.2.1", b"/other", tls=False)) is POOLS["fallback"]
