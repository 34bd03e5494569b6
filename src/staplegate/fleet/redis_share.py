"""The fleet's shared store on Redis: single-flight leases, fan-out of staples, fallback.

Theory of operation (docs/explanation/fleet.md). The updater asks `flight(cert_id, accept)`
before each fetch:

- if Redis already holds an answer `accept` likes (another instance fetched this round), it
  is the result — no request to the responder;
- else the instance tries the lease (`SET NX PX`); holding it, it fetches, `publish`es the
  staple its machine verified and installed (`SET` with a TTL until nextUpdate, then
  `PUBLISH` the CertId), and releases the lease (compare-and-delete); a task renews the lease
  while the fetch runs;
- else another instance holds it: wait for that one's staple (pub/sub message, or a look at
  the key every `poll` seconds) up to `wait` seconds (the fetch timeout). A lease whose holder
  died expires after `lease_ttl`, and the next look takes it; when the wait runs out, fetch
  on our own.

A listener task follows the channel and hands each announced staple to `on_staple` (the
updater verifies it like a fetched answer and installs it only when it is good and newer);
every `reconcile` seconds it reads all managed keys (MGET) for messages it missed.

Redis is never required. Any Redis error or slow answer (each operation bounded by
`op_timeout`) puts the store `down`: one WARNING, then every flight is an own fetch
(counted in `fallbacks`) and staples stay in the file state directory as without a fleet.
The listener pings every `retry` seconds; once Redis answers, one NOTICE, and the instance
rejoins: staples in Redis are handed to `on_staple`, its own newer ones are written (not
announced: an announcement tells a waiting peer "just fetched").
Nothing is ever withdrawn because of Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import logging
import os
import secrets
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from staplegate.clock import Clock
from staplegate.fleet.protocol import (
    CHANNEL,
    NAMESPACE,
    RATE_SCRIPT,
    RELEASE_SCRIPT,
    RENEW_SCRIPT,
    StapleTimes,
    announcement,
    lease_key,
    parse_message,
    rate_key,
    staple_key,
    staple_times,
    ttl_ms,
)
from staplegate.ocsp.certid import CertId

logger = logging.getLogger("staplegate.fleet")

PASSWORD_VARIABLE = "STAPLEGATE_REDIS_PASSWORD"
#: Connections to Redis per instance at most (one of them the pub/sub listener's).
MAX_CONNECTIONS = 32
#: Keys read per MGET while reconciling (50,000 certificates: 50 round trips).
RECONCILE_BATCH = 1000

StapleCallback = Callable[[CertId, bytes], None]
HeldCallback = Callable[[], Mapping[CertId, tuple[bytes, dt.datetime, dt.datetime]]]
"""CertId -> (DER, thisUpdate, nextUpdate) of every staple this instance holds."""


class PasswordError(Exception):
    """The password file cannot be read (the message names it, never its content)."""


def read_password(path: str | None, environ: Mapping[str, str]) -> str | None:
    """The Redis password: `path`'s first line, else $STAPLEGATE_REDIS_PASSWORD, else None.

    A file others may read gets a WARNING: it is a secret.
    """
    if path is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                mode = os.fstat(handle.fileno()).st_mode
                text = handle.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise PasswordError(f"cannot read the Redis password file {path}: {reason}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            logger.warning(
                "Redis password file %s can be read by group or others (mode %o); chmod 600 it",
                path,
                stat.S_IMODE(mode),
            )
        return text or None
    return environ.get(PASSWORD_VARIABLE) or None


def display_url(url: str) -> str:
    """The URL as logs show it: scheme, host, port and database, never a user or password."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path or ''}"


@dataclass
class SharedStoreStats:
    """What the runtime API and the metrics show."""

    up: bool = False
    leases_held: int = 0
    fallbacks: int = 0
    """Fetches made on our own because Redis was down or a lease wait ran out."""
    outages: int = 0
    peer_staples: int = 0
    """Flights answered by another instance's staple (no request of ours)."""
    published: int = 0


@dataclass
class Flight:
    """One fetch's place in the fleet: the peer's DER that answers it, or our lease."""

    peer_der: bytes | None = None
    token: str | None = None
    """Our lease token while we hold it (publish needs it held)."""


class StoreDown(Exception):
    """A Redis operation failed or was too slow; the store is now down."""


