"""`--socket PATH`: the sidecar's own runtime API, staplegate's (runtime/), for its OCSP side.

The same server and handlers as the main command's stats socket, in front of a view that has
an updater and nothing else: `show ssl ocsp-response`, `show ssl ocsp-updates`,
`update ssl ocsp-response <id>` (fetch now; the new staple reaches HAProxy or nginx through
the deliveries like any other), `set ssl ocsp-response` (checked like any staple), `show info`
and `reload` (re-read the configuration) work; the sidecar serves no certificate, server or
traffic, so those lists are empty and `commit ssl cert` is refused.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from staplegate import __version__
from staplegate.config.model import StatsLevel
from staplegate.config.values import parse_socket_address
from staplegate.runtime.contract import (
    CommitError,
    CommitResult,
    CrtListView,
    OcspService,
    ReloadReport,
    ServerView,
    StatRow,
    UnknownServer,
)
from staplegate.runtime.handlers import RuntimeHandlers
from staplegate.runtime.server import Listener, RuntimeServer
from staplegate.sidecar.targets import Discovery

if TYPE_CHECKING:
    from staplegate.certs.model import LoadedCertificate
    from staplegate.deploy.generation import CertificateEntry
    from staplegate.proxy.backends import AdminState


class Sidecar(Protocol):
    """What the view needs of `service.SidecarService` (a Protocol: no import cycle)."""

    @property
    def updater(self) -> OcspService: ...

    @property
    def discovery(self) -> Discovery: ...

    async def reread(self) -> bool: ...


class SidecarRuntime:
    """The sidecar as `runtime.contract.ProcessView`."""

    def __init__(self, service: Sidecar) -> None:
        self._service = service
        self._started = time.monotonic()
        self._last_reload: ReloadReport | None = None

    def ocsp_updater(self) -> OcspService:
        return self._service.updater

    def certificates(self) -> Sequence[CertificateEntry]:
        return ()

    def crt_lists(self) -> Sequence[CrtListView]:
        return ()

    async def commit_certificate(self, name: str, certificate: LoadedCertificate) -> CommitResult:
        raise CommitError(
            "the sidecar serves no certificate: replace the file, and the sidecar picks the new "
            "one up (it watches the files its configuration names)"
        )

    async def reload(self) -> ReloadReport:
        ok = await self._service.reread()
        count = len(self._service.discovery.certificates)
        message = (
            f"configuration re-read: {count} certificate(s) kept stapled"
            if ok
            else "the configuration has errors: the previous certificates are kept"
        )
        self._last_reload = ReloadReport(ok, message)
        return self._last_reload

    def last_reload(self) -> ReloadReport | None:
        return self._last_reload

    def servers(self) -> Sequence[ServerView]:
        return ()

    def set_server_state(self, backend: str, server: str, state: AdminState) -> None:
        raise UnknownServer(f"{backend}/{server}")

    def info(self) -> Mapping[str, str | int]:
        uptime = int(time.monotonic() - self._started)
        return {
            "Name": "staplegate-sidecar",
            "Version": __version__,
            "Pid": os.getpid(),
            "Uptime": f"{uptime // 86400}d {uptime // 3600 % 24}h{uptime // 60 % 60:02d}m"
            f"{uptime % 60:02d}s",
            "Uptime_sec": uptime,
        }

    def stats(self) -> Sequence[StatRow]:
        return ()


def runtime_server(service: Sidecar, path: str) -> RuntimeServer:
    """The `--socket PATH` listener: a Unix socket, level admin, mode 0600 (the sidecar's
    user only: it can change staples)."""
    address = parse_socket_address(path, require_port=False)
    listener = Listener(address=address, level=StatsLevel.ADMIN, mode=0o600)
    return RuntimeServer([listener], RuntimeHandlers(SidecarRuntime(service)))
