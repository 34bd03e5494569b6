"""Deadlines for many connections on few loop timers: a timing wheel with coarse slots.

A loop timer per connection costs about 2 µs to arm and cancel on uvloop (a libuv handle
each), and most are cancelled: a connection usually ends long before its `timeout client`.
Here a deadline goes into the slot of its tick (`TICK_S` wide, rounded up, so it never fires
early and at most one tick late) and one loop timer per non-empty slot wakes the slot's
connections; arming and disarming are a set insert and a set discard. A woken connection
checks its real deadline (activity may have moved it) and arms again if it is not due yet,
the way HAProxy's timers are re-queued lazily.
"""

from __future__ import annotations

import asyncio
from typing import Final, Protocol

#: Slot width: how late a deadline may fire (timeouts are whole seconds in most configs).
TICK_S: Final = 0.05


class Expiring(Protocol):
    """What the wheel wakes when its slot is due."""

    def deadline_reached(self) -> None: ...


class DeadlineWheel:
    """The deadlines of one event loop's connections (see module doc)."""

    __slots__ = ("_loop", "_slots")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, set[Expiring]] = {}

    def add(self, item: Expiring, when: float) -> int:
        """Wake `item` at or up to one tick after `when` (loop time); the key for `remove`."""
        key = int(when / TICK_S) + 1
        slot = self._slots.get(key)
        if slot is None:
            self._slots[key] = {item}
            self._loop.call_at(key * TICK_S, self._expire, key)
        else:
            slot.add(item)
        return key

    def remove(self, item: Expiring, key: int) -> None:
        slot = self._slots.get(key)
        if slot is not None:
            slot.discard(item)

    @staticmethod
    def when(key: int) -> float:
        """When the slot `key` wakes its items (loop time)."""
        return key * TICK_S

    def __len__(self) -> int:
        """Items armed (tests, diagnostics)."""
        return sum(map(len, self._slots.values()))

    def _expire(self, key: int) -> None:
        slot = self._slots.pop(key, None)
        if not slot:
            return
        for item in slot:
            try:
                item.deadline_reached()
            except Exception as error:  # one connection's failure must not strand the others
                self._loop.call_exception_handler(
                    {"message": "a connection's deadline callback failed", "exception": error}
                )
