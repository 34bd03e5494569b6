"""A runtime API assembled from real parts, served on real Unix sockets in tmp_path.

Real: the test CA and its OCSP responder (`pki` fixture), certificates loaded by
`staplegate.certs.load_certificate`, a running `OcspUpdater` fetching over 127.0.0.1, the
handlers and the server. In memory: what the master would tell its workers (a list of
commits) and the server states (the master's BackendPools are not needed to test answers).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from staplegate.certs import (
    CertificateSource,
    ExtraFiles,
    LoadedCertificate,
    OcspDisposition,
    assess_ocsp,
    check_ocsp_sidecar,
    load_certificate,
)
from staplegate.clock import SystemClock
from staplegate.config.model import StatsLevel
from staplegate.config.values import AddressFamily, SocketAddress
from staplegate.deploy.generation import CertificateEntry
from staplegate.fetch.client import FetchSettings
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.proxy.backends import AdminState
from staplegate.runtime.contract import (
    CommitResult,
    CrtListLine,
    CrtListView,
    ReloadReport,
    ServerView,
    StatRow,
    UnknownServer,
)
from staplegate.runtime.handlers import RuntimeHandlers
from staplegate.runtime.server import Limits, Listener, RuntimeServer
from staplegate.testpki.ca import IssuedCertificate
from staplegate.testpki.pytest_plugin import Pki
from staplegate.updater.driver import UpdaterEntry
from staplegate.updater.service import OcspUpdater

FAST = FetchSettings(connect_timeout=1.0, total_timeout=5.0, connect_retries=0)
WAIT = 10.0
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def load(issued: IssuedCertificate, name: str | None = None) -> LoadedCertificate:
    certificate = load_certificate(
        CertificateSource.from_path(issued.bundle_path), extra=ExtraFiles(), now=SystemClock().now()
    )
    return certificate if name is None else replace(certificate, name=name)


def store_entry(certificate: LoadedCertificate) -> CertificateEntry:
    readiness = assess_ocsp(certificate, ocsp_update=True)
    sidecar = check_ocsp_sidecar(certificate, SystemClock().now())
    return CertificateEntry(certificate.name, (), certificate, None, readiness, sidecar)


def updater_entries(stores: Sequence[CertificateEntry]) -> list[UpdaterEntry]:
    """What app.updater_entries does for a generation, for our store list."""
    entries = []
    for store in stores:
        cert = store.certificate
        if cert is None or cert.issuer is None or store.readiness is None:
            continue
        if store.readiness.disposition is not OcspDisposition.ENTRY:
            continue
        entries.append(
            UpdaterEntry(
                certificate=cert.leaf,
                issuer=cert.issuer,
                path=store.name,
                uri=cert.ocsp_uri,
                auto_update=store.readiness.auto_update,
                sidecar_ocsp=cert.ocsp.der if cert.ocsp else None,
            )
        )
    return entries


class Tables:
    """Every staple table the updater publishes; tests wait on conditions over the latest."""

    def __init__(self) -> None:
        self.latest: dict[CertId, bytes] = {}
        self._changed = asyncio.Event()

    def __call__(self, table: Mapping[CertId, bytes]) -> None:
        self.latest = dict(table)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[dict[CertId, bytes]], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate(self.latest):
                self._changed.clear()
                await self._changed.wait()


@dataclass
class LabBackend:
    """A `ProcessView` over real certificates and a real updater."""

    stores: list[CertificateEntry]
    updater: OcspUpdater
    server_views: list[ServerView]
    lists: tuple[CrtListView, ...] = ()
    commits: list[tuple[str, CertId | None]] = field(default_factory=list)
    reloads: list[ReloadReport] = field(default_factory=list)
    """What the workers were told: (store name, new CertId) per commit."""

    def ocsp_updater(self) -> OcspUpdater:
        return self.updater

    def certificates(self) -> Sequence[CertificateEntry]:
        return tuple(self.stores)

    def crt_lists(self) -> Sequence[CrtListView]:
        return self.lists

    async def commit_certificate(self, name: str, certificate: LoadedCertificate) -> CommitResult:
        self.stores = [store_entry(certificate) if s.name == name else s for s in self.stores]
        await self.updater.reconfigure(updater_entries(self.stores))
        self.commits.append((name, certificate.cert_id))
        return CommitResult(instances=2)

    async def reload(self) -> ReloadReport:
        report = ReloadReport(ok=True, message="reloaded: generation 2")
        self.reloads.append(report)
        return report

    def last_reload(self) -> ReloadReport | None:
        return self.reloads[-1] if self.reloads else None

    def servers(self) -> Sequence[ServerView]:
        return tuple(self.server_views)

    def set_server_state(self, backend: str, server: str, state: AdminState) -> None:
        for index, view in enumerate(self.server_views):
            if (view.backend, view.name) == (backend, server):
                self.server_views[index] = replace(view, admin=state)
                return
        raise UnknownServer("No such server.")

    def info(self) -> Mapping[str, str | int]:
        return {"Name": "staplegate", "Version": "0.1", "Pid": os.getpid(), "Uptime_sec": 5}

    def stats(self) -> Sequence[StatRow]:
        rows = [
            StatRow(
                {"pxname": "fe_tls", "svname": "FRONTEND", "status": "OPEN", "mode": "tcp"},
                certificates=tuple(s.name for s in self.stores),
            )
        ]
        for view in self.server_views:
            rows.append(
                StatRow(
                    {
                        "pxname": view.backend,
                        "svname": view.name,
                        "status": "UP" if view.up else "DOWN",
                        "addr": f"{view.address}:{view.port}",
                        "mode": "tcp",
                    }
                )
            )
        rows.append(
            StatRow({"pxname": "be_app", "svname": "BACKEND", "status": "UP", "algo": "roundrobin"})
        )
        return rows


@dataclass
class Lab:
    pki: Pki
    issued: dict[str, IssuedCertificate]
    backend: LabBackend
    updater: OcspUpdater
    tables: Tables
    handlers: RuntimeHandlers
    server: RuntimeServer
    sockets: dict[StatsLevel, Path]
    directory: Path

    def name(self, short: str) -> str:
        return str(self.issued[short].bundle_path)

    def cert_id(self, short: str) -> CertId:
        issued = self.issued[short]
        return CertId.for_certificate(issued.certificate, issued.issuer)


async def ask(path: Path, data: str | bytes) -> str:
    """Send `data` on a fresh connection, half-close (as socat does at the end of its input),
    and read the answer until the server closes."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(data.encode() if isinstance(data, str) else data)
        await writer.drain()
        writer.write_eof()
        async with asyncio.timeout(WAIT):
            answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return answer.decode()


