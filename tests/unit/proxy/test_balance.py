"""Balancing algorithms, backup choice, maxconn and the queue of `BackendPool`."""

from __future__ import annotations

import asyncio
import random

import pytest

from staplegate.proxy.backends import BackendPool, BackendServer, QueueTimeout, ServerState
from staplegate.proxy.balance import Algorithm, Balancer, smooth_schedule

A = BackendServer("a", "127.0.0.1", 1, weight=3)
B = BackendServer("b", "127.0.0.1", 2)
SPARE = BackendServer("spare", "127.0.0.1", 3, backup=True)
SPARE2 = BackendServer("spare2", "127.0.0.1", 4, backup=True)


def names(servers: list[BackendServer | None]) -> list[str]:
    return [s.name if s else "-" for s in servers]


def test_weighted_round_robin_interleaves() -> None:
    assert smooth_schedule([A, B]) == ("a", "a", "b", "a")
    pool = BackendPool("be", [A, B])
    assert names([pool.pick() for _ in range(8)]) == ["a", "a", "b", "a"] * 2


def test_backup_only_when_every_primary_is_down_and_only_the_first() -> None:
    pool = BackendPool("be", [A, B, SPARE, SPARE2])
    assert {pool.pick() for _ in range(8)} == {A, B}
    pool.set_state("a", ServerState.DOWN)
    pool.set_state("b", ServerState.DOWN)
    assert names([pool.pick() for _ in range(3)]) == ["spare"] * 3
    pool.set_state("spare", ServerState.DOWN)
    assert pool.pick() is SPARE2


def test_leastconn_prefers_the_least_loaded_per_weight() -> None:
    pool = BackendPool("be", [B, BackendServer("c", "h", 5)], algorithm=Algorithm.LEASTCONN)
    first = pool.pick()
    assert first is not None
    pool.acquire(first)
    second = pool.pick()
    assert second is not None
    assert second is not first
    pool.acquire(second)
    pool.release(first)
    assert pool.pick() is first


def test_source_hash_is_stable_and_spreads() -> None:
    pool = BackendPool("be", [B, BackendServer("c", "h", 5)], algorithm=Algorithm.SOURCE)
    assert len({pool.pick("192.0.2.1") for _ in range(10)}) == 1
    chosen = {pool.pick(f"192.0.2.{i}") for i in range(50)}
    assert len(chosen) == 2


def test_first_fills_servers_in_order() -> None:
    c = BackendServer("c", "h", 5, maxconn=1)
    d = BackendServer("d", "h", 6, maxconn=1)
    pool = BackendPool("be", [c, d], algorithm=Algorithm.FIRST)
    assert pool.pick() is c
    pool.acquire(c)
    assert pool.pick() is d
    pool.acquire(d)
    assert pool.pick() is None  # full: take() would queue


def test_queue_hands_released_slots_in_order_and_times_out() -> None:
    async def scenario() -> None:
        only = BackendServer("only", "h", 7, maxconn=1)
        pool = BackendPool("be", [only], queue_timeout_s=5.0)
        assert await pool.take() is only
        waiter = asyncio.create_task(pool.take())
        await asyncio.sleep(0)
        assert pool.queue_length == 1
        pool.release(only)
        assert await waiter is only
        assert pool.active(only) == 1
        with pytest.raises(QueueTimeout):
            await pool.take(timeout_s=0.05)
        assert pool.queue_length == 0
        pool.set_state("only", ServerState.DOWN)
        assert await pool.take() is None  # nothing usable: 503, no queueing

    asyncio.run(scenario())


def test_observed_connection_failures_take_a_checked_server_out() -> None:
    checked = BackendServer("c", "h", 5, check=True, fall=2, inter_s=10)
    pool = BackendPool("be", [checked, B])
    assert not pool.observe(checked, ok=False)
    assert pool.observe(checked, ok=False)
    assert {pool.pick() for _ in range(4)} == {B}
    pool.set_state("c", ServerState.UP)  # the master's checks speak again
    assert checked in {pool.pick() for _ in range(4)}
    unchecked = BackendPool("be", [B])
    assert not any(unchecked.observe(B, ok=False) for _ in range(5))


def test_a_server_taken_out_on_traffic_is_logged_as_haproxy_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    checked = BackendServer("c", "h", 5, check=True, fall=2, inter_s=10)
    pool = BackendPool("be", [checked, B])
    with caplog.at_level("WARNING", logger="staplegate.proxy"):
        pool.connect_failed(checked)
        assert not caplog.records  # one failure of fall 2: still in
        pool.connect_failed(checked)
    assert [r.getMessage() for r in caplog.records] == [
        "Server be/c is DOWN, reason: Layer4 connection problem (observed on traffic). "
        "1 active servers left."  # HAProxy counts what is left: b
    ]


def test_random_draws_pick_the_least_loaded_of_weighted_draws() -> None:
    """HAProxy's `balance random` (draws 2 by default): weighted random picks, the least
    loaded of them wins; draws=1 is plain weighted random."""
    active = {"a": 0, "b": 0}
    balancer = Balancer(Algorithm.RANDOM, [A, B], active.__getitem__, rng=random.Random(7))
    picks = [balancer.choose([A, B], None) for _ in range(400)]
    assert {s.name for s in picks if s} == {"a", "b"}
    # with no load, two weighted draws favour the heavier server
    assert sum(1 for s in picks if s is A) > 250
    active["a"] = 50  # A is busy: whenever B is drawn at all, it wins
    busy = [balancer.choose([A, B], None) for _ in range(400)]
    assert sum(1 for s in busy if s is B) > 100
    single = Balancer(Algorithm.RANDOM, [A, B], active.__getitem__, draws=1, rng=random.Random(7))
    picks = [single.choose([A, B], None) for _ in range(400)]
    assert 250 < sum(1 for s in picks if s is A) < 350  # weight 3:1, load ignored
