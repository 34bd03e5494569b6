"""The running master as the runtime API sees it: `ProcessView` over `Master`.

`runtime/contract.py` defines that port (what the socket's commands need, in the runtime's
own types); this adapter answers it from the master's state. A committed certificate is put
in service the way a reload is: a new generation whose TLS contexts are built in the master,
new workers on the same sockets, the old ones drain. That keeps every worker's session-ticket
keys equal and needs no certificate plumbing into running workers. Like HAProxy, a change
made over the socket lives in memory: write the files too, or the next reload reads the old
ones.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from staplegate import __version__
from staplegate.certs import LoadedCertificate, assess_ocsp, check_ocsp_sidecar
from staplegate.deploy.generation import CertificateEntry
from staplegate.process.master import DeployError, Master, ReloadResult
from staplegate.process.traffic import RESPONSE_CLASSES, STAPLE_OUTCOMES
from staplegate.proxy.backends import AdminState, ServerState
from staplegate.runtime.contract import (
    CommitError,
    CommitResult,
    CrtListView,
    ReloadReport,
    ServerView,
    StatRow,
    UnknownServer,
    crt_lists_from_config,
)
from staplegate.updater.service import OcspUpdater


class MasterRuntime:
    """Implements `staplegate.runtime.contract.ProcessView` for the master process."""

    def __init__(
        self,
        master: Master,
        updater: OcspUpdater,
        reload: Callable[[], Awaitable[ReloadResult]],
    ) -> None:
        self._master = master
        self._updater = updater
        self._reload = reload
        self._started = time.monotonic()

    @property
    def started(self) -> float:
        """When this view was made (time.monotonic()): the process's uptime origin."""
        return self._started

    async def reload(self) -> ReloadReport:
        result = await self._reload()
        return ReloadReport(ok=result.ok, message=result.message, lines=result.lines)

    def last_reload(self) -> ReloadReport | None:
        if not self._master.reloads:
            return None
        result = self._master.reloads[-1]
        return ReloadReport(ok=result.ok, message=result.message, lines=result.lines)

    def ocsp_updater(self) -> OcspUpdater:
        return self._updater

    def certificates(self) -> Sequence[CertificateEntry]:
        return self._master.current.generation.certificates

    def crt_lists(self) -> Sequence[CrtListView]:
        return crt_lists_from_config(self._master.current.generation.config)

    async def commit_certificate(self, name: str, certificate: LoadedCertificate) -> CommitResult:
        master = self._master
        generation = master.current.generation
        entries = list(generation.certificates)
        index = next((i for i, e in enumerate(entries) if e.name == name), None)
        if index is None:
            raise CommitError(f"'{name}' is not a certificate in use; it cannot be committed.")
        entry = entries[index]
        now = master.clock.now()
        readiness = assess_ocsp(certificate, ocsp_update=entry.ocsp_update)
        if readiness.fatal:
            raise CommitError(readiness.fatal)
        entries[index] = dataclasses.replace(
            entry,
            certificate=certificate,
            error=None,
            readiness=readiness,
            sidecar=check_ocsp_sidecar(certificate, now),
        )
        renewed = dataclasses.replace(generation, certificates=tuple(entries))
        try:
            await master.deploy(renewed, self._updater)
        except DeployError as error:
            raise CommitError(str(error)) from None
        instances = sum(
            1
            for fplan in master.current.plan.frontends
            for bplan in fplan.binds
            if bplan.tls is not None
            for context in bplan.tls.contexts
            if context.certificate.name == name
        )
        warnings = tuple(readiness.warnings) + tuple(readiness.info)
        return CommitResult(instances=instances, warnings=warnings)

    def servers(self) -> Sequence[ServerView]:
        views = []
        for backend_id, backend in enumerate(self._master.current.plan.backends, start=1):
            pool = self._master.pools[backend.name]
            states = pool.states()
            for server_id, server in enumerate(backend.servers, start=1):
                health, admin = states[server.name]
                views.append(
                    ServerView(
                        backend=backend.name,
                        backend_id=backend_id,
                        name=server.name,
                        server_id=server_id,
                        address=server.host,
                        port=server.port,
                        up=health is ServerState.UP,
                        admin=admin,
                        check=server.check,
                        rise=server.rise,
                        fall=server.fall,
                    )
                )
        return views

    def set_server_state(self, backend: str, server: str, state: AdminState) -> None:
        pool = self._master.pools.get(backend)
        if pool is None:
            raise UnknownServer("No such backend.")
        if server not in {s.name for s in pool.servers}:
            raise UnknownServer("No such server.")
        pool.set_admin(server, state)
        self._master.broadcast_servers()

    def info(self) -> Mapping[str, str | int]:
        master = self._master
        uptime = int(time.monotonic() - self._started)
        info: dict[str, str | int] = {
            "Name": "staplegate",
            "Version": __version__,
            "Release_date": "",
            "Nbthread": master.worker_count,
            "Nbproc": 1,
            "Process_num": 1,
            "Pid": os.getpid(),
            "Uptime": f"{uptime // 86400}d {uptime // 3600 % 24}h{uptime // 60 % 60:02d}m"
            f"{uptime % 60:02d}s",
            "Uptime_sec": uptime,
            "Stopping": int(master.stopping),
            "DroppedLogs": master.dropped_logs(),
        }
        shared = self._updater.shared_store()
        if shared is not None:  # ocsp-update.shared-store: the fleet's Redis, as metrics show it
            info.update(
                SharedStore=shared.url,
                SharedStoreUp=int(shared.up),
                SharedStoreLeasesHeld=shared.leases_held,
                SharedStoreFallbacks=shared.fallbacks,
                SharedStorePeerStaples=shared.peer_staples,
            )
        return info

    def stats(self) -> Sequence[StatRow]:
        """The configuration's rows with the workers' traffic counters (`process.traffic`:
        reported at least once a second, totals kept across reloads)."""
        master = self._master
        rows: list[StatRow] = []
        traffic = master.traffic.frontends()
        server_traffic = master.traffic.servers()
        for frontend in master.current.plan.frontends:
            counters = traffic.get(frontend.name, {})
            names = sorted(
                {
                    c.certificate.name
                    for b in frontend.binds
                    if b.tls is not None
                    for c in b.tls.contexts
                }
            )
            rows.append(
                StatRow(
                    {
                        "pxname": frontend.name,
                        "svname": "FRONTEND",
                        "status": "OPEN",
                        "slim": frontend.maxconn,
                        "type": 0,
                        "mode": frontend.mode.value,
                        **_frontend_traffic(counters, http=frontend.http is not None),
                    },
                    certificates=tuple(names),
                    handshakes={
                        label: counters.get(name, 0) for label, name in STAPLE_OUTCOMES.items()
                    },
                )
            )
        modes = {b.name: b.mode.value for b in master.current.generation.config.backends}
        for backend in master.current.plan.backends:
            mode = modes[backend.name]
            pool = master.pools[backend.name]
            states = pool.states()
            up = 0
            backend_scur = backend_stot = 0
            for server in backend.servers:
                health, admin = states[server.name]
                served = server_traffic.get((backend.name, server.name), {})
                backend_scur += served.get("scur", 0)
                backend_stot += served.get("stot", 0)
                status = "MAINT" if admin is AdminState.MAINT else health.value
                if admin is AdminState.DRAIN and health is ServerState.UP:
                    status = "DRAIN"
                up += int(health is ServerState.UP and admin is AdminState.READY)
                rows.append(
                    StatRow(
                        {
                            "pxname": backend.name,
                            "svname": server.name,
                            "status": status,
                            "weight": 1,
                            "act": 1,
                            "type": 2,
                            "check_status": "L4OK"
                            if server.check and health is ServerState.UP
                            else ("L4CON" if server.check else None),
                            "addr": f"{server.host}:{server.port}",
                            "mode": mode,
                            "scur": served.get("scur", 0),
                            "stot": served.get("stot", 0),
                        }
                    )
                )
            rows.append(
                StatRow(
                    {
                        "pxname": backend.name,
                        "svname": "BACKEND",
                        "status": "UP" if up else "DOWN",
                        "weight": up,
                        "act": up,
                        "type": 1,
                        "algo": backend.algorithm.value,
                        "mode": mode,
                        "scur": backend_scur,
                        "stot": backend_stot,
                    }
                )
            )
        return rows


def _frontend_traffic(counters: Mapping[str, int], *, http: bool) -> dict[str, int]:
    """`show stat`'s traffic fields of a FRONTEND row (hrsp_* and req_tot in mode http)."""
    names = ["scur", "stot", "bin", "bout"]
    if http:
        names += ["req_tot", *(f"hrsp_{name}" for name in RESPONSE_CLASSES)]
    return {name: counters.get(name, 0) for name in names}
