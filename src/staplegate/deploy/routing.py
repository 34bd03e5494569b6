"""Routing: which backend a connection goes to, from a frontend's plan (`use_backend` rules).

Built once per frontend in each worker; the router it returns runs per connection.
"""

from __future__ import annotations

from collections.abc import Callable

from staplegate.config.model import Condition
from staplegate.config.samples import parse_header_format
from staplegate.deploy.plan import BackendPlan, FrontendPlan
from staplegate.proxy.backends import BackendPool
from staplegate.proxy.http_rules import RequestFacts, evaluate
from staplegate.proxy.http_rules import condition_holds as _facts_hold
from staplegate.proxy.records import ConnectionInfo


def _facts(info: ConnectionInfo, usable_servers: Callable[[str], int] | None) -> RequestFacts:
    return RequestFacts(
        info.client_address,
        info.server_name,
        info.tls,
        info.host,
        info.client_certificate,
        info.target,
        info.head,
        info.frontend_address,
        usable_servers,
        None,
        info.inspected,
        info.alpn.decode("latin-1") if info.alpn else None,
    )


def condition_holds(
    condition: Condition | None,
    info: ConnectionInfo,
    usable_servers: Callable[[str], int] | None = None,
) -> bool:
    """Evaluate a `use_backend` condition on what the router knows of the connection (and,
    in mode http, of the request)."""
    return _facts_hold(condition, _facts(info, usable_servers))


def make_content_check(
    plan: FrontendPlan | BackendPlan, pools: dict[str, BackendPool]
) -> Callable[[ConnectionInfo], bool] | None:
    """A frontend's (or backend's) `tcp-request content` rules as one check (None without
    rules): True lets the connection go on (to routing, or to the backend's servers),
    False refuses it."""
    rules = tuple((r.accept, r.condition) for r in plan.content_rules)
    if not rules:
        return None

    def usable_servers(name: str) -> int:
        pool = pools.get(name)
        return pool.usable_count() if pool is not None else 0

    def accepted(info: ConnectionInfo) -> bool:
        for accept, condition in rules:
            if condition_holds(condition, info, usable_servers):
                return accept
        return True

    return accepted


def make_router(
    plan: FrontendPlan, pools: dict[str, BackendPool]
) -> Callable[[ConnectionInfo], BackendPool | None]:
    """`use_backend` rules in order, then `default_backend`; None when nothing applies."""
    rules = tuple(
        (None, parse_header_format(r.backend), r.condition)
        if "%[" in r.backend
        else (pools[r.backend], None, r.condition)
        for r in plan.rules
    )
    default = pools.get(plan.default_backend) if plan.default_backend else None
    dynamic = plan.dynamic_backends

    def usable_servers(name: str) -> int:
        pool = pools.get(name)
        return pool.usable_count() if pool is not None else 0

    def route(info: ConnectionInfo) -> BackendPool | None:
        for pool, name_format, condition in rules:
            if condition_holds(condition, info, usable_servers):
                if name_format is None:
                    return pool
                # a dynamic name (HAProxy: an unknown one ends the rules: default_backend)
                facts = _facts(info, usable_servers)
                name = "".join(p if isinstance(p, str) else evaluate(p, facts) for p in name_format)
                return pools.get(name, default) if name in dynamic else default
        return default

    return route
