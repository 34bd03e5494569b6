"""Backend pools (`backends`): round-robin among UP servers, rise and fall, settings checks."""

from __future__ import annotations

import pytest

from staplegate.proxy.backends import (
    AdminState,
    BackendPool,
    BackendServer,
    ServerState,
    StateChange,
)

A = BackendServer("a", "127.0.0.1", 1, rise=2, fall=3)
B = BackendServer("b", "127.0.0.1", 2)
C = BackendServer("c", "127.0.0.1", 3)


def test_round_robin_skips_down_servers() -> None:
    pool = BackendPool("be", [A, B, C])
    assert [pool.pick() for _ in range(4)] == [A, B, C, A]
    for _ in range(3):
        pool.report(B, ok=False)
    assert pool.state(B) is ServerState.DOWN
    assert [pool.pick() for _ in range(4)] == [C, A, C, A]


def test_rise_and_fall() -> None:
    pool = BackendPool("be", [A])
    assert pool.report(A, ok=False) is None
    assert pool.report(A, ok=False) is None
    assert pool.report(A, ok=False) == StateChange(A, ServerState.DOWN, 3)
    assert pool.pick() is None
    assert pool.report(A, ok=True) is None
    assert pool.report(A, ok=False) is None  # a failure resets the rise count
    assert pool.report(A, ok=True) is None
    assert pool.report(A, ok=True) == StateChange(A, ServerState.UP, 2)
    assert pool.pick() is A


def test_bad_server_settings() -> None:
    with pytest.raises(ValueError, match="rise and fall"):
        BackendServer("x", "127.0.0.1", 1, rise=0)
    with pytest.raises(ValueError, match="duplicate"):
        BackendPool("be", [A, A])


def test_take_now_with_one_server_respects_maxconn_state_and_admin() -> None:
    """`take_now`'s one-server shortcut gives what `pick` + `acquire` give."""
    solo = BackendServer("s", "127.0.0.1", 1, maxconn=2, rise=1, fall=1, check=True)
    pool = BackendPool("be", [solo])
    assert pool.take_now() is solo
    assert pool.take_now() is solo
    assert pool.take_now() is None  # at its maxconn
    assert (pool.active(solo), pool.served(solo)) == (2, 2)
    pool.release(solo)
    pool.set_admin("s", AdminState.MAINT)
    assert pool.take_now() is None
    pool.set_admin("s", AdminState.READY)
    pool.set_state("s", ServerState.DOWN)
    assert pool.take_now() is None
    pool.set_state("s", ServerState.UP)
    assert pool.observe(solo, ok=False)  # fall 1: avoided on traffic for a while
    assert pool.take_now() is None
    pool.set_state("s", ServerState.UP)  # the master's checks say UP again
    assert pool.take_now() is solo


def test_take_now_with_one_server_keeps_minconns_dynamic_limit() -> None:
    """`minconn 1 maxconn 10` with `fullconn 100`: an idle backend lets one request in."""
    solo = BackendServer("s", "127.0.0.1", 1, maxconn=10, minconn=1)
    pool = BackendPool("be", [solo], fullconn=100)
    assert pool.take_now() is solo
    assert pool.take_now() is None  # the dynamic limit is 1 at this load, not maxconn
    pool.release(solo)
    assert pool.take_now() is solo
