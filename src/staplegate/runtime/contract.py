"""What the runtime API needs from the running process: `ProcessView` and `OcspService`.

The master implements them (`process/runtime_view.py`; `updater.service.OcspUpdater` is the
OCSP service); integration tests assemble one from real parts, unit tests use small in-memory
fakes of these protocols (tests/unit/runtime/test_handlers.py). The handlers only read through
them and ask them to change things; they never reach into workers or the data plane. Keep them
narrow: every method here is used by a command in handlers.py.

The module is the runtime API's side of the contract with the process (not a proxy backend,
hence the name). Views are plain frozen values so an implementation can build them from
whatever it holds; helpers at the bottom build the config-derived ones
(`crt_lists_from_config`) so every implementation lists crt-lists the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from staplegate.certs import LoadedCertificate
from staplegate.config.model import CertSourceKind, Config, CrtListEntry
from staplegate.deploy.generation import CertificateEntry
from staplegate.ocsp.certid import CertId
from staplegate.proxy.backends import AdminState
from staplegate.updater.crl_watch import CrlSource
from staplegate.updater.results import (
    EntrySnapshot,
    SetOutcome,
    SharedStoreState,
    UpdateOutcome,
)
from staplegate.updater.timing import DurationHistogram


@dataclass(frozen=True)
class ServerView:
    """One server for `show servers state` and `show stat`."""

    backend: str
    backend_id: int
    name: str
    server_id: int
    address: str
    port: int
    up: bool
    admin: AdminState
    weight: int = 1
    check: bool = False
    rise: int = 2
    fall: int = 3
    last_change: dt.datetime | None = None


@dataclass(frozen=True)
class StatRow:
    """One `show stat` line: HAProxy field name -> value (absent or None = empty field).

    `certificates` names the certificate stores a FRONTEND row serves, so the handler can add
    our OCSP columns for it; `handshakes` counts a FRONTEND's TLS handshakes by stapling
    outcome (`sent`, `none`, `not_requested`), for metrics.
    """

    fields: Mapping[str, str | int | None]
    certificates: tuple[str, ...] = ()
    handshakes: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CrtListLine:
    """One entry of a crt-list (or one file of a `crt` directory)."""

    store: str
    line: int
    options: tuple[str, ...]
    sni_filters: tuple[str, ...]
    uses_store_keywords: bool = False


@dataclass(frozen=True)
class CrtListView:
    """A crt-list file or certificate directory as `show ssl crt-list` names it."""

    name: str
    lines: tuple[CrtListLine, ...]


@dataclass(frozen=True)
class CommitResult:
    """What `commit ssl cert` reports: TLS instances rebuilt (one `.` each), warnings."""

    instances: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReloadReport:
    """The outcome of a configuration reload, for `reload` and `show reload`."""

    ok: bool
    message: str
    lines: tuple[str, ...] = ()


class CommitError(Exception):
    """The process could not put a committed certificate in service; the text says why."""


class UnknownServer(LookupError):
    """No such backend or server; the message is HAProxy's answer."""


class OcspService(Protocol):
    """What the OCSP commands use of the updater (`updater.service.OcspUpdater` is one).

    Called on the loop running the updater, after it started.
    """

    @property
    def table(self) -> Mapping[CertId, bytes]:
        """The staples being served now, by CertId."""
        ...

    @property
    def update_wait(self) -> float:
        """Seconds `update_now` waits by default (longer than a fetch may take)."""
        ...

    def snapshot(self) -> Sequence[EntrySnapshot]:
        """Every OCSP entry in configuration order (one per CertId)."""
        ...

    def find(self, name: str) -> CertId | None:
        """The CertId configured under file `name` (any of its paths) or CertId hex `name`."""
        ...

    async def update_now(self, cert_id: CertId, *, timeout: float | None = None) -> UpdateOutcome:
        """Fetch at once and report how the attempt ended (or that it is still running)."""
        ...

    def set_response(self, der: bytes) -> SetOutcome:
        """Install an operator's DER response for the certificate it names, if it verifies."""
        ...

    def crl_sources(self) -> Sequence[CrlSource]:
        """Every CRL URL the CRL watch follows, with its certificates' verdicts."""
        ...

    def shared_store(self) -> SharedStoreState | None:
        """The fleet's Redis store (`ocsp-update.shared-store`), or None when not used."""
        ...

    def fetch_durations(self) -> Mapping[str, DurationHistogram]:
        """How long OCSP fetches took, per responder URL, since the master started."""
        ...

    async def update_crl(self, name: str, *, timeout: float) -> CrlSource | None:
        """Fetch the CRL named by URL or certificate path now; None when none is watched."""
        ...


