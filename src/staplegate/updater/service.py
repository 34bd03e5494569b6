"""What the runtime API asks of the updater: `OcspUpdater`, the driver plus its service hooks.

`snapshot`, `find`, `update_now` and `set_response` read and steer the machines the driver
(updater/driver.py) runs; the runtime API reaches them through `runtime.contract.OcspService`,
a protocol this class satisfies, so its handlers are unit-tested against a small fake. Call
them on the loop running `run()`, after its `started` event is set (else `UpdaterNotRunning`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509 import ocsp

from staplegate.ocsp.certid import CertId
from staplegate.ocsp.logline import UpdateStatus
from staplegate.ocsp.machine import Log, ManualSet, Rejected, State, UpdateRequested
from staplegate.ocsp.verify import FailureReason, VerificationError
from staplegate.updater.crl_watch import CrlSource, CrlTarget
from staplegate.updater.crl_watcher import CrlWatcher
from staplegate.updater.driver import UpdaterDriver
from staplegate.updater.results import (
    NO_MATCHING_CERTIFICATE,
    RESPONSE_UPDATED,
    EntrySnapshot,
    SetOutcome,
    SetRefusal,
    SharedStoreState,
    StapleSummary,
    UpdateOutcome,
    UpdateResult,
)
from staplegate.updater.revoked_hook import RevokedHook
from staplegate.updater.timing import DurationHistogram

#: How much longer than a fetch's own deadline `update_now` waits by default, so a fetch
#: that times out is reported as such, not as "still running".
UPDATE_GRACE_S = 2.0

#: A dotted OID in cryptography's UnsupportedAlgorithm message.
_OID = re.compile(r"\d+(?:\.\d+)+")


class OcspUpdater(UpdaterDriver):
    """The OCSP updater: the driver's loop plus what the runtime API calls.

    It also owns the CRL watch (updater/crl_watcher.py), which shares its HTTP client, fetch
    gate, clock and schedule settings: `start_crl_watch` (at start and on every reload)
    replaces the watch with one over the new targets, which reads the stored verdicts first.
    """

    _crl_watcher: CrlWatcher | None = None
    _crl_task: asyncio.Task[None] | None = None
    _revoked_hook: RevokedHook | None = None

    def configure_revoked_hook(self, command: str | None, state_dir: Path | None) -> None:
        """Run `command` on each verified revocation from now on (None: no hook).

        Call before `run()` and on every reload, before `start_crl_watch`, which tells the
        hook which certificates are served (to announce cleared revocations).
        """
        if command is None:
            self._revoked_hook = None
            self._on_revocation = None
            return
        if self._revoked_hook is None:
            self._revoked_hook = RevokedHook(command, state_dir=state_dir)
        self._revoked_hook.command = command
        self._on_revocation = self._revoked_hook.revoked

    @property
    def revoked_hook(self) -> RevokedHook | None:
        return self._revoked_hook

    async def _close_hooks(self) -> None:
        if self._revoked_hook is not None:
            await self._revoked_hook.close()

    def start_crl_watch(self, targets: Sequence[CrlTarget], state_dir: Path | None) -> None:
        """Watch `targets`' CRLs from now on (call on the running loop)."""
        self._stop_crl_watch()
        if self._revoked_hook is not None:
            served = {e.path: e.certificate for m in self._managed.values() for e in m.entries}
            served.update((t.path, t.certificate) for t in targets)
            self._revoked_hook.configured(served)
        if not targets:
            self._crl_watcher = None
            return
        watcher = CrlWatcher(
            targets,
            client=self._client,
            gate=self._gate,
            clock=self._clock,
            state_dir=state_dir,
            settings=self._settings,
            rng=self._rng,
            on_revocation=self._on_revocation,
        )
        self._crl_watcher = watcher
        self._crl_task = asyncio.get_running_loop().create_task(watcher.run())

    def shared_store(self) -> SharedStoreState | None:
        """The fleet store's state, or None without `ocsp-update.shared-store`."""
        share = self._shared
        if share is None:
            return None
        stats = share.stats
        return SharedStoreState(
            url=share.display_url,
            up=stats.up,
            leases_held=stats.leases_held,
            fallbacks=stats.fallbacks,
            outages=stats.outages,
            peer_staples=stats.peer_staples,
            published=stats.published,
        )

    def crl_sources(self) -> list[CrlSource]:
        """Every watched CRL URL with its certificates' verdicts (empty: no watch)."""
        return self._crl_watcher.sources if self._crl_watcher is not None else []

    def fetch_durations(self) -> Mapping[str, DurationHistogram]:
        """How long OCSP fetches took, per responder URL (the driver records them)."""
        return self.fetch_durations_histogram.snapshot()

    async def update_crl(self, name: str, *, timeout: float) -> CrlSource | None:
        """Refresh at once the watched CRL named by its URL or by one of its certificates'
        paths, waiting up to `timeout` s; the source afterwards (None: no such CRL)."""
        watcher = self._crl_watcher
        if watcher is None:
            return None
        source = next(
            (s for s in watcher.sources if s.url == name or any(t.path == name for t in s.targets)),
            None,
        )
        if source is None:
            return None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await watcher.refresh_now(source.url)
        return source

    def wake(self) -> None:
        super().wake()
        if self._crl_watcher is not None:
            self._crl_watcher.wake()

    def stop(self) -> None:
        self._stop_crl_watch()
        super().stop()

    def _stop_crl_watch(self) -> None:
        if self._crl_task is not None:
            self._crl_task.cancel()
            self._crl_task = None

    def snapshot(self) -> list[EntrySnapshot]:
        """Every OCSP entry in configuration order (one per CertId)."""
        now = self._clock.now()
        rows = []
        for cert_id, managed in self._managed.items():
            machine = managed.machine
            counters = machine.counters
            staple = machine.staple
            summary = None
            if staple is not None:
                summary = StapleSummary(
                    status=staple.status,
                    this_update=staple.this_update,
                    next_update=staple.next_update,
                    produced_at=staple.produced_at,
                    revocation_time=staple.revocation_time,
                    served=machine.servable_staple(now) is not None and cert_id in self._table,
                )
            rows.append(
                EntrySnapshot(
                    path=machine.path,
                    paths=tuple(e.path for e in managed.entries),
                    cert_id=cert_id,
                    cert_id_hex=cert_id.hex,
                    uri=machine.uri,
                    auto_update=machine.auto_update,
                    state=machine.state,
                    next_attempt=machine.next_attempt,
                    successes=counters.successes,
                    failures=counters.failures,
                    last_status=counters.last_status,
                    last_status_text=counters.status_text,
                    last_success=counters.last_success,
                    revocations=managed.revocations,
                    staple=summary,
                    failures_by_status=counters.failures_by_status,
                )
            )
        return rows

    def find(self, name: str) -> CertId | None:
        """The CertId configured under file `name` (any of its paths) or CertId hex `name`."""
        for cert_id, managed in self._managed.items():
            if name == cert_id.hex or any(e.path == name for e in managed.entries):
                return cert_id
        lowered = name.strip().lower()
        for alias, cert_id in self._aliases.items():
            if alias.hex == lowered:
                return cert_id
        return None

    @property
    def update_wait(self) -> float:
        """Seconds `update_now` waits by default: the fetch's own deadline plus a grace."""
        return self._fetch_timeout + UPDATE_GRACE_S

    async def update_now(self, cert_id: CertId, *, timeout: float | None = None) -> UpdateOutcome:
        """Fetch at once (even with auto-update off) and wait up to `timeout` s for the result
        (default `update_wait`, longer than the fetch may take)."""
        self._require_running()
        if timeout is None:
            timeout = self.update_wait
        key = self._aliases.get(cert_id)
        if key is None:
            return UpdateOutcome(
                UpdateResult.UNKNOWN_CERTIFICATE,
                cert_id,
                None,
                UpdateStatus.UNKNOWN,
                f"no managed certificate has CertId {cert_id.hex}",
            )
        managed = self._managed[key]
        if not managed.machine.can_fetch:
            actions = self._handle(managed, UpdateRequested(self._clock.now()))
            why = next((a.message for a in actions if isinstance(a, Log)), None)
            return self._outcome(key, UpdateResult.CANNOT_FETCH, why)
        future: asyncio.Future[UpdateOutcome] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(future)
        self._handle(managed, UpdateRequested(self._clock.now()))
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            return self._outcome(
                key,
                UpdateResult.TIMED_OUT,
                f"no answer within {timeout:g} s; the attempt continues and will be logged",
            )
        finally:
            waiters = self._waiters.get(key, [])
            if future in waiters:
                waiters.remove(future)

    def set_response(self, der: bytes) -> SetOutcome:
        """Install an operator's response for the certificate it names, if it verifies."""
        self._require_running()
        try:
            response = ocsp.load_der_ocsp_response(der)
        except ValueError as exc:
            return _refused(
                SetRefusal.UNREADABLE, VerificationError(FailureReason.UNPARSABLE, str(exc))
            )
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            status = response.response_status
            error = VerificationError(
                FailureReason.NOT_SUCCESSFUL,
                f"{status.value}: {status.name.lower()}",
                status=status,
            )
            return _refused(SetRefusal.UNREADABLE, error)
        key = None
        try:
            for single in response.responses:
                key = self._aliases.get(CertId.from_single_response(single))
                if key is not None:
                    break
        except UnsupportedAlgorithm as exc:
            found = _OID.search(str(exc))
            algorithm = found.group(0) if found else str(exc)
            return SetOutcome(
                accepted=False,
                message="OCSP single response: Certificate ID uses an unsupported hash "
                f"algorithm ({algorithm})",
                refusal=SetRefusal.UNSUPPORTED_HASH,
                failure=FailureReason.CERT_ID_MISMATCH,
                hint="ask the responder for a SHA-1 (or SHA-256) CertId, as staplegate does",
            )
        except Exception as exc:  # untrusted bytes: whatever fails to parse is unreadable
            error = VerificationError(FailureReason.NO_SINGLE_RESPONSE, f"{exc!r}")
            return _refused(SetRefusal.UNREADABLE, error)
        if key is None:
            return SetOutcome(
                accepted=False,
                message=NO_MATCHING_CERTIFICATE,
                refusal=SetRefusal.NO_MATCHING_CERTIFICATE,
                hint="the response is for a certificate or issuer this process does not serve",
            )
        managed = self._managed[key]
        path = managed.machine.path
        if managed.machine.state is State.RETIRED:
            return SetOutcome(
                accepted=False,
                message=NO_MATCHING_CERTIFICATE,
                cert_id=key,
                path=path,
                refusal=SetRefusal.NO_MATCHING_CERTIFICATE,
                hint="the certificate was replaced",
            )
        actions = self._handle(managed, ManualSet(self._clock.now(), der))
        for action in actions:
            if isinstance(action, Rejected):
                return SetOutcome(
                    accepted=False,
                    message=str(action.error),
                    cert_id=key,
                    path=path,
                    refusal=SetRefusal.VERIFICATION_FAILED,
                    failure=action.error.reason,
                    hint=action.error.hint,
                )
        return SetOutcome(accepted=True, message=RESPONSE_UPDATED, cert_id=key, path=path)


def _refused(refusal: SetRefusal, error: VerificationError) -> SetOutcome:
    return SetOutcome(
        accepted=False, message=str(error), refusal=refusal, failure=error.reason, hint=error.hint
    )
