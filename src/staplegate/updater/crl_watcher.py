"""Run the CRL watch (updater/crl_watch.py): fetch due CRLs, log, persist, sleep until next.

One task per due URL, each under the fetch gate the OCSP updater uses (global concurrency cap
and per-host rate), so CRL fetches and OCSP fetches share one budget per responder host. The
loop sleeps until the watch's earliest refresh, computed from `clock.now()` and never longer
than `MAX_SLEEP`, so an offset clock or a wall-clock jump is noticed.

Log lines go to the `staplegate.crl` logger: `<CRL-UPDATE>` lines at NOTICE like
`<OCSP-UPDATE>`, a certificate becoming revoked at ALERT. Each source's verdicts are written
to the state directory after every successful fetch (`crl-<hash>.json`, atomically) and read
back before the first fetch, so a restart reports the last verdict at once. A certificate
that becomes revoked is also handed to `on_revocation` (the revoked hook).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Callable, Iterable
from pathlib import Path

from staplegate.clock import Clock
from staplegate.fetch.client import FetchResult, OcspHttpClient
from staplegate.fetch.gate import FetchGate
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.store.atomic import write_atomically
from staplegate.updater.crl_watch import (
    LOG_TAG,
    CrlSource,
    CrlTarget,
    CrlWatch,
    WatchLog,
    state_file_name,
)
from staplegate.updater.revoked_hook import Revocation

#: syslog notice and alert, as the OCSP updater uses them (updater/driver.py).
NOTICE = 25
ALERT = 55
#: Longest sleep between looks at the wall clock.
MAX_SLEEP = 30.0
#: State files hold only verdicts, but are private like the staples next to them.
STATE_FILE_MODE = 0o600

logger = logging.getLogger("staplegate.crl")


class CrlWatcher:
    """The CRL watch's loop; `sources` is what the runtime API and metrics read."""

    def __init__(
        self,
        targets: Iterable[CrlTarget],
        *,
        client: OcspHttpClient,
        gate: FetchGate,
        clock: Clock,
        state_dir: Path | None,
        settings: UpdateSettings | None = None,
        rng: random.Random | None = None,
        on_revocation: Callable[[Revocation], None] | None = None,
    ) -> None:
        self._clock = clock
        self._on_revocation = on_revocation
        self._client = client
        self._gate = gate
        self._state_dir = state_dir
        self.watch = CrlWatch(targets, now=clock.now(), settings=settings, rng=rng)
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()

    @property
    def sources(self) -> list[CrlSource]:
        return list(self.watch.sources.values())

    def wake(self) -> None:
        """Look at the schedule again now (after the clock moved, in tests)."""
        self._wakeup.set()

    async def restore(self) -> None:
        """Read every source's state file, if any; a damaged one is ignored (logged)."""
        if self._state_dir is None:
            return
        now = self._clock.now()
        for url in self.watch.sources:
            path = self._state_dir / state_file_name(url)
            try:
                data = await asyncio.to_thread(path.read_bytes)
            except FileNotFoundError:
                continue
            except OSError as exc:
                logger.warning("CRL watch: cannot read %s: %s", path, exc)
                continue
            if not self.watch.restore(url, data, now):
                logger.warning("CRL watch: ignoring damaged state file %s for %s", path, url)

    async def refresh(self, url: str) -> None:
        """Fetch the CRL of `url`'s source once (through the gate), from `url` or, when it
        fails, from the certificates' other distribution points; apply, log, persist."""
        source = self.watch.sources[url]
        failures: list[tuple[str, FetchResult]] = []
        result: FetchResult | None = None
        for candidate in source.fetch_order():
            async with self._gate.slot(candidate):
                attempt = await self._client.fetch_crl(candidate)
            if attempt.ok and attempt.body is not None:
                result = attempt
                if failures:
                    failed = ", ".join(f"{u} ({r.detail})" for u, r in failures)
                    logger.info("%s %s: %s failed; %s answered", LOG_TAG, url, failed, candidate)
                source.answering = candidate
                break
            failures.append((candidate, attempt))
        now = self._clock.now()
        if result is not None and result.body is not None:
            logs = self.watch.fetched(url, result.body, now)
        else:
            first = failures[0][1]
            failure = first.failure.value if first.failure else "unknown"
            detail = first.detail
            if len(failures) > 1:
                detail += "; also failed: " + ", ".join(u for u, _ in failures[1:])
            logs = self.watch.failed(url, failure, detail, now)
        _emit(logs)
        self._announce(logs)
        if result is not None and self.watch.sources[url].consecutive_failures == 0:
            await self._persist(url)

    async def _persist(self, url: str) -> None:
        if self._state_dir is None:
            return
        path = self._state_dir / state_file_name(url)
        try:
            await asyncio.to_thread(
                write_atomically, path, self.watch.to_json(url), mode=STATE_FILE_MODE
            )
        except OSError as exc:
            logger.warning("CRL watch: cannot write %s: %s", path, exc)

    async def run(self) -> None:
        """Restore, then fetch whatever is due until cancelled."""
        if not self.watch.sources:
            return
        await self.restore()
        try:
            while True:
                now = self._clock.now()
                for url in self.watch.due(now):
                    if url not in self._in_flight:
                        self._start(url)
                await self._sleep_until(self._next_wake(), now)
        finally:
            for task in self._in_flight.values():
                task.cancel()
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    async def refresh_now(self, url: str) -> None:
        """Fetch `url`'s CRL at once (`update ssl crl`), or wait for the fetch under way."""
        task = self._in_flight.get(url)
        if task is None:
            self._start(url)
            task = self._in_flight[url]
        await asyncio.shield(task)

    def _start(self, url: str) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded_refresh(url))
        self._in_flight[url] = task
        task.add_done_callback(lambda _: self._done(url))

    def _done(self, url: str) -> None:
        self._in_flight.pop(url, None)
        self._wakeup.set()

    async def _guarded_refresh(self, url: str) -> None:
        try:
            await self.refresh(url)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in one source never stops the watch of the others
            logger.exception("CRL watch: internal error refreshing %s", url)
            _emit(self.watch.failed(url, "internal-error", "see the traceback", self._clock.now()))

    def _next_wake(self) -> dt.datetime | None:
        """The earliest refresh of a source not being fetched (a fetch's end wakes the loop)."""
        times = [
            s.next_refresh
            for s in self.watch.sources.values()
            if s.next_refresh is not None and s.url not in self._in_flight
        ]
        return min(times, default=None)

    async def _sleep_until(self, when: dt.datetime | None, now: dt.datetime) -> None:
        delay = MAX_SLEEP if when is None else (when - now).total_seconds()
        delay = min(max(delay, 0.0), MAX_SLEEP)
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout=delay)

    def _announce(self, logs: list[WatchLog]) -> None:
        """Hand each new revocation to the revoked hook (a failing hook is logged, no more)."""
        if self._on_revocation is None:
            return
        for line in logs:
            if line.revoked is None or line.verdict is None:
                continue
            revocation = Revocation(
                path=line.revoked.path,
                certificate=line.revoked.certificate,
                reason=line.verdict.reason,
                time=line.verdict.revocation_time,
                source="crl",
            )
            try:
                self._on_revocation(revocation)
            except Exception:
                logger.exception("CRL watch: the revocation callback failed")


def _emit(logs: list[WatchLog]) -> None:
    for line in logs:
        logger.log(ALERT if line.alert else NOTICE, "%s", line.message)
