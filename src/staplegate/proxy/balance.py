"""Choose one server among a backend's candidates: HAProxy's `balance` algorithms, pure.

The caller (`BackendPool`) has already filtered the candidates (usable, below `maxconn`,
primaries before backups); an algorithm only orders them. Each algorithm keeps its small
state between calls (one event loop per worker, so no locking):

- `roundrobin` / `static-rr`: a cursor walks a fixed schedule built once from every server
  by smooth weighted round robin (each step adds every server's weight to its credit, the
  largest credit wins and pays the total back), so weights 3:1 give A A B A, interleaved
  rather than in bursts; servers that are not candidates now are stepped over. HAProxy's
  roundrobin is dynamic and static-rr is not; with weights fixed at start-up both orders
  are the same here.
- `leastconn`: the fewest active connections per unit of weight; ties go round robin.
- `source`: a hash of the client address over the weighted candidates, so one client keeps
  its server while the set of usable servers stays the same.
- `first`: the first candidate in declaration order (the pool skips full servers).
- `random[(draws)]`: HAProxy's "power of two choices": `draws` servers drawn at random
  by weight, the one with the fewest active connections per unit of weight wins (draws=1
  is plain weighted random).
"""

from __future__ import annotations

import enum
import random
import zlib
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar


class Algorithm(enum.Enum):
    ROUNDROBIN = "roundrobin"
    STATIC_RR = "static-rr"
    LEASTCONN = "leastconn"
    SOURCE = "source"
    FIRST = "first"
    RANDOM = "random"


class Weighted(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def weight(self) -> int: ...


S = TypeVar("S", bound=Weighted)


class Balancer:
    """Picks among candidates; `active(name)` gives a server's current connection count."""

    def __init__(
        self,
        algorithm: Algorithm,
        servers: Sequence[Weighted],
        active: Callable[[str], int],
        *,
        draws: int = 2,
        rng: random.Random | None = None,
    ) -> None:
        self.algorithm = algorithm
        self.draws = draws
        self._rng = rng or random.Random()
        self._active = active
        self._schedule = smooth_schedule(servers)
        self._cursor = 0
        self._turn = 0

    def choose(self, candidates: Sequence[S], client_ip: str | None) -> S | None:
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        match self.algorithm:
            case Algorithm.ROUNDROBIN | Algorithm.STATIC_RR:
                return self._smooth_round_robin(candidates)
            case Algorithm.LEASTCONN:
                return self._least_connections(candidates)
            case Algorithm.SOURCE:
                return source_choice(candidates, client_ip or "")
            case Algorithm.FIRST:
                return candidates[0]
            case Algorithm.RANDOM:
                return self._random_draws(candidates)

    def _random_draws(self, candidates: Sequence[S]) -> S:
        weights = [max(s.weight, 1) for s in candidates]
        drawn = self._rng.choices(candidates, weights, k=self.draws)
        best = drawn[0]
        best_load = (self._active(best.name) + 1) / max(best.weight, 1)
        for server in drawn[1:]:
            load = (self._active(server.name) + 1) / max(server.weight, 1)
            if load < best_load:
                best, best_load = server, load
        return best

    def _smooth_round_robin(self, candidates: Sequence[S]) -> S:
        by_name = {s.name: s for s in candidates}
        schedule = self._schedule
        period = len(schedule)
        for step in range(period):
            name = schedule[(self._cursor + step) % period]
            server = by_name.get(name)
            if server is not None:
                self._cursor = (self._cursor + step + 1) % period
                return server
        return candidates[0]  # a candidate unknown to the schedule (not expected)

    def _least_connections(self, candidates: Sequence[S]) -> S:
        count = len(candidates)
        start = self._turn % count
        self._turn += 1
        best: S | None = None
        best_load = 0.0
        for offset in range(count):
            server = candidates[(start + offset) % count]
            load = (self._active(server.name) + 1) / max(server.weight, 1)
            if best is None or load < best_load:
                best, best_load = server, load
        assert best is not None
        return best


def smooth_schedule(servers: Sequence[Weighted]) -> tuple[str, ...]:
    """One period of smooth weighted round robin over `servers` (names, sum(weights) long)."""
    weights = {s.name: max(s.weight, 0) for s in servers}
    total = sum(weights.values())
    credit = dict.fromkeys(weights, 0)
    order: list[str] = []
    for _ in range(total):
        best = ""
        for name, weight in weights.items():
            credit[name] += weight
            if not best or credit[name] > credit[best]:
                best = name
        credit[best] -= total
        order.append(best)
    return tuple(order)


def source_choice(candidates: Sequence[S], client_ip: str) -> S:
    """HAProxy's map-based source hashing: the hash picks a slot in a weight-sized table."""
    total = sum(max(s.weight, 1) for s in candidates)
    slot = zlib.crc32(client_ip.encode()) % total
    for server in candidates:
        slot -= max(server.weight, 1)
        if slot < 0:
            return server
    return candidates[-1]
