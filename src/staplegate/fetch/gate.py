"""Keep the updater polite: a request rate per responder host and a global concurrency cap.

Theory of operation. Each responder host has a token bucket (`rate` tokens per second, at most
`burst` stored). A caller *reserves* a token at once, even when the bucket is empty: the
bucket goes negative and the caller learns how long to wait. Waiters are therefore served in
arrival order without polling, and a reservation cancelled while waiting is refunded. Time
comes from an injected monotonic function and the waiting from an injected sleep, so the unit
tests run on a manual clock.

After a reload or a restart with an empty state directory many certificates want a staple at once;
HAProxy sends those requests back to back, one in flight, in order of their refresh times. Here they
run concurrently (bounded by `FetchGate`) and each responder still sees at most `burst` requests at
once and `rate` per second after that.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from yarl import URL

from staplegate.clock import SystemClock

_DEFAULT_PORTS = {"http": 80, "https": 443}


def responder_key(url: str) -> str:
    """The rate-limit key of an OCSP URL: lowercase `host:port`, default port filled in."""
    parsed = URL(url, encoded=True)
    host = (parsed.raw_host or "").lower()
    port = parsed.explicit_port or _DEFAULT_PORTS.get(parsed.scheme, 0)
    return f"{host}:{port}"


@dataclass
class _Bucket:
    tokens: float
    updated: float


class HostRateLimiter:
    """A token bucket per responder host; `await acquire(host)` before each request."""

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        monotonic: Callable[[], float] = SystemClock.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_idle_hosts: int = 1024,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be a positive number of requests per second")
        if burst < 1:
            raise ValueError("burst must allow at least one request")
        self._rate = rate
        self._burst = float(burst)
        self._monotonic = monotonic
        self._sleep = sleep
        self._max_idle_hosts = max_idle_hosts
        self._buckets: dict[str, _Bucket] = {}

    def _refill(self, host: str, now: float) -> _Bucket:
        bucket = self._buckets.get(host)
        if bucket is None:
            if len(self._buckets) >= self._max_idle_hosts:
                self._forget_full_buckets(now)
            bucket = self._buckets[host] = _Bucket(tokens=self._burst, updated=now)
            return bucket
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
        bucket.updated = now
        return bucket

    def _forget_full_buckets(self, now: float) -> None:
        """Drop buckets that have refilled completely: they hold no state worth keeping."""
        for host in list(self._buckets):
            bucket = self._buckets[host]
            if bucket.tokens + (now - bucket.updated) * self._rate >= self._burst:
                del self._buckets[host]

    def reserve(self, host: str) -> float:
        """Take a token for `host` now; return the seconds to wait before using it (0 = go)."""
        now = self._monotonic()
        bucket = self._refill(host, now)
        bucket.tokens -= 1.0
        if bucket.tokens >= 0:
            return 0.0
        return -bucket.tokens / self._rate

    def refund(self, host: str) -> None:
        """Give back a reserved token that was not used (the request was cancelled)."""
        bucket = self._refill(host, self._monotonic())
        bucket.tokens = min(self._burst, bucket.tokens + 1.0)

    async def acquire(self, host: str) -> float:
        """Wait until a request to `host` is allowed; return how long that took."""
        delay = self.reserve(host)
        if delay > 0:
            try:
                await self._sleep(delay)
            except asyncio.CancelledError:
                self.refund(host)
                raise
        return delay


class FetchGate:
    """Both limits at once: a per-host rate, then a global cap on fetches in flight."""

    def __init__(self, limiter: HostRateLimiter, *, max_concurrent: int) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._limiter = limiter
        self._slots = asyncio.Semaphore(max_concurrent)
        self._max_concurrent = max_concurrent
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Fetches currently holding a slot (for metrics and tests)."""
        return self._in_flight

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        """Hold a slot for one fetch to `url`.

        The rate token comes first so that a host being throttled never occupies one of the
        global slots while it waits.
        """
        await self._limiter.acquire(responder_key(url))
        async with self._slots:
            self._in_flight += 1
            try:
                yield
            finally:
                self._in_flight -= 1