class RedisShare:
    """The shared store; see the module docstring. Build, `start`, then `flight` per fetch."""

    def __init__(
        self,
        url: str,
        *,
        password: str | None,
        clock: Clock,
        op_timeout: float = 1.0,
        lease_ttl: float = 10.0,
        poll: float | None = None,
        retry: float = 2.0,
        reconcile: float = 60.0,
    ) -> None:
        self.url = url
        self.display_url = display_url(url)
        self._clock = clock
        self._op_timeout = op_timeout
        self._lease_ms = int(lease_ttl * 1000)
        # announcements wake a waiting flight at once; the poll only finds a dead holder's
        # expired lease (or a lost message), so a few looks per lease lifetime suffice
        self._poll = poll if poll is not None else lease_ttl / 4
        self._retry = retry
        self._reconcile_every = reconcile
        # A bounded pool that makes an operation wait for a free connection (within its own
        # timeout): a thousand certificates due at once must not open a thousand
        # connections, nor fail with "Too many connections" (measured: bench/fleet.py).
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=op_timeout * 2,
            password=password,
            socket_timeout=op_timeout,
            socket_connect_timeout=op_timeout,
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self._client: aioredis.Redis = aioredis.Redis(connection_pool=pool)
        self._renew = self._client.register_script(RENEW_SCRIPT)
        self._release = self._client.register_script(RELEASE_SCRIPT)
        self._rate = self._client.register_script(RATE_SCRIPT)
        self._pubsub: Any = None
        self._managed: set[CertId] = set()
        self._by_hex: dict[str, CertId] = {}
        self._notified: dict[CertId, asyncio.Event] = {}
        self._on_staple: StapleCallback = lambda cert_id, der: None
        self._held: HeldCallback = dict
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._turns = asyncio.Semaphore(MAX_CONNECTIONS - 1)  # one connection: the listener
        self._origin = secrets.token_hex(8)  # this instance, in its announcements
        self.stats = SharedStoreStats()
        self._ever_up = False

    @property
    def up(self) -> bool:
        return self.stats.up

    def manage(self, cert_ids: Iterable[CertId]) -> None:
        """The certificates this instance serves (at start and on every reload)."""
        self._managed = set(cert_ids)
        self._by_hex = {cert_id.hex: cert_id for cert_id in self._managed}

    async def start(
        self, cert_ids: Iterable[CertId], *, on_staple: StapleCallback, held: HeldCallback
    ) -> dict[CertId, bytes]:
        """Connect (bounded), read the shared staples of `cert_ids`, start the listener.

        Returns what Redis holds for them (candidates, to be verified); {} when Redis is not
        reachable — the instance starts in fallback mode and joins when Redis answers.
        """
        self.manage(cert_ids)
        self._on_staple = on_staple
        self._held = held
        found: dict[CertId, bytes] = {}
        try:
            await self._op(self._client.ping())
            await self._subscribe()
            found = await self._read_all()
            self._mark_up(rejoined=False)
        except StoreDown:
            pass  # _op logged it
        self._task = asyncio.get_running_loop().create_task(self._listen(), name="fleet-listen")
        return found

    async def close(self) -> None:
        """Stop listening and close the connections (bounded: Redis may be gone)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()  # redis-py's pubsub read may swallow one cancellation:
            await asyncio.wait({self._task}, timeout=self._op_timeout * 2)  # bounded
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._op_timeout):
                if self._pubsub is not None:
                    await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._op_timeout):
                await self._client.aclose(close_connection_pool=True)

    # --- single flight ---

    @contextlib.asynccontextmanager
    async def flight(
        self, cert_id: CertId, accept: Callable[[bytes, bool], bool], *, wait: float
    ) -> AsyncIterator[Flight]:
        """Decide who answers this fetch: a peer's staple (`peer_der`) or us (no peer_der;
        `token` set when we hold the lease). The lease is renewed inside and released after.

        `accept(der, announced)` judges a shared DER: `announced` is True once a peer
        announced a staple for this certificate during this flight.
        """
        flight = Flight()
        if self.up:
            with contextlib.suppress(StoreDown):
                await self._take_or_wait(cert_id, accept, wait, flight)
        if flight.peer_der is None and flight.token is None:
            self.stats.fallbacks += 1
        renewing = None
        done = asyncio.Event()
        if flight.token is not None:
            self.stats.leases_held += 1
            renewing = asyncio.get_running_loop().create_task(
                self._keep_lease(cert_id, flight.token, done), name=f"fleet-lease {cert_id.hex}"
            )
        try:
            yield flight
        finally:
            self._notified.pop(cert_id, None)
            if renewing is not None and flight.token is not None:
                self.stats.leases_held -= 1
                # A flag, not only cancel(): redis-py can swallow a cancellation in the middle
                # of a command, and a renewer that kept running would hold the lease forever.
                done.set()
                renewing.cancel()
                await asyncio.wait({renewing}, timeout=self._op_timeout * 2)
                if self.up:
                    with contextlib.suppress(StoreDown):
                        await self._op(
                            self._release(keys=[lease_key(cert_id)], args=[flight.token])
                        )

    async def _take_or_wait(
        self, cert_id: CertId, accept: Callable[[bytes, bool], bool], wait: float, flight: Flight
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        # set by the listener when a peer announces this certificate's staple: from then on
        # the shared DER is this round's answer even if it equals ours (a caching responder)
        announced = self._notified[cert_id] = asyncio.Event()
        token = secrets.token_hex(16)
        while True:
            der = await self._op(self._client.get(staple_key(cert_id)))
            if isinstance(der, bytes) and accept(der, announced.is_set()):
                flight.peer_der = der
                self.stats.peer_staples += 1
                return
            taken = await self._op(
                self._client.set(lease_key(cert_id), token, nx=True, px=self._lease_ms)
            )
            if taken:
                # A holder may have published and released between our GET and our SET:
                # its announcement tells; then its staple answers and our lease goes back.
                if announced.is_set():
                    der = await self._op(self._client.get(staple_key(cert_id)))
                    if isinstance(der, bytes) and accept(der, True):
                        await self._op(self._release(keys=[lease_key(cert_id)], args=[token]))
                        flight.peer_der = der
                        self.stats.peer_staples += 1
                        return
                flight.token = token
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                logger.warning(
                    "shared store: no staple from the instance holding %s's lease within "
                    "%g s; fetching on our own",
                    cert_id.hex,
                    wait,
                )
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self._poll, remaining)):
                    await announced.wait()

    async def _keep_lease(self, cert_id: CertId, token: str, done: asyncio.Event) -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._lease_ms / 3000):
                    await done.wait()
            if done.is_set():
                return
            with contextlib.suppress(StoreDown):
                await self._op(self._renew(keys=[lease_key(cert_id)], args=[token, self._lease_ms]))

    async def rate_token(self, host: str, *, rate: float, burst: int) -> None:
        """Take a token of the fleet's bucket for `host` (`ocsp-update.rate-limit` shared by
        every instance) and wait for its time. Without Redis, return at once: each
        instance's own bucket (fetch/gate.py) still applies."""
        if not self.up:
            return
        try:
            wait = float(await self._op(self._rate(keys=[rate_key(host)], args=[rate, burst])))
        except (StoreDown, ValueError):
            return
        if wait > 0:
            await asyncio.sleep(wait)  # our turn in the fleet's queue for this responder

    async def publish(self, cert_id: CertId, der: bytes, next_update: dt.datetime) -> None:
        """Share a staple this instance verified and installed (SET with TTL, PUBLISH)."""
        if not self.up:
            return
        ttl = ttl_ms(next_update, self._clock.now())
        if ttl is None:
            return
        with contextlib.suppress(StoreDown):
            await self._op(self._client.set(staple_key(cert_id), der, px=ttl))
            await self._op(self._client.publish(CHANNEL, announcement(cert_id, self._origin)))
            self.stats.published += 1

    # --- fan-out: the listener, reconcile and rejoin ---

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        next_reconcile = loop.time() + self._reconcile_every
        while not self._closing:
            if not self.up:
                await asyncio.sleep(self._retry)
                try:
                    await self._op(self._client.ping(), quiet=True)
                    await self._subscribe()
                    await self._rejoin()
                except StoreDown:
                    continue
                self._mark_up(rejoined=True)
                next_reconcile = loop.time() + self._reconcile_every
                continue
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=min(1.0, self._reconcile_every)
                )
                if message is not None:
                    await self._announced(message.get("data"))
                if loop.time() >= next_reconcile:
                    next_reconcile = loop.time() + self._reconcile_every
                    for cert_id, der in (await self._read_all()).items():
                        self._hand_over(cert_id, der)
            except StoreDown:
                continue
            except (RedisError, OSError) as error:
                self._mark_down(error)

    async def _announced(self, data: object) -> None:
        parsed = parse_message(data)
        if parsed is None or parsed[1] == self._origin:
            return  # garbage, or our own announcement (read late: not a peer's news)
        cert_id = self._by_hex.get(parsed[0])
        if cert_id is None:
            return  # not ours (another fleet member's certificate) or garbage
        event = self._notified.get(cert_id)
        if event is not None:
            event.set()  # the waiting flight reads the staple itself
            return
        der = await self._op(self._client.get(staple_key(cert_id)))
        if isinstance(der, bytes):
            self._hand_over(cert_id, der)

    def _hand_over(self, cert_id: CertId, der: bytes) -> None:
        try:
            self._on_staple(cert_id, der)
        except Exception:  # the updater's bug must not stop the listener
            logger.exception("shared store: handling the staple for %s failed", cert_id.hex)

    async def _read_all(self) -> dict[CertId, bytes]:
        found: dict[CertId, bytes] = {}
        ids = sorted(self._managed, key=lambda c: c.hex)
        for start in range(0, len(ids), RECONCILE_BATCH):
            batch = ids[start : start + RECONCILE_BATCH]
            values = await self._op(self._client.mget([staple_key(c) for c in batch]))
            for cert_id, der in zip(batch, values, strict=True):
                if isinstance(der, bytes):
                    found[cert_id] = der
        return found

    async def _rejoin(self) -> None:
        """Take newer staples from Redis, publish ours where Redis has none or older ones."""
        # a Redis that answers PING but refuses writes (OOM, a read-only replica after a
        # failover) is still down: probe a write, or we would flap between up and down
        await self._op(self._client.set(f"{NAMESPACE}:probe", self._origin, px=1000), quiet=True)
        shared = await self._read_all()
        for cert_id, der in shared.items():
            self._hand_over(cert_id, der)
        now = self._clock.now()
        for cert_id, (der, this_update, next_update) in self._held().items():
            if cert_id not in self._managed:
                continue
            theirs: StapleTimes | None = (
                staple_times(shared[cert_id]) if cert_id in shared else None
            )
            if theirs is not None and theirs.this_update >= this_update:
                continue
            ttl = ttl_ms(next_update, now)
            if ttl is not None:
                # Not announced: an announcement means "fetched just now" to a peer waiting
                # on its lease; peers take these at their next reconcile.
                await self._op(self._client.set(staple_key(cert_id), der, px=ttl))
                self.stats.published += 1

    async def _subscribe(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        self._pubsub = self._client.pubsub()
        await self._op(self._pubsub.subscribe(CHANNEL))

    # --- state ---

    async def _op(self, operation: Awaitable[Any], *, quiet: bool = False) -> Any:
        """One Redis operation, bounded; any failure marks the store down (StoreDown).

        At most MAX_CONNECTIONS run at once: waiting for a turn (a thousand certificates due
        together) is not Redis being slow, so the timeout starts with the turn.
        """
        try:
            await self._turns.acquire()
        except BaseException:
            if inspect.iscoroutine(operation):
                operation.close()  # never started: no "coroutine was never awaited"
            raise
        try:
            async with asyncio.timeout(self._op_timeout * 2):
                return await operation
        except (RedisError, OSError, TimeoutError) as error:
            if not quiet:
                self._mark_down(error)
            raise StoreDown(str(error)) from None
        finally:
            self._turns.release()

    def _mark_down(self, error: BaseException) -> None:
        was_up = self.stats.up
        self.stats.up = False
        if was_up or (not self._ever_up and self.stats.outages == 0):
            self.stats.outages += 1
            reason = str(error) or type(error).__name__
            logger.warning(
                "shared store %s unavailable (%s): fetching on our own with the state "
                "directory; retrying every %g s",
                self.display_url,
                reason,
                self._retry,
            )

    def _mark_up(self, *, rejoined: bool) -> None:
        self.stats.up = True
        self._ever_up = True
        if rejoined:
            logger.log(25, "shared store %s reachable again: rejoined the fleet", self.display_url)
        else:
            logger.log(25, "shared store %s connected", self.display_url)


def shared_store(
    url: str | None, password_file: str | None, *, clock: Clock, environ: Mapping[str, str]
) -> RedisShare | None:
    """The fleet's store for `ocsp-update.shared-store URL` (None without one), its password
    from `ocsp-update.shared-store-password-file` or the environment; PasswordError when the
    file cannot be read. Used by the main command and the sidecar alike."""
    if url is None:
        return None
    return RedisShare(url, password=read_password(password_file, environ), clock=clock)
