"""Three OcspUpdaters sharing one real redis-server: single flight, fan-out, faults.

Everything is real but the clock: the test responder (pytest plugin, counting requests)
and the three updaters share an `OffsetClock`, so a refresh round is "move the clock past
maxdelay and the responder's cache, wake the updaters" instead of waiting. Redis is a
`redis-server` on 127.0.0.1 (tests/redis_server.py), killed and restarted by PID.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from staplegate.clock import SystemClock
from staplegate.fetch.client import FetchSettings
from staplegate.fleet.protocol import CHANNEL, lease_key, staple_key
from staplegate.fleet.redis_share import RedisShare
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.testpki.pytest_plugin import Pki
from staplegate.updater.driver import UpdaterEntry
from staplegate.updater.service import OcspUpdater
from tests.redis_server import RedisServer

FAST = FetchSettings(connect_timeout=1.0, total_timeout=5.0, connect_retries=0)
SETTINGS = UpdateSettings(mindelay=60, maxdelay=600)
VALIDITY = dt.timedelta(minutes=20)  # the responder's cache keeps an answer 10 minutes
ROUND = dt.timedelta(minutes=11)  # past maxdelay and the cache: every staple is due again
CERTS = 20
DEADLINE_S = 20.0


class OffsetClock:
    def __init__(self) -> None:
        self._system = SystemClock()
        self.offset = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return self._system.now() + self.offset


@dataclass
class Instance:
    updater: OcspUpdater
    share: RedisShare
    tables: list[Mapping[CertId, bytes]]
    installed: dict[bytes, float]
    """When each staple (DER) first reached this instance's table (monotonic seconds)."""

    @property
    def table(self) -> Mapping[CertId, bytes]:
        return self.tables[-1] if self.tables else {}


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE_S} s: {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def fleet(
    pki: Pki,
    url: str,
    clock: OffsetClock,
    entries: list[UpdaterEntry],
    count: int = 3,
    *,
    host_rate: float = 250.0,
    host_burst: int = 50,
    split: bool = False,
) -> AsyncIterator[list[Instance]]:
    """`count` instances serving `entries` (with `split`, each a disjoint share of them)."""
    instances = []
    for number in range(count):
        share = RedisShare(url, password=None, clock=clock, lease_ttl=3.0, retry=0.1)
        tables: list[Mapping[CertId, bytes]] = []
        installed: dict[bytes, float] = {}

        def record(
            table: Mapping[CertId, bytes],
            tables: list[Mapping[CertId, bytes]] = tables,
            installed: dict[bytes, float] = installed,
        ) -> None:
            tables.append(table)
            for der in table.values():
                installed.setdefault(der, time.monotonic())

        updater = OcspUpdater(
            entries[number::count] if split else entries,
            update_settings=SETTINGS,
            fetch_settings=FAST,
            on_staples=record,
            clock=clock,
            rng=random.Random(number),
            shared=share,
            host_rate=host_rate,
            host_burst=host_burst,
        )
        instances.append(Instance(updater, share, tables, installed))
    events = [asyncio.Event() for _ in instances]
    tasks = [
        asyncio.create_task(i.updater.run(started=e))
        for i, e in zip(instances, events, strict=True)
    ]
    try:
        async with asyncio.timeout(DEADLINE_S):
            for event in events:
                await event.wait()
        yield instances
    finally:
        for instance in instances:
            instance.updater.stop()
        async with asyncio.timeout(DEADLINE_S):
            await asyncio.gather(*tasks)


def make_entries(pki: Pki, count: int = CERTS) -> tuple[list[UpdaterEntry], list[CertId]]:
    entries, ids = [], []
    for number in range(count):
        leaf = pki.issue(f"site{number}.fleet.test")
        path = f"/certs/site{number}.pem"
        entries.append(UpdaterEntry(leaf.certificate, leaf.issuer, path, pki.responder.url))
        ids.append(CertId.for_certificate(leaf.certificate, leaf.issuer))
    return entries, ids


def all_stapled(instances: list[Instance], ids: list[CertId]) -> bool:
    return all(set(i.table) >= set(ids) for i in instances)


async def next_round(clock: OffsetClock, instances: list[Instance]) -> None:
    clock.offset += ROUND
    for instance in instances:
        instance.updater.wake()


def test_one_request_per_certificate_first_and_per_refresh_round(
    pki_factory: Callable[..., Pki], redis_server: RedisServer
) -> None:
    clock = OffsetClock()
    pki = pki_factory(clock=clock, validity=VALIDITY)
    entries, ids = make_entries(pki)

    async def scenario() -> None:
        async with fleet(pki, redis_server.url, clock, entries) as instances:
            await until(lambda: all_stapled(instances, ids), "every instance stapled")
            await until(lambda: len(pki.responder.requests) >= CERTS, "first staples")
            first = {i: dict(inst.table) for i, inst in enumerate(instances)}
            assert first[0] == first[1] == first[2]  # the very same DER everywhere
            await next_round(clock, instances)
            await until(
                lambda: all(
                    inst.table.get(c) not in (None, first[0][c]) for inst in instances for c in ids
                ),
                "every instance installed the second round's staples",
            )
            assert [dict(i.table) for i in instances][1:] == [dict(instances[0].table)] * 2
            for der in instances[0].table.values():  # every instance installs it within 1 s
                times = [i.installed[der] for i in instances]
                assert max(times) - min(times) < 1.0
            assert sum(i.share.stats.fallbacks for i in instances) == 0
            assert sum(i.share.stats.peer_staples for i in instances) == 2 * 2 * CERTS
        return None

    asyncio.run(scenario())
    assert len(pki.responder.requests) == 2 * CERTS


def test_redis_killed_each_keeps_stapling_then_single_flight_resumes(
    pki_factory: Callable[..., Pki], redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="staplegate")
    clock = OffsetClock()
    pki = pki_factory(clock=clock, validity=VALIDITY)
    entries, ids = make_entries(pki, 8)

    async def scenario() -> None:
        async with fleet(pki, redis_server.url, clock, entries) as instances:
            await until(lambda: len(pki.responder.requests) >= 8, "first staples")
            await until(lambda: all_stapled(instances, ids), "every instance stapled")
            redis_server.kill()
            before = [dict(i.table) for i in instances]
            await next_round(clock, instances)
            # on its own: one request per instance per certificate, nothing withdrawn
            await until(lambda: len(pki.responder.requests) >= 8 + 3 * 8, "own fetches")
            await until(
                lambda: all(
                    i.table[c] != b[c] for i, b in zip(instances, before, strict=True) for c in ids
                ),
                "every instance refreshed on its own",
            )
            assert all(not i.share.up and i.share.stats.fallbacks >= 8 for i in instances)
            down = [m for m in caplog.messages if "unavailable" in m and "shared store" in m]
            assert len(down) == 3, down  # once per instance, not once per fetch
            redis_server.restart()
            await until(lambda: all(i.share.up for i in instances), "rejoined")
            assert len([m for m in caplog.messages if "rejoined the fleet" in m]) == 3
            requests = len(pki.responder.requests)
            assert requests == 8 + 3 * 8
            await next_round(clock, instances)
            await until(
                lambda: len(pki.responder.requests) >= requests + 8,
                "third round",
            )
            await until(
                lambda: (
                    all(i.share.stats.leases_held == 0 for i in instances)
                    and not any(i.updater.fetches_in_flight for i in instances)
                ),
                "third round done",
            )
            assert all(set(i.table) == set(ids) for i in instances)

    asyncio.run(scenario())
    assert len(pki.responder.requests) == 8 + 3 * 8 + 8


def test_a_forged_or_stale_shared_staple_is_refused_by_every_instance(
    pki_factory: Callable[..., Pki], redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="staplegate")
    clock = OffsetClock()
    pki = pki_factory(clock=clock, validity=VALIDITY)
    entries, ids = make_entries(pki, 2)
    target = ids[0]

    async def scenario() -> None:
        async with fleet(pki, redis_server.url, clock, entries) as instances:
            await until(lambda: all_stapled(instances, ids), "every instance stapled")
            good = instances[0].table[target]
            forged = good[:-8] + bytes(b ^ 0xFF for b in good[-8:])  # signature bytes
            redis_server.command("SET", staple_key(target), forged)
            redis_server.command("PUBLISH", CHANNEL, target.hex)
            await until(
                lambda: len([m for m in caplog.messages if "shared store refused" in m]) >= 3,
                "three refusals",
            )
            assert all(i.table[target] == good for i in instances)
            # a genuine but older staple (a replay) is not installed either
            await next_round(clock, instances)
            await until(lambda: all(i.table[target] != good for i in instances), "second round")
            fresh = instances[0].table[target]
            redis_server.command("SET", staple_key(target), good)
            redis_server.command("PUBLISH", CHANNEL, target.hex)
            redis_server.command("PING")
            await until(lambda: all(i.share.up for i in instances), "still up")
            assert all(i.table[target] == fresh for i in instances)

    asyncio.run(scenario())
    refused = [m for m in caplog.messages if "shared store refused" in m]
    assert len(refused) == 3, refused  # once per instance, though read again in round 2
    assert all("refused: OCSP response signer not authorized" in m for m in refused), refused


def test_a_dead_lease_holder_is_replaced_after_the_lease_expires(
    pki_factory: Callable[..., Pki], redis_server: RedisServer
) -> None:
    clock = OffsetClock()
    pki = pki_factory(clock=clock, validity=VALIDITY)
    entries, ids = make_entries(pki, 1)

    async def scenario() -> None:
        async with fleet(pki, redis_server.url, clock, entries, count=1) as instances:
            await until(lambda: all_stapled(instances, ids), "stapled")
            # a holder that took the lease and died: nobody renews or releases it
            redis_server.command("SET", lease_key(ids[0]), "dead-holder", "PX", "1500")
            started = time.monotonic()
            outcome = await instances[0].updater.update_now(ids[0], timeout=10)
            assert outcome.ok, outcome
            assert time.monotonic() - started >= 1.0

    asyncio.run(scenario())
    assert len(pki.responder.requests) == 2


def test_unreachable_at_start_staples_on_its_own_and_says_so_once(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="staplegate")
    clock = OffsetClock()
    entries, ids = make_entries(pki, 3)
    closed = RedisServer.__new__(RedisServer)
    closed.port = RedisServer(pki.directory).port  # a free port nobody listens on

    async def scenario() -> None:
        async with fleet(pki, closed.url, clock, entries, count=1) as instances:
            await until(lambda: all_stapled(instances, ids), "stapled without Redis")
            assert not instances[0].share.up
            assert instances[0].share.stats.fallbacks == 3

    asyncio.run(scenario())
    down = [m for m in caplog.messages if "unavailable" in m]
    assert len(down) == 1, down
    assert f"redis://127.0.0.1:{closed.port}/0" in down[0]


def test_the_rate_limit_is_shared_by_the_fleet(
    pki_factory: Callable[..., Pki], redis_server: RedisServer
) -> None:
    """3 instances serving 4 certificates each from one responder host at 4 requests/s
    (burst 2): with the fleet's bucket the 12 requests need (12 - 2) / 4 = 2.5 s; with only
    each instance's own bucket, (4 - 2) / 4 = 0.5 s."""
    clock = OffsetClock()
    pki = pki_factory(clock=clock, validity=VALIDITY)
    entries, ids = make_entries(pki, 12)

    async def scenario() -> float:
        started = time.monotonic()
        async with fleet(
            pki, redis_server.url, clock, entries, host_rate=4.0, host_burst=2, split=True
        ) as fl:
            await until(
                lambda: all(set(i.table) == set(ids[n::3]) for n, i in enumerate(fl)),
                "every instance stapled its certificates",
            )
            return time.monotonic() - started

    elapsed = asyncio.run(scenario())
    assert len(pki.responder.requests) == 12
    assert elapsed >= 2.0, elapsed


def test_a_certificate_added_by_a_reload_takes_the_fleets_staple_without_asking(
    pki_factory: Callable[..., Pki], redis_server: RedisServer
) -> None:
    clock = OffsetClock()
    pki = pki_factory(clock=clock, validity=VALIDITY)
    entries, ids = make_entries(pki, 2)

    async def scenario() -> None:
        async with fleet(pki, redis_server.url, clock, entries, count=2, split=True) as pair:
            await until(
                lambda: all(set(i.table) == {ids[n]} for n, i in enumerate(pair)), "stapled"
            )
            await pair[0].updater.reconfigure(entries)  # a reload adds the other certificate
            await until(lambda: set(pair[0].table) == set(ids), "the added one stapled")
            assert pair[0].table[ids[1]] == pair[1].table[ids[1]]

    asyncio.run(scenario())
    assert len(pki.responder.requests) == 2


def test_a_frozen_redis_is_a_slow_one_each_fetches_on_its_own_then_rejoins(
    pki_factory: Callable[..., Pki], redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGSTOP: connections stay open and nothing answers — what a hung or overloaded Redis
    looks like. Operations time out (1 s), each instance falls back at once."""
    caplog.set_level(logging.INFO, logger="staplegate")
    clock = OffsetClock()
    pki = pki_factory(clock=clock, validity=VALIDITY)
    entries, ids = make_entries(pki, 3)

    async def scenario() -> None:
        async with fleet(pki, redis_server.url, clock, entries, count=2) as pair:
            await until(lambda: all_stapled(pair, ids), "stapled")
            assert redis_server.process is not None
            redis_server.process.send_signal(signal.SIGSTOP)
            try:
                before = [dict(i.table) for i in pair]
                await next_round(clock, pair)
                await until(
                    lambda: all(
                        i.table[c] != b[c] for i, b in zip(pair, before, strict=True) for c in ids
                    ),
                    "every instance refreshed on its own",
                )
                assert not any(i.share.up for i in pair)
            finally:
                redis_server.process.send_signal(signal.SIGCONT)
            await until(lambda: all(i.share.up for i in pair), "rejoined")

    asyncio.run(scenario())
    assert len(pki.responder.requests) == 3 + 2 * 3
    assert len([m for m in caplog.messages if "unavailable" in m]) == 2


def test_a_redis_out_of_memory_is_down_until_it_takes_writes_again(
    pki_factory: Callable[..., Pki], redis_server: RedisServer
) -> None:
    clock = OffsetClock()
    pki = pki_factory(clock=clock, validity=VALIDITY)
    entries, ids = make_entries(pki, 3)

    async def scenario() -> None:
        async with fleet(pki, redis_server.url, clock, entries, count=2) as pair:
            await until(lambda: all_stapled(pair, ids), "stapled")
            redis_server.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
            redis_server.command("CONFIG", "SET", "maxmemory", "1")  # every write: -OOM
            await next_round(clock, pair)
            await until(lambda: len(pki.responder.requests) >= 3 + 2 * 3, "own fetches")
            await until(lambda: not any(i.updater.fetches_in_flight for i in pair), "done")
            assert not any(i.share.up for i in pair)
            redis_server.command("CONFIG", "SET", "maxmemory", "0")
            await until(lambda: all(i.share.up for i in pair), "rejoined")

    asyncio.run(scenario())
    assert len(pki.responder.requests) == 3 + 2 * 3
