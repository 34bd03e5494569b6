"""StapleWriter: the newest staple wins on disk, a failing store is logged and never raises."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from staplegate.ocsp.certid import CertId
from staplegate.store.base import StoreError, StoreErrorReason
from staplegate.updater.persist import StapleWriter

CERT = CertId("sha1", b"\x01" * 20, b"\x02" * 20, 7)


class MemoryStore:
    """An in-memory `StapleStore` (our own protocol) that can be told to fail."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.saved: list[tuple[CertId, bytes]] = []

    def load_all(self) -> dict[CertId, bytes]:
        if self.fail:
            raise StoreError(StoreErrorReason.READ_DIRECTORY_FAILED, Path("/state"), "unreadable")
        return dict(self.saved)

    def save(self, cert_id: CertId, der: bytes) -> None:
        if self.fail:
            raise StoreError(StoreErrorReason.WRITE_FAILED, Path("/state"), "disk full")
        self.saved.append((cert_id, der))

    def delete(self, cert_id: CertId) -> None:
        raise AssertionError("the updater never deletes")


def _spawn(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(coro, name=name)


def test_the_newest_pending_staple_is_the_one_written() -> None:
    store = MemoryStore()

    async def scenario() -> dict[CertId, bytes]:
        writer = StapleWriter(store, name_of=lambda _: "/c/a.pem", spawn=_spawn)
        writer.save(CERT, b"old")
        writer.save(CERT, b"new")  # before the writer ran: replaces the pending one
        await writer.flush()
        return await writer.load()

    assert asyncio.run(scenario()) == {CERT: b"new"}
    assert store.saved == [(CERT, b"new")]


def test_a_failing_store_is_logged_and_loads_nothing(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore(fail=True)

    async def scenario() -> dict[CertId, bytes]:
        writer = StapleWriter(store, name_of=lambda _: "/c/a.pem", spawn=_spawn)
        writer.save(CERT, b"der")
        await writer.flush()
        return await writer.load()

    with caplog.at_level(logging.WARNING, logger="staplegate.ocsp"):
        assert asyncio.run(scenario()) == {}
    messages = [record.getMessage() for record in caplog.records]
    assert "/c/a.pem: staple not persisted: /state: disk full" in messages
    assert any(m.startswith("state directory not loaded") for m in messages)


def test_without_a_store_nothing_happens() -> None:
    async def scenario() -> dict[CertId, bytes]:
        writer = StapleWriter(None, name_of=lambda _: "unused", spawn=_spawn)
        writer.save(CERT, b"der")
        await writer.flush()
        return await writer.load()

    assert asyncio.run(scenario()) == {}
