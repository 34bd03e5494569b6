"""What the sidecar's readers find and where its staples go: the shared vocabulary.

A configuration reader (HAProxy's, nginx's) turns someone else's configuration into a
`Discovery`; the service runs staplegate's updater over its certificates and hands every
change of the staple table to each `Delivery` (HAProxy's stats socket, `.ocsp` files, nginx's
`ssl_stapling_file`s plus a reload). Only verified staples ever reach a delivery: the table
holds nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from staplegate.config.model import GlobalSettings
from staplegate.ocsp.certid import CertId
from staplegate.updater.crl_watch import CrlTarget
from staplegate.updater.driver import UpdaterEntry


@dataclass(frozen=True)
class SidecarCertificate:
    """One certificate the sidecar keeps stapled, found in someone else's configuration."""

    entry: UpdaterEntry
    """What the updater manages (`uri` is already the responder override, if any)."""
    cert_id: CertId
    """The CertId of `entry.certificate` issued by `entry.issuer` (SHA-1, as the servers use)."""
    source: str
    """`file:line` of the configuration line that names the certificate."""
    ocsp_file: Path | None
    """Where a staple file is kept (HAProxy: `<cert>.ocsp`; nginx: `ssl_stapling_file`)."""


@dataclass(frozen=True)
class SkippedCertificate:
    """A certificate the configuration names that the sidecar does not keep stapled."""

    name: str
    """The certificate file (or store name) as the configuration names it."""
    source: str
    """`file:line` of the configuration line that names it."""
    uri: str | None
    """Its OCSP URI, if it has one."""
    reason: str
    """Why it is not updated: "no OCSP URI", "ocsp-update off", "no issuer found ..."."""


@dataclass(frozen=True)
class Discovery:
    """Everything one reading of a configuration found."""

    certificates: tuple[SidecarCertificate, ...]
    """The certificates the sidecar keeps stapled (their `entry.auto_update` is True)."""
    messages: tuple[str, ...] = ()
    """`[WARNING]`/`[NOTICE]` lines for the operator, each naming file:line."""
    errors: tuple[str, ...] = ()
    """`[ALERT]` lines: `sidecar -c` exits 1 when there is any; the service refuses to start
    (or, on a re-read, keeps the previous discovery)."""

    skipped: tuple[SkippedCertificate, ...] = ()
    """Certificates found but not updated, for `sidecar -c`'s listing."""
    settings: GlobalSettings = field(default_factory=GlobalSettings)
    """The OCSP settings that apply (`ocsp-update.*`, `httpclient.*`; HAProxy: its `global`
    section; nginx: the defaults); `--extra-config` may extend them."""

    crl_targets: tuple[CrlTarget, ...] = ()
    """Certificates whose CRL the updater's watch follows (`ocsp-update.crl-watch`, from
    `--extra-config`; default: those with a CRL distribution point and no OCSP URL)."""
    files: tuple[str, ...] = ()
    """The files this reading depended on (configurations, crt-lists, certificates, issuer
    files; never the staple files the sidecar writes): the service re-reads the
    configuration when one of them changes, so a renewed certificate is picked up."""

    @property
    def ok(self) -> bool:
        return not self.errors


class Delivery(Protocol):
    """Where verified staples go: HAProxy's socket, `.ocsp` files, nginx's files + reload.

    The service calls `deliver` after every change of the updater's staple table, one call at
    a time per delivery (never concurrently), on the service's event loop:

    - `changed`: CertId -> DER of every staple that is new or replaced (a revoked answer is a
      staple too: it is the truth). The first call after the delivery is built carries the
      whole table, so `deliver` must be cheap for a DER it already delivered (compare first).
    - `removed`: CertIds whose staple was withdrawn (expired: nextUpdate - 300 s passed) or
      whose certificate left the configuration; nothing may keep serving them (HAProxy: delete
      the `.ocsp` file; nginx: a harmless placeholder + reload).

    CertIds the delivery does not know (not among the certificates it was built with) are
    ignored. `deliver` must not raise for an I/O failure: it logs one line and retries later
    itself (a later `deliver` or its own timer); it must not block the loop for long.
    `close` stops its timers/connections (after a last flush if it has pending work) and is
    called on stop and before a re-read replaces it with a new delivery.
    """

    async def deliver(self, changed: Mapping[CertId, bytes], removed: Sequence[CertId]) -> None: ...

    async def close(self) -> None: ...


class Reloader(Protocol):
    """Runs the operator's `--reload-cmd` once per batch of changes (sidecar/reload_command.py)."""

    def request(self) -> None:
        """Ask for a reload soon (debounced and rate-limited; never blocks, never raises)."""

    async def close(self) -> None:
        """Run a pending reload now (bounded by its timeout), then stop."""


#: Reads the configuration (again) from disk: the service calls it at start and on every
#: SIGHUP/SIGUSR2, in a thread (it reads files). It never raises for bad input: problems go
#: into `Discovery.errors`/`messages`.
Reader = Callable[[], Discovery]

#: Builds the deliveries for one discovery (the CLI closes over its options and the one
#: long-lived `Reloader`, if any). Called at start and after every successful re-read; the
#: previous deliveries are closed first.
DeliveryFactory = Callable[[Discovery], Sequence[Delivery]]
