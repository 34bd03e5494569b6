"""Keep fetched staples on disk: load the state directory at start, write each new staple.

The store fsyncs, so every call runs off the loop (`asyncio.to_thread`). At most one writer
task per certificate runs at a time and it always writes the newest pending staple, so an
older response can never overwrite a newer one on disk. A store that fails is logged and
never stops the updater: a staple not persisted is fetched again after a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from staplegate.ocsp.certid import CertId
from staplegate.store.base import StapleStore, StoreError

logger = logging.getLogger("staplegate.ocsp")

#: Starts an owned task (the driver's, so a crash is reported the same way).
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


class StapleWriter:
    """The updater's side of the `StapleStore`; without a store every call does nothing."""

    def __init__(
        self, store: StapleStore | None, *, name_of: Callable[[CertId], str], spawn: Spawn
    ) -> None:
        self._store = store
        self._name_of = name_of
        self._spawn = spawn
        self._writers: dict[CertId, asyncio.Task[None]] = {}
        self._pending_writes: dict[CertId, bytes] = {}

    async def load(self) -> dict[CertId, bytes]:
        """Every stored staple by CertId (unverified); nothing when the store is unreadable."""
        if self._store is None:
            return {}
        try:
            return await asyncio.to_thread(self._store.load_all)
        except StoreError as exc:
            logger.warning("state directory not loaded, every staple will be fetched: %s", exc)
            return {}

    def save(self, cert_id: CertId, der: bytes) -> None:
        """Write `der` as `cert_id`'s staple soon (a newer one handed in meanwhile wins)."""
        if self._store is None:
            return
        self._pending_writes[cert_id] = der
        if cert_id not in self._writers:
            self._writers[cert_id] = self._spawn(
                self._write(cert_id), f"ocsp-persist {cert_id.hex[-16:]}"
            )

    async def flush(self) -> None:
        """Wait until every staple handed to the store so far is written."""
        while self._writers:
            await asyncio.gather(*self._writers.values(), return_exceptions=True)

    async def _write(self, cert_id: CertId) -> None:
        store = self._store
        assert store is not None
        try:
            while (der := self._pending_writes.pop(cert_id, None)) is not None:
                try:
                    await asyncio.to_thread(store.save, cert_id, der)
                except (StoreError, OSError) as exc:
                    logger.warning("%s: staple not persisted: %s", self._name_of(cert_id), exc)
        finally:
            del self._writers[cert_id]
