"""HostRateLimiter and FetchGate on a manual monotonic clock: no real waiting anywhere."""

from __future__ import annotations

import asyncio

import pytest

from staplegate.fetch.gate import FetchGate, HostRateLimiter, responder_key


class FakeTime:
    """A monotonic clock whose sleep moves the clock instead of waiting."""

    def __init__(self, *, sleep_moves_clock: bool = True) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.sleep_moves_clock = sleep_moves_clock

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.sleep_moves_clock:
            self.now += seconds
        await asyncio.sleep(0)


def limiter(time: FakeTime, *, rate: float = 2.0, burst: int = 3) -> HostRateLimiter:
    return HostRateLimiter(rate=rate, burst=burst, monotonic=time.monotonic, sleep=time.sleep)


def test_burst_goes_at_once_then_one_per_interval() -> None:
    time = FakeTime()
    bucket = limiter(time, rate=2.0, burst=3)
    assert [bucket.reserve("a:80") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve("a:80") == pytest.approx(0.5)
    assert bucket.reserve("a:80") == pytest.approx(1.0)  # queued behind the previous one


def test_tokens_refill_with_time_up_to_the_burst() -> None:
    time = FakeTime()
    bucket = limiter(time, rate=2.0, burst=3)
    for _ in range(3):
        bucket.reserve("a:80")
    time.now += 1.0  # two tokens back
    assert bucket.reserve("a:80") == 0.0
    assert bucket.reserve("a:80") == 0.0
    assert bucket.reserve("a:80") == pytest.approx(0.5)
    time.now += 3600  # long idle: never more than the burst
    assert [bucket.reserve("a:80") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve("a:80") > 0


def test_hosts_have_separate_buckets() -> None:
    time = FakeTime()
    bucket = limiter(time, rate=1.0, burst=1)
    assert bucket.reserve("a:80") == 0.0
    assert bucket.reserve("b:80") == 0.0
    assert bucket.reserve("a:80") == pytest.approx(1.0)


def test_concurrent_waiters_are_spaced_in_arrival_order() -> None:
    time = FakeTime(sleep_moves_clock=False)  # all five ask at the same instant
    bucket = limiter(time, rate=4.0, burst=1)
    order: list[int] = []

    async def request(n: int) -> None:
        await bucket.acquire("ocsp.test:80")
        order.append(n)

    async def scenario() -> None:
        async with asyncio.TaskGroup() as group:
            for n in range(5):
                group.create_task(request(n))

    asyncio.run(scenario())
    assert order == [0, 1, 2, 3, 4]
    # Reservations made at the same instant: 0, 0.25, 0.5, 0.75, 1.0 s after it.
    assert time.sleeps == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_cancelled_waiter_gives_its_token_back() -> None:
    time = FakeTime()
    entered = asyncio.Event()

    async def blocking_sleep(seconds: float) -> None:
        entered.set()
        await asyncio.Event().wait()  # until cancelled

    bucket = HostRateLimiter(rate=1.0, burst=1, monotonic=time.monotonic, sleep=blocking_sleep)

    async def scenario() -> None:
        assert await bucket.acquire("h:80") == 0.0
        waiter = asyncio.create_task(bucket.acquire("h:80"))
        await entered.wait()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(scenario())
    # Without the refund the next request would wait 2 s (behind the cancelled one).
    assert bucket.reserve("h:80") == pytest.approx(1.0)


def test_full_buckets_are_forgotten_when_many_hosts_were_seen() -> None:
    time = FakeTime()
    bucket = HostRateLimiter(
        rate=1.0, burst=1, monotonic=time.monotonic, sleep=time.sleep, max_idle_hosts=2
    )
    bucket.reserve("a:80")
    bucket.reserve("b:80")
    time.now += 10  # both refilled
    bucket.reserve("c:80")
    assert bucket.reserve("a:80") == 0.0  # a fresh bucket, burst available
    assert bucket.reserve("c:80") == pytest.approx(1.0)  # c was kept: it is in use


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_nonsense_limits_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match=r"rate|burst"):
        HostRateLimiter(rate=rate, burst=burst)


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://OCSP.Example.test/abc", "ocsp.example.test:80"),
        ("https://ocsp.example.test/abc", "ocsp.example.test:443"),
        ("http://ocsp.example.test:8080/%2Bx", "ocsp.example.test:8080"),
        ("http://[2001:db8::1]:81/", "2001:db8::1:81"),
    ],
)
def test_responder_key(url: str, key: str) -> None:
    assert responder_key(url) == key


def test_gate_caps_fetches_in_flight() -> None:
    time = FakeTime()
    gate = FetchGate(limiter(time, rate=1000.0, burst=100), max_concurrent=2)
    peak = 0
    release = asyncio.Event()
    started = 0

    async def fetch(n: int) -> None:
        nonlocal peak, started
        async with gate.slot(f"http://host{n}.test/"):
            started += 1
            peak = max(peak, gate.in_flight)
            await release.wait()

    async def scenario() -> None:
        tasks = [asyncio.create_task(fetch(n)) for n in range(5)]
        for _ in range(10):
            await asyncio.sleep(0)
        assert started == 2  # the other three wait for a slot
        release.set()
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    assert peak == 2
    assert started == 5
    assert gate.in_flight == 0


def test_gate_throttled_host_does_not_hold_a_slot() -> None:
    time = FakeTime()
    entered = asyncio.Event()

    async def blocking_sleep(seconds: float) -> None:
        entered.set()
        await asyncio.Event().wait()

    rate = HostRateLimiter(rate=1.0, burst=1, monotonic=time.monotonic, sleep=blocking_sleep)
    gate = FetchGate(rate, max_concurrent=1)

    async def scenario() -> None:
        async with gate.slot("http://slow.test/"):
            pass
        throttled = asyncio.create_task(_enter(gate, "http://slow.test/"))
        await entered.wait()  # second request to slow.test waits for its token...
        assert gate.in_flight == 0
        async with gate.slot("http://other.test/"):  # ...while another host proceeds
            assert gate.in_flight == 1
        throttled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await throttled

    asyncio.run(scenario())


async def _enter(gate: FetchGate, url: str) -> None:
    async with gate.slot(url):
        pass


def test_gate_needs_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="max_concurrent"):
        FetchGate(HostRateLimiter(rate=1.0, burst=1), max_concurrent=0)