class ProcessView(Protocol):
    """The running process as the runtime API sees it (see the module docstring)."""

    def ocsp_updater(self) -> OcspService:
        """The master's OCSP updater (running: its `started` event is set)."""
        ...

    def certificates(self) -> Sequence[CertificateEntry]:
        """Every configured certificate store, in configuration order, as served now."""
        ...

    def crt_lists(self) -> Sequence[CrtListView]:
        """Every crt-list and certificate directory; `crt_lists_from_config` builds them."""
        ...

    async def commit_certificate(self, name: str, certificate: LoadedCertificate) -> CommitResult:
        """Serve `certificate` as store `name` from now on, in every worker, for new
        handshakes, and re-key OCSP: the old CertId is retired (its staple withdrawn at once),
        the new one gets an entry that starts from `certificate.ocsp` (verified) or fetches.
        Raise CommitError when that is impossible; the old certificate then stays in service.
        """
        ...

    async def reload(self) -> ReloadReport:
        """Reload the configuration (as SIGUSR2 does) and report how it went."""
        ...

    def last_reload(self) -> ReloadReport | None:
        """The most recent reload's outcome, None when there was none."""
        ...

    def servers(self) -> Sequence[ServerView]: ...

    def set_server_state(self, backend: str, server: str, state: AdminState) -> None:
        """Raise UnknownServer when there is no such backend/server."""
        ...

    def info(self) -> Mapping[str, str | int]:
        """`show info` values by HAProxy field name (fields left out are not printed)."""
        ...

    def stats(self) -> Sequence[StatRow]:
        """`show stat` rows in HAProxy order (frontends, then each backend's servers and
        its BACKEND row)."""
        ...


# --- helpers for backends -----------------------------------------------------------------


def crt_lists_from_config(config: Config) -> tuple[CrtListView, ...]:
    """The crt-lists and `crt` directories of `config`'s bind lines, each once, by name."""
    views: dict[str, CrtListView] = {}
    for frontend in config.frontends:
        for bind in frontend.binds:
            for source in bind.cert_sources:
                if source.kind is CertSourceKind.CRT_LIST and source.crt_list is not None:
                    name = source.crt_list.path.rstrip("/") or "/"
                    views.setdefault(
                        name,
                        CrtListView(
                            name,
                            tuple(
                                _crt_list_line(entry, number)
                                for number, entry in enumerate(source.crt_list.entries, 1)
                            ),
                        ),
                    )
                elif source.kind is CertSourceKind.DIRECTORY:
                    name = source.path.rstrip("/") or "/"
                    views.setdefault(
                        name,
                        CrtListView(
                            name,
                            tuple(
                                CrtListLine(path, number, (), ())
                                for number, path in enumerate(source.directory_files, 1)
                            ),
                        ),
                    )
    return tuple(sorted(views.values(), key=lambda view: view.name))


def _crt_list_line(entry: CrtListEntry, number: int) -> CrtListLine:
    """HAProxy's option order (ssl_crtlist.c dump_crtlist_conf), then `ocsp-update`."""
    options: list[str] = []
    if entry.alpn is not None:
        options.append("alpn " + ",".join(entry.alpn) if entry.alpn else "no-alpn")
    if entry.verify is not None:
        options.append(f"verify {entry.verify.value}")
    if entry.ca_file is not None:
        options.append(f"ca-file {entry.ca_file}")
    if entry.ciphers is not None:
        options.append(f"ciphers {entry.ciphers}")
    if entry.ciphersuites is not None:
        options.append(f"ciphersuites {entry.ciphersuites}")
    if entry.ssl_min_ver is not None:
        options.append(f"ssl-min-ver {entry.ssl_min_ver.value}")
    if entry.ssl_max_ver is not None:
        options.append(f"ssl-max-ver {entry.ssl_max_ver.value}")
    if entry.ocsp_update is not None:
        options.append("ocsp-update on" if entry.ocsp_update else "ocsp-update off")
    line = entry.location.line if entry.location.line > 0 else number
    return CrtListLine(
        entry.crt_path,
        line,
        tuple(options),
        entry.sni_filters,
        uses_store_keywords=entry.uses_store_keywords,
    )
