"""The deadline wheel on a real event loop: never early, at most one tick late, removable."""

from __future__ import annotations

import asyncio

from staplegate.proxy.deadlines import TICK_S, DeadlineWheel


class Recorder:
    """Logs when it woke; sets `all_woke` once the log holds `expected` wake-ups."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        log: list[tuple[str, float]],
        name: str,
        *,
        expected: int,
        all_woke: asyncio.Event,
    ):
        self.loop = loop
        self.log = log
        self.name = name
        self.expected = expected
        self.all_woke = all_woke

    def deadline_reached(self) -> None:
        self.log.append((self.name, self.loop.time()))
        if len(self.log) >= self.expected:
            self.all_woke.set()


class Failing:
    def deadline_reached(self) -> None:
        raise RuntimeError("boom")


def test_items_wake_in_their_tick_and_removed_ones_never() -> None:
    async def run() -> tuple[list[tuple[str, float]], dict[str, float], list[object]]:
        loop = asyncio.get_running_loop()
        errors: list[object] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context["exception"]))
        wheel = DeadlineWheel(loop)
        log: list[tuple[str, float]] = []
        # a tick boundary at least one tick ahead: "a" and "b" then share a slot for certain
        # (now + 0.06 and now + 0.061 straddled a boundary in 2 % of runs)
        start = (int(loop.time() / TICK_S) + 2) * TICK_S
        due = {"a": start + 0.01, "b": start + 0.011, "c": start + 0.1}
        all_woke = asyncio.Event()
        items = {
            name: Recorder(loop, log, name, expected=len(due), all_woke=all_woke)
            for name in (*due, "gone")
        }
        keys = {name: wheel.add(items[name], when) for name, when in due.items()}
        assert keys["a"] == keys["b"]  # one slot, one loop timer
        wheel.add(Failing(), start + 0.01)  # in the same slot: must not stop the others
        gone = wheel.add(items["gone"], start + 0.05)
        wheel.remove(items["gone"], gone)
        assert len(wheel) == 4
        # "c" is due last, after the removed item's slot: once it woke, every slot has run
        async with asyncio.timeout(10):
            await all_woke.wait()
        assert len(wheel) == 0
        return log, due, errors

    log, due, errors = asyncio.run(run())
    assert sorted(name for name, _ in log) == ["a", "b", "c"]
    for name, woke in log:
        assert woke >= due[name]  # never early
        # one tick late by design, plus whatever a busy machine adds to any loop timer
        assert woke <= due[name] + TICK_S + 1.0
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)


def test_when_is_the_slot_time() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        wheel = DeadlineWheel(loop)
        when = loop.time() + 1000.0
        item = Failing()
        key = wheel.add(item, when)
        assert when < wheel.when(key) <= when + TICK_S
        wheel.remove(item, key)

    asyncio.run(run())