def unix(path: Path) -> SocketAddress:
    return SocketAddress(AddressFamily.UNIX, str(path), 0)


@asynccontextmanager
async def lab(
    pki: Pki,
    directory: Path,
    *,
    extra: Sequence[Listener] = (),
    limits: Limits | None = None,
    max_payload: int | None = None,
) -> AsyncIterator[Lab]:
    """www and shop certificates (auto-update on), their staples fetched, sockets per level."""
    issued = {
        "www": pki.issue("www.example.test"),
        "shop": pki.issue("shop.example.test"),
    }
    stores = [store_entry(load(item)) for item in issued.values()]
    tables = Tables()
    updater = OcspUpdater(
        updater_entries(stores),
        update_settings=UpdateSettings(),
        fetch_settings=FAST,
        on_staples=tables,
    )
    views = [
        ServerView("be_app", 3, "app1", 1, "127.0.0.1", 8081, True, AdminState.READY, check=True),
        ServerView("be_app", 3, "app2", 2, "127.0.0.1", 8082, False, AdminState.READY),
    ]
    lists = (
        CrtListView(
            str(directory / "certs.lst"),
            (
                CrtListLine(
                    stores[0].name,
                    1,
                    ("alpn h2,http/1.1", "ocsp-update on"),
                    ("www.example.test",),
                    True,
                ),
                CrtListLine(stores[1].name, 2, (), ()),
            ),
        ),
    )
    backend = LabBackend(stores, updater, views, lists)
    handlers = RuntimeHandlers(backend, update_timeout=WAIT)
    sockets = {level: directory / f"{level.name.lower()}.sock" for level in StatsLevel}
    listeners = [Listener(unix(path), level) for level, path in sockets.items()]
    server = RuntimeServer([*listeners, *extra], handlers, limits=limits, max_payload=max_payload)
    started = asyncio.Event()
    task = asyncio.create_task(updater.run(started=started))
    try:
        async with asyncio.timeout(WAIT):
            await started.wait()
        ids = [CertId.for_certificate(i.certificate, i.issuer) for i in issued.values()]
        await tables.wait_for(lambda table: all(i in table for i in ids))
        await server.start()
        yield Lab(pki, issued, backend, updater, tables, handlers, server, sockets, directory)
    finally:
        await server.close()
        updater.stop()
        await task
