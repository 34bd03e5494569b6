"""Drive the OCSP engine: timers, fetch tasks and the loop over every certificate's machine.

Theory of operation. The sans-IO `CertificateMachine` (ocsp/machine.py) decides everything;
this module performs what it asks, mitmproxy-style:

- One machine per CertId. Two configured files holding the same certificate share it (spec
  §4.6): the first file's path is shown in logs, and auto-update is on if any file asks for it.
- `run()` loads the stored staples (state directory, off the loop) and every entry's sidecar
  `.ocsp`, hands them to each machine as `Start.stored` (the machine verifies each candidate;
  those `use_prechecked` gave, verified beforehand by updater/precheck.py, it only re-checks
  against the time), publishes the first staple table, sets `started`, then schedules.
- Scheduling is a heap of `(when, seq, cert_id)` timers from `WakeAt` actions; a newer
  WakeAt for a certificate supersedes the older one (the seq no longer matches). The loop
  sleeps until the earliest `when`, computed from `clock.now()` (so an offset clock works),
  never longer than `MAX_SLEEP` so a wall-clock jump is noticed, or until `wake()` /
  a runtime request / a new timer wakes it. Due machines get a `Tick`.
- A `Fetch` runs as its own task under a `FetchGate` (global concurrency cap + a token bucket
  per responder host), bounded by the HTTP client's total timeout, so one hung responder costs
  one task and never delays another certificate (HAProxy issue #3498). Its result comes back
  as `FetchSucceeded`/`FetchFailed` on the loop; everything runs on one loop, so no locks.
- `Install`/`Withdraw` edit the table `{CertId: DER}`, and `on_staples` receives a fresh,
  read-only copy of the whole table after each change (the master sends each worker only
  what changed since its last message, which the worker applies to its table in place).
- `Persist` hands the staple to the `StapleWriter` (updater/persist.py), which writes off the
  loop, newest first.
- `Log` goes to the `staplegate.ocsp` logger; `<OCSP-UPDATE>` lines at `NOTICE` (25), as
  HAProxy 3.x logs them at notice; revocations at `ALERT` (55). Records carry `ocsp_path`
  and `ocsp_cert_id` (hex) attributes for handlers that want them.

Every task is owned (a tracked set); `stop()` or cancelling `run()` cancels the fetches,
lets pending store writes finish, answers pending `update_now` callers and closes the client.
What the runtime API calls (`snapshot`, `find`, `update_now`, `set_response`) is in
updater/service.py, the `OcspUpdater` built on this driver.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
import logging
import random
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from cryptography import x509

from staplegate.clock import Clock, SystemClock
from staplegate.fetch.client import (
    USER_AGENT,
    FetchFailure,
    FetchResult,
    FetchSettings,
    OcspHttpClient,
)
from staplegate.fetch.gate import FetchGate, HostRateLimiter, responder_key
from staplegate.fleet.redis_share import RedisShare
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.machine import (
    Action,
    CertificateMachine,
    CertificateReplaced,
    Event,
    Fetch,
    FetchFailed,
    FetchFailureKind,
    FetchSucceeded,
    Install,
    Log,
    LogLevel,
    Persist,
    RevocationDetected,
    SharedStaple,
    Start,
    State,
    Tick,
    WakeAt,
    Withdraw,
)
from staplegate.ocsp.schedule import UpdateSettings, fetched_at
from staplegate.ocsp.verify import VerificationError, VerifiedStaple, verify_response
from staplegate.store.base import StapleStore
from staplegate.updater.persist import StapleWriter
from staplegate.updater.results import UpdateOutcome, UpdateResult, UpdaterNotRunning
from staplegate.updater.revoked_hook import Revocation
from staplegate.updater.timing import FetchDurations

#: syslog "notice": HAProxy 3.x logs `<OCSP-UPDATE>` lines at this level.
NOTICE = 25
#: syslog "alert", above CRITICAL: a certificate we serve is revoked.
ALERT = 55
logging.addLevelName(NOTICE, "NOTICE")
logging.addLevelName(ALERT, "ALERT")

logger = logging.getLogger("staplegate.ocsp")

#: How long a fetch waits for the instance holding its lease (a fleet member fetching the same
#: certificate) before fetching on its own: this many fetch timeouts, at least LEASE_WAIT_MIN_S.
LEASE_WAIT_FETCHES = 6
LEASE_WAIT_MIN_S = 60.0
#: Longest sleep between looks at the wall clock (timers are wall-clock times).
MAX_SLEEP = 30.0
#: When handling a certificate's timer raised (a bug), its next look comes this much later;
#: one certificate's bug never stops the loop that serves every other.
RETRY_AFTER_INTERNAL_ERROR_S = 60.0

_LEVELS: dict[LogLevel, int] = {
    LogLevel.INFO: logging.INFO,
    LogLevel.NOTICE: NOTICE,
    LogLevel.WARNING: logging.WARNING,
    LogLevel.ALERT: ALERT,
}

# fetch's fine-grained reasons -> the machine's kinds (see FetchFailureKind's docstring).
_FAILURE_KINDS: dict[FetchFailure, FetchFailureKind] = {
    FetchFailure.INVALID_URL: FetchFailureKind.INTERNAL,
    FetchFailure.DNS_FAILED: FetchFailureKind.CONNECT,
    FetchFailure.CONNECT_FAILED: FetchFailureKind.CONNECT,
    FetchFailure.TLS_FAILED: FetchFailureKind.CONNECT,
    FetchFailure.PROXY_FAILED: FetchFailureKind.CONNECT,
    FetchFailure.CONNECTION_LOST: FetchFailureKind.CONNECT,
    FetchFailure.PROTOCOL_ERROR: FetchFailureKind.CONNECT,
    FetchFailure.TIMEOUT: FetchFailureKind.TIMEOUT,
    FetchFailure.HTTP_STATUS: FetchFailureKind.HTTP_STATUS,
    FetchFailure.WRONG_CONTENT_TYPE: FetchFailureKind.CONTENT_TYPE,
    FetchFailure.BODY_TOO_LARGE: FetchFailureKind.TOO_LARGE,
}


@dataclass(frozen=True)
class UpdaterEntry:
    """One configured certificate the updater manages (one per certificate file)."""

    certificate: x509.Certificate
    issuer: x509.Certificate
    path: str
    """The name shown in logs and the runtime API (HAProxy: the store's file name)."""
    uri: str | None
    """The OCSP responder URI (AIA), or None when the certificate has none."""
    auto_update: bool = True
    sidecar_ocsp: bytes | None = field(default=None, repr=False)
    """The raw bytes of the certificate's `.ocsp` sidecar, if any (verified before use)."""
    fallback_uris: tuple[str, ...] = ()
    """Further responders to try, in order, when `uri` fails (the AIA's other OCSP URLs)."""


def _prechecked(
    der: bytes, cert_id: CertId, prechecked: Mapping[bytes, VerifiedStaple]
) -> bytes | VerifiedStaple:
    """The staple verified beforehand for `der` when it was verified for this certificate,
    else the DER itself (the machine verifies it)."""
    staple = prechecked.get(der)
    return staple if staple is not None and staple.cert_id == cert_id else der


def fetch_event(
    result: FetchResult, now: dt.datetime, *, answered_by: str | None = None
) -> FetchSucceeded | FetchFailed:
    """Translate the HTTP client's result into the machine's event (FetchFailureKind docs)."""
    if result.ok and result.body is not None:
        fresh_until = (
            now + dt.timedelta(seconds=min(result.fresh_for, 10 * 365 * 86400))
            if result.fresh_for is not None
            else None
        )
        return FetchSucceeded(now, result.body, fresh_until, answered_by)
    if result.failure is FetchFailure.EMPTY_BODY:
        return FetchSucceeded(now, b"", answered_by=answered_by)  # unparsable: status 4
    if result.failure is None:
        return FetchFailed(now, FetchFailureKind.INTERNAL, result.detail)
    return FetchFailed(now, _FAILURE_KINDS[result.failure], result.detail)


@dataclass
class _Managed:
    """A machine and the configured entries that share it."""

    machine: CertificateMachine
    entries: list[UpdaterEntry]
    revocations: int = 0


StaplesCallback = Callable[[Mapping[CertId, bytes]], None]
RevocationCallback = Callable[[Revocation], None]


class UpdaterDriver:
    """Keeps a verified staple for every managed certificate; see the module docstring.

    `OcspUpdater` (updater/service.py) adds what the runtime API calls; build that one.
    """

    def __init__(
        self,
        entries: Sequence[UpdaterEntry],
        *,
        update_settings: UpdateSettings,
        fetch_settings: FetchSettings,
        on_staples: StaplesCallback,
        store: StapleStore | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        # 10,000 certificates on one responder stapled from cold in ~40 s on 2 cores
        # (bench/ocsp_scale.py); steady-state refreshes are spread by jitter far below this.
        max_concurrent: int = 16,
        host_rate: float = 250.0,
        host_burst: int = 50,
        on_revocation: RevocationCallback | None = None,
        shared: RedisShare | None = None,
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._writer = StapleWriter(
            store, name_of=lambda cert_id: self._managed[cert_id].machine.path, spawn=self._spawn
        )
        self._on_staples = on_staples
        self._on_revocation = on_revocation
        self._client = OcspHttpClient(fetch_settings)
        self._fetch_timeout = fetch_settings.total_timeout
        self._gate = FetchGate(
            HostRateLimiter(rate=host_rate, burst=host_burst), max_concurrent=max_concurrent
        )
        self._host_rate, self._host_burst = host_rate, host_burst
        self._settings = update_settings
        self._shared = shared
        self._refused_shared: dict[CertId, bytes] = {}  # the last DER refused, per certificate
        self._prechecked: Mapping[bytes, VerifiedStaple] = {}
        self._managed: dict[CertId, _Managed] = {}
        self._aliases: dict[CertId, CertId] = {}  # SHA-1 and SHA-256 CertIds -> table key
        for cert_id, group in _group(entries).items():
            self._add(cert_id, group)

        self._table: dict[CertId, bytes] = {}
        self._timers: list[tuple[dt.datetime, int, CertId]] = []
        self._timer_seq: dict[CertId, int] = {}
        self._seq = itertools.count()
        self._waiters: dict[CertId, list[asyncio.Future[UpdateOutcome]]] = {}
        self._fetches: set[asyncio.Task[None]] = set()
        #: staplegate_ocsp_fetch_duration_seconds
        self.fetch_durations_histogram = FetchDurations()
        self._wakeup: asyncio.Event | None = None
        self._running = False
        self._stopping = False

    def _new_machine(self, group: Sequence[UpdaterEntry]) -> CertificateMachine:
        """One machine for every entry holding the same certificate (HAProxy keys
        its OCSP entry by CertId: every file holding the certificate shares one entry and one
        request per cycle).

        The first file names it; the URI is the first one given; auto-update is on when any
        file asks for it.
        """
        first = group[0]
        return CertificateMachine(
            certificate=first.certificate,
            issuer=first.issuer,
            path=first.path,
            uri=next((e.uri for e in group if e.uri is not None), None),
            settings=self._settings,
            rng=self._rng,
            auto_update=any(e.auto_update for e in group),
            user_agent=USER_AGENT,
            fallback_uris=next((e.fallback_uris for e in group if e.uri is not None), ()),
        )

    def _add(self, cert_id: CertId, group: list[UpdaterEntry]) -> _Managed:
        managed = _Managed(self._new_machine(group), group)
        self._managed[cert_id] = managed
        self._aliases[cert_id] = cert_id
        first = group[0]
        self._aliases[CertId.for_certificate(first.certificate, first.issuer, "sha256")] = cert_id
        return managed

    def use_prechecked(self, staples: Mapping[bytes, VerifiedStaple]) -> None:
        """Start `run()` with these staples, verified ahead of time by updater/precheck.py,
        keyed by DER: a stored candidate found here starts its machine as a `VerifiedStaple`
        (only its time checks run again). Call before `run()`; used once."""
        self._prechecked = staples

    # --- the loop ---

    async def run(self, *, started: asyncio.Event | None = None) -> None:
        """Load stored staples, publish them, set `started`, then keep staples fresh."""
        if self._wakeup is not None:
            raise RuntimeError("OcspUpdater.run() runs once; build a new updater to run again")
        # stop() before this point (the task had not started yet) is honoured: the stored
        # staples are still published, then run() returns.
        self._running = True
        self._wakeup = asyncio.Event()
        try:
            loop = asyncio.get_running_loop()
            began = loop.time()
            stored = await self._writer.load()
            shared = await self._start_shared()
            loaded = loop.time()
            now = self._clock.now()
            prechecked, self._prechecked = self._prechecked, {}
            taken = 0
            for cert_id, managed in self._managed.items():
                candidates = [e.sidecar_ocsp for e in managed.entries if e.sidecar_ocsp]
                if cert_id in stored:
                    candidates.append(stored[cert_id])
                if cert_id in shared:
                    candidates.append(shared[cert_id])
                checked = [_prechecked(der, cert_id, prechecked) for der in candidates]
                taken += sum(isinstance(c, VerifiedStaple) for c in checked)
                self._start(managed, now, checked)
            self._publish()
            logger.debug(
                "stored staples: %d read in %.2f s; %d certificates started in %.2f s "
                "(%d staples verified beforehand), %d stapled",
                len(stored) + len(shared),
                loaded - began,
                len(self._managed),
                loop.time() - loaded,
                taken,
                len(self._table),
            )
            if started is not None:
                started.set()
            while not self._stopping:
                self._wakeup.clear()
                self._tick_due()
                await asyncio.sleep(0)  # let fetch results in even when timers keep coming
                if self._stopping or self._wakeup.is_set():
                    continue
                try:
                    async with asyncio.timeout(self._sleep_seconds()):
                        await self._wakeup.wait()
                except TimeoutError:
                    pass
        finally:
            await self._shutdown()

    async def reconfigure(self, entries: Sequence[UpdaterEntry]) -> None:
        """Manage `entries` from now on (a reload): keep what is unchanged, staples included.

        A certificate still configured with the same URI and auto-update keeps its machine
        (staple, schedule, counters; only its paths follow the new files). One whose URI or
        auto-update changed gets a new machine that starts from the staple held so far. One no
        longer configured is retired: its staple is withdrawn and its pending `update_now`
        callers are answered STOPPED. New ones start like at `run()`. The whole new table is
        published once.
        """
        self._require_running()
        groups = _group(entries)
        added = [cert_id for cert_id in groups if cert_id not in self._managed]
        stored = await self._writer.load() if added else {}
        self._require_running()  # stop() may have come while the store was read
        if self._shared is not None:
            self._shared.manage(groups)
        now = self._clock.now()
        for cert_id in [c for c in self._managed if c not in groups]:
            self._retire(cert_id, now)
        for cert_id, group in groups.items():
            managed = self._managed.get(cert_id)
            if managed is None:
                candidates = [e.sidecar_ocsp for e in group if e.sidecar_ocsp]
                if cert_id in stored:
                    candidates.append(stored[cert_id])
            else:
                machine = managed.machine
                wanted = self._new_machine(group)
                if (wanted.uri, wanted.fallback_uris, wanted.auto_update) == (
                    machine.uri,
                    machine.fallback_uris,
                    machine.auto_update,
                ):
                    managed.entries = group
                    machine.path = group[0].path
                    continue
                held = machine.staple
                candidates = [e.sidecar_ocsp for e in group if e.sidecar_ocsp]
                if held is not None:
                    candidates.append(held.der)
                self._retire(cert_id, now)
            self._start(self._add(cert_id, group), now, candidates)
        self._publish()

    def _start(
        self, managed: _Managed, now: dt.datetime, stored: Sequence[bytes | VerifiedStaple]
    ) -> None:
        """Start one machine with its stored candidates; should checking them raise (a bug:
        they are untrusted bytes), start it without them, so it fetches instead."""
        try:
            self._handle(managed, Start(now, tuple(stored)), publish=False)
        except Exception:
            if managed.machine.state is not State.NEW:
                raise
            logger.exception(
                "%s: stored OCSP responses could not be checked; ignored, fetching instead",
                managed.machine.path,
            )
            self._handle(managed, Start(now), publish=False)

    def _retire(self, cert_id: CertId, now: dt.datetime) -> None:
        managed = self._managed.pop(cert_id)
        self._handle(managed, CertificateReplaced(now), publish=False)
        self._table.pop(cert_id, None)
        self._timer_seq.pop(cert_id, None)
        for alias in [a for a, key in self._aliases.items() if key == cert_id]:
            del self._aliases[alias]
        for future in self._waiters.pop(cert_id, []):
            if not future.done():
                future.set_result(
                    UpdateOutcome(
                        UpdateResult.STOPPED,
                        cert_id,
                        managed.machine.path,
                        managed.machine.counters.last_status,
                        "the certificate is no longer configured",
                    )
                )

    def stop(self) -> None:
        """Ask `run()` to return (it cleans up); safe to call more than once, even before
        `run()` starts. An updater runs once."""
        self._stopping = True
        if self._wakeup is not None:
            self._wakeup.set()

    def wake(self) -> None:
        """Re-read the clock now (after a clock change; tests with an offset clock)."""
        if self._wakeup is not None:
            self._wakeup.set()

    async def flush(self) -> None:
        """Wait until every staple handed to the store so far is written."""
        await self._writer.flush()

    @property
    def table(self) -> Mapping[CertId, bytes]:
        """The staples being served now (read-only copy)."""
        return MappingProxyType(dict(self._table))

    @property
    def revocations_detected(self) -> int:
        """How many verified revoked answers were installed since construction."""
        return sum(managed.revocations for managed in self._managed.values())

    @property
    def fetches_in_flight(self) -> int:
        """Requests on the wire now (holding a `FetchGate` slot)."""
        return self._gate.in_flight

    async def _shutdown(self) -> None:
        self._running = False
        self._stopping = True
        fetches = list(self._fetches)
        for task in fetches:
            task.cancel()
        await asyncio.gather(*fetches, return_exceptions=True)
        await self.flush()  # writes are short; losing one would refetch after restart
        await self._close_hooks()
        if self._shared is not None:
            await self._shared.close()
        for cert_id, waiters in self._waiters.items():
            for future in waiters:
                if not future.done():
                    future.set_result(self._outcome(cert_id, UpdateResult.STOPPED))
        self._waiters.clear()
        await self._client.close()

    async def _close_hooks(self) -> None:
        """Let what runs on revocations finish (OcspUpdater's revoked hook)."""

    # --- timers ---

    def _tick_due(self) -> None:
        now = self._clock.now()
        due: list[CertId] = []
        while self._timers and self._timers[0][0] <= now:
            _, seq, cert_id = heapq.heappop(self._timers)
            if self._timer_seq.get(cert_id) == seq:
                del self._timer_seq[cert_id]
                due.append(cert_id)
        for cert_id in due:
            managed = self._managed[cert_id]
            try:
                self._handle(managed, Tick(now))
            except Exception:  # a bug: it must cost this certificate one attempt, no more
                logger.exception(
                    "OCSP updater: %s failed internally; trying again in %g s",
                    managed.machine.path,
                    RETRY_AFTER_INTERNAL_ERROR_S,
                )
                retry = now + dt.timedelta(seconds=RETRY_AFTER_INTERNAL_ERROR_S)
                self._set_timer(cert_id, retry)

    def _sleep_seconds(self) -> float:
        while self._timers and self._timer_seq.get(self._timers[0][2]) != self._timers[0][1]:
            heapq.heappop(self._timers)  # superseded
        if not self._timers:
            return MAX_SLEEP
        delay = (self._timers[0][0] - self._clock.now()).total_seconds()
        return min(max(delay, 0.0), MAX_SLEEP)

    def _set_timer(self, cert_id: CertId, when: dt.datetime) -> None:
        seq = next(self._seq)
        self._timer_seq[cert_id] = seq
        heapq.heappush(self._timers, (when, seq, cert_id))
        if len(self._timers) > 2 * len(self._timer_seq) + 64:
            # superseded timers far in the future would pile up: keep the current ones only
            self._timers = [t for t in self._timers if self._timer_seq.get(t[2]) == t[1]]
            heapq.heapify(self._timers)
        if self._wakeup is not None and self._timers[0][1] == seq:
            self._wakeup.set()  # earlier than what the loop sleeps for

    # --- performing actions ---

    def _handle(self, managed: _Managed, event: Event, *, publish: bool = True) -> list[Action]:
        actions = managed.machine.handle(event)
        changed = False
        for action in actions:
            if isinstance(action, Fetch):
                self._start_fetch(managed, action)
            elif isinstance(action, Install):
                self._table[managed.machine.cert_id] = action.staple.der
                changed = True
            elif isinstance(action, Withdraw):
                changed = self._table.pop(managed.machine.cert_id, None) is not None or changed
            elif isinstance(action, Persist):
                self._writer.save(managed.machine.cert_id, action.staple.der)
            elif isinstance(action, WakeAt):
                self._set_timer(managed.machine.cert_id, action.when)
            elif isinstance(action, Log):
                logger.log(
                    _LEVELS[action.level],
                    "%s",
                    action.message,
                    extra={
                        "ocsp_path": managed.machine.path,
                        "ocsp_cert_id": managed.machine.cert_id.hex,
                    },
                )
            elif isinstance(action, RevocationDetected):
                # The machine's own Log(ALERT) action names the certificate; count and hook.
                managed.revocations += 1
                if self._on_revocation is not None:
                    revocation = Revocation(
                        path=managed.machine.path,
                        certificate=managed.machine.certificate,
                        reason=action.staple.revocation_reason,
                        time=action.staple.revocation_time,
                        source="ocsp",
                    )
                    self._call_safely(self._on_revocation, revocation)
            # Rejected is returned to the caller (set_response).
        if changed and publish:
            self._publish()
        if isinstance(event, FetchSucceeded | FetchFailed):
            self._answer_waiters(managed.machine.cert_id)
        return actions

    def _publish(self) -> None:
        self._call_safely(self._on_staples, MappingProxyType(dict(self._table)))

    def _call_safely(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            logger.exception("OCSP updater callback %r failed", callback)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(_report_crash)
        return task

    def _start_fetch(self, managed: _Managed, action: Fetch) -> None:
        task = self._spawn(self._fetch(managed, action), f"ocsp-fetch {managed.machine.path}")
        self._fetches.add(task)
        task.add_done_callback(self._fetches.discard)

    async def _fetch(self, managed: _Managed, action: Fetch) -> None:
        if self._shared is not None:
            answered: list[bool] = []  # set once this attempt's result reached the machine
            try:
                await self._fetch_in_fleet(self._shared, managed, action, answered)
            except Exception:  # a bug: the certificate must not stay "fetching"
                logger.exception(
                    "%s: shared store failed internally; fetching on our own",
                    managed.machine.path,
                )
            # Publishing and releasing may outlast the attempt (a slow Redis): a newer
            # attempt may be FETCHING by now, and it is not this task's to answer.
            if answered or managed.machine.state is not State.FETCHING:
                return
        await self._fetch_and_finish(managed, action)

    async def _fetch_and_finish(self, managed: _Managed, action: Fetch) -> None:
        event: FetchSucceeded | FetchFailed
        try:
            event = await self._ask_responders(managed.machine.path, action)
        except Exception as exc:  # a bug, not the network: the machine must leave FETCHING
            logger.exception("OCSP fetch for %s failed internally", managed.machine.path)
            event = FetchFailed(
                self._clock.now(), FetchFailureKind.INTERNAL, f"internal error: {exc!r}"
            )
        if managed.machine.state is State.FETCHING:
            self._finish_fetch(managed, event)

    # --- the fleet (ocsp-update.shared-store; fleet/redis_share.py) ---

    async def _start_shared(self) -> dict[CertId, bytes]:
        """Join the fleet: Redis's staples become start candidates (verified like any)."""
        if self._shared is None:
            return {}
        return await self._shared.start(
            self._managed, on_staple=self._shared_staple, held=self._held_staples
        )

    async def _fetch_in_fleet(
        self, shared: RedisShare, managed: _Managed, action: Fetch, answered: list[bool]
    ) -> None:
        """Single flight: a peer's staple answers this fetch, or we fetch under the lease and
        share the staple our machine verified and installed."""
        machine = managed.machine
        held = machine.staple
        async with shared.flight(
            machine.cert_id,
            lambda der, announced: self._usable_from_peer(managed, der, held, announced),
            # A live holder renews its lease while it waits for its own rate limit and then
            # fetches; a dead one's lease expires (10 s) and the next look takes it over.
            wait=max(LEASE_WAIT_FETCHES * self._fetch_timeout, LEASE_WAIT_MIN_S),
        ) as flight:
            if flight.peer_der is None:
                if flight.token is not None:  # the fleet's rate limit, then our own
                    await shared.rate_token(
                        responder_key(action.uri), rate=self._host_rate, burst=self._host_burst
                    )
                await self._fetch_and_finish(managed, action)
                answered.append(True)
                staple = machine.staple
                if staple is not None and staple is not held:
                    await shared.publish(machine.cert_id, staple.der, staple.next_update)
            elif machine.state is State.FETCHING:
                self._finish_fetch(managed, FetchSucceeded(self._clock.now(), flight.peer_der))
                answered.append(True)

    def _usable_from_peer(
        self, managed: _Managed, der: bytes, held: VerifiedStaple | None, announced: bool
    ) -> bool:
        """Whether a peer's DER answers our fetch: it verifies, and either a peer announced it
        during this fetch (then it may equal ours: a caching responder answers the same) or
        it is newer than ours and not yet due by its own times. A refused one is logged."""
        if held is not None and der == held.der and not announced:
            return False
        staple = self._verify_shared(managed, der)
        if staple is None:
            return False
        if announced:  # a peer asked the responder during this fetch
            return held is None or staple.this_update >= held.this_update
        # Otherwise only an answer still fresh by its own (signed) times is this round's:
        # one from a round ago, or a replay, would be due now; we fetch instead.
        now = self._clock.now()
        fetched = fetched_at(
            produced_at=staple.produced_at, this_update=staple.this_update, now=now
        )
        settings = self._settings
        due = min(
            fetched + dt.timedelta(seconds=settings.maxdelay),
            staple.expire() - dt.timedelta(seconds=settings.margin),
        )
        return due > now and (held is None or staple.this_update > held.this_update)

    def _verify_shared(self, managed: _Managed, der: bytes) -> VerifiedStaple | None:
        """Verify a DER read from Redis like a fetched answer; a refusal is logged once per
        distinct DER (the reconcile and the waits read the same bad key again and again)."""
        machine = managed.machine
        if self._refused_shared.get(machine.cert_id) == der:
            return None
        try:
            return verify_response(
                der,
                certificate=machine.certificate,
                issuer=machine.issuer,
                now=self._clock.now(),
                skew=machine.skew,
            )
        except VerificationError as error:
            self._refused_shared[machine.cert_id] = der
            logger.warning(
                "%s: staple from the shared store refused: %s",
                machine.path,
                error,
                extra={"ocsp_path": machine.path, "ocsp_cert_id": machine.cert_id.hex},
            )
            return None

    def _shared_staple(self, cert_id: CertId, der: bytes) -> None:
        """A staple announced by (or reconciled from) the fleet: verified here (a refusal
        logged once), then the machine judges it again and installs it if newer; a
        certificate fetching now leaves it to its flight."""
        managed = self._managed.get(cert_id)
        if managed is None or managed.machine.state not in (State.WAITING, State.IDLE):
            return
        held = managed.machine.staple
        if held is not None and der == held.der:
            return
        if self._verify_shared(managed, der) is None:
            return
        try:
            self._handle(managed, SharedStaple(self._clock.now(), der))
        except Exception:  # untrusted bytes: a bug here costs this staple, nothing else
            logger.exception("%s: checking a shared staple failed", managed.machine.path)

    def _held_staples(self) -> dict[CertId, tuple[bytes, dt.datetime, dt.datetime]]:
        """The staples we serve, for publishing when the fleet store comes back."""
        held = {}
        for cert_id, managed in self._managed.items():
            staple = managed.machine.staple
            if staple is not None and cert_id in self._table:
                held[cert_id] = (staple.der, staple.this_update, staple.next_update)
        return held

    async def _ask_responders(self, path: str, action: Fetch) -> FetchSucceeded | FetchFailed:
        """Ask the action's responders in order until one answers with a body.

        A responder that gives no usable HTTP answer (connection, timeout, HTTP status,
        Content-Type) hands over to the next; the first body ends the round and the machine
        judges it. When all fail, the first one's failure is reported, naming the others.
        """
        failures: list[tuple[str, FetchResult]] = []
        for uri, request in ((action.uri, action.request), *action.alternatives):
            async with self._gate.slot(uri):
                result = await self._client.send(request)
            self.fetch_durations_histogram.observe(uri, result.elapsed)
            if result.ok or result.failure is FetchFailure.EMPTY_BODY:
                if failures:
                    failed = ", ".join(f"{u} ({r.detail})" for u, r in failures)
                    logger.info(
                        "%s: OCSP responder %s failed; %s answered",
                        path,
                        failed,
                        uri,
                        extra={"ocsp_path": path},
                    )
                return fetch_event(result, self._clock.now(), answered_by=uri)
            failures.append((uri, result))
        first = fetch_event(failures[0][1], self._clock.now())
        if len(failures) > 1 and isinstance(first, FetchFailed):
            others = ", ".join(u for u, _ in failures[1:])
            first = replace(first, detail=f"{first.detail}; also failed: {others}")
        return first

    def _finish_fetch(self, managed: _Managed, event: FetchSucceeded | FetchFailed) -> None:
        """Hand the result to the machine; whatever raises, it leaves FETCHING.

        Verifying a fetched body runs on untrusted bytes. Should anything raise there (a bug:
        the verifier promises VerificationError only), a certificate left FETCHING would never
        be refreshed again and its staple would be withdrawn at expiry. So the traceback is
        logged and the attempt ends as an internal failure: counted, and retried.
        """
        try:
            self._handle(managed, event)
        except Exception as exc:
            logger.exception(
                "OCSP update for %s failed internally; counted as a failure, will retry",
                managed.machine.path,
            )
            if managed.machine.state is State.FETCHING:
                failed = FetchFailed(
                    self._clock.now(), FetchFailureKind.INTERNAL, f"internal error: {exc!r}"
                )
                self._handle(managed, failed)

    def _require_running(self) -> None:
        if not self._running or self._stopping:
            raise UpdaterNotRunning(
                "the OCSP updater is not running; call this from the loop running "
                "OcspUpdater.run(), after its `started` event is set"
            )

    def _outcome(
        self, cert_id: CertId, result: UpdateResult, detail: str | None = None
    ) -> UpdateOutcome:
        machine = self._managed[cert_id].machine
        counters = machine.counters
        return UpdateOutcome(
            result=result,
            cert_id=cert_id,
            path=machine.path,
            status=counters.last_status,
            detail=counters.last_detail if result is UpdateResult.COMPLETED else detail,
            successes=counters.successes,
            failures=counters.failures,
        )

    def _answer_waiters(self, cert_id: CertId) -> None:
        waiters = self._waiters.pop(cert_id, [])
        if not waiters:
            return
        outcome = self._outcome(cert_id, UpdateResult.COMPLETED)
        for future in waiters:
            if not future.done():
                future.set_result(outcome)


def _group(entries: Sequence[UpdaterEntry]) -> dict[CertId, list[UpdaterEntry]]:
    """Entries by SHA-1 CertId, in configuration order."""
    groups: dict[CertId, list[UpdaterEntry]] = {}
    for entry in entries:
        cert_id = CertId.for_certificate(entry.certificate, entry.issuer)
        groups.setdefault(cert_id, []).append(entry)
    return groups


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("OCSP updater task %s crashed", task.get_name(), exc_info=task.exception())
