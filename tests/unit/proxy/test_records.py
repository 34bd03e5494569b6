"""The proxy's shared data types (`records`): HAProxy's codes, immutable routing facts, counters."""

from __future__ import annotations

import dataclasses

import pytest

from staplegate.proxy.records import (
    ConnectionInfo,
    ConnectionPhase,
    FrontendStats,
    HttpStats,
    ProxyTimeouts,
    Termination,
)


def test_terminations_are_haproxys_two_character_codes() -> None:
    codes = [termination.value for termination in Termination]
    assert all(len(code) == 2 for code in codes)
    assert len(set(codes)) == len(codes)
    assert Termination.NORMAL.value == "--"
    assert Termination.SERVER_CONNECT_TIMEOUT.value == "sC"


def test_connection_info_is_immutable_and_hashable() -> None:
    info = ConnectionInfo("fe", ("192.0.2.1", 4433), "a.test", b"h2")
    assert info.host is None
    assert info.client_certificate is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.host = "b.test"  # type: ignore[misc]
    assert hash(info) == hash(ConnectionInfo("fe", ("192.0.2.1", 4433), "a.test", b"h2"))


def test_timeouts_default_to_none_and_counters_to_zero() -> None:
    assert ProxyTimeouts() == ProxyTimeouts(None, None, None, None)
    stats = FrontendStats()
    assert (stats.accepted, stats.active, stats.bytes_in, stats.accept_pauses) == (0, 0, 0, 0)
    http = HttpStats()
    assert (http.requests, http.server_connects, http.server_reuses) == (0, 0, 0)
    assert not http.responses_by_class


def test_a_connection_ends_in_the_closed_phase() -> None:
    assert ConnectionPhase.CLOSED in set(ConnectionPhase)
    assert ConnectionPhase("http") is ConnectionPhase.HTTP
