"""Routing: which backend a connection goes to, from a frontend's plan (`use_backend` rules).

Built once per frontend in each worker; the router it returns runs per connection.
"""

from __future__ import annotations

from collections.abc import Callable

from staplegate.config.model import Condition
from staplegate.deploy.plan import FrontendPlan
from staplegate.proxy.backends import BackendPool
from staplegate.proxy.http_rules import RequestFacts
from staplegate.proxy.http_rules import condition_holds as _facts_hold
from staplegate.proxy.records import ConnectionInfo


def condition_holds(
    condition: Condition | None,
    info: ConnectionInfo,
    usable_servers: Callable[[str], int] | None = None,
) -> bool:
    """Evaluate a `use_backend` condition on what the router knows of the connection (and,
    in mode http, of the request)."""
    facts = RequestFacts(
        info.client_address,
        info.server_name,
        info.tls,
        info.host,
        info.client_certificate,
        info.target,
        info.head,
        info.frontend_address,
        usable_servers,
    )
    return _facts_hold(condition, facts)


def make_router(
    plan: FrontendPlan, pools: dict[str, BackendPool]
) -> Callable[[ConnectionInfo], BackendPool | None]:
    """`use_backend` rules in order, then `default_backend`; None when nothing applies."""
    rules = tuple((pools[r.backend], r.condition) for r in plan.rules)
    default = pools.get(plan.default_backend) if plan.default_backend else None

    def usable_servers(name: str) -> int:
        pool = pools.get(name)
        return pool.usable_count() if pool is not None else 0

    def route(info: ConnectionInfo) -> BackendPool | None:
        for pool, condition in rules:
            if condition_holds(condition, info, usable_servers):
                return pool
        return default

    return route
