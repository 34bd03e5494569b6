"""Access logs: `option httplog` and `option tcplog` lines in HAProxy's default formats.

httplog: `%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc
%ac/%fc/%bc/%sc/%rc %sq/%bq %{+Q}r` (no captures, so no `{}` blocks).
tcplog: `%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq`.
Times are milliseconds, -1 for a phase that never happened; `%ft` ends in `~` on TLS
frontends; `<NOSRV>` stands for no server. Pure: the caller passes the accept date.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from staplegate.clock import Clock

if TYPE_CHECKING:
    from staplegate.proxy.records import ConnectionRecord

_log = logging.getLogger("staplegate.tcp")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def haproxy_date(when: dt.datetime) -> str:
    """`06/Feb/2009:12:14:14.655` in local time, like HAProxy's `%tr` and `%t`."""
    local = when.astimezone()
    return (
        f"{local.day:02d}/{_MONTHS[local.month - 1]}/{local.year:04d}:"
        f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}.{local.microsecond // 1000:03d}"
    )


def _ms(seconds: float | None) -> int:
    return -1 if seconds is None else int(seconds * 1000)


@dataclass(frozen=True)
class LogCounters:
    """`%ac/%fc/%bc/%sc/%rc %sq/%bq` at log time."""

    process: int = 0
    frontend: int = 0
    backend: int = 0
    server: int = 0
    retries: int = 0
    server_queue: int = 0
    backend_queue: int = 0

    def render(self) -> str:
        return (
            f"{self.process}/{self.frontend}/{self.backend}/{self.server}/{self.retries} "
            f"{self.server_queue}/{self.backend_queue}"
        )


@dataclass(frozen=True)
class HttpLogRecord:
    """One request's line; times in seconds (None = did not happen)."""

    client: tuple[str, int]
    received_at: dt.datetime
    frontend: str
    tls: bool
    backend: str
    server: str | None
    request_s: float | None  # %TR: first byte to complete head
    queue_s: float | None  # %Tw
    connect_s: float | None  # %Tc
    response_s: float | None  # %Tr: request sent to response head
    active_s: float  # %Ta
    status: int
    bytes_out: int
    termination: str  # %tsc, four characters
    counters: LogCounters
    request_line: str | None  # None for <BADREQ>

    def render(self) -> str:
        frontend = self.frontend + ("~" if self.tls else "")
        request = f'"{self.request_line}"' if self.request_line is not None else '"<BADREQ>"'
        return (
            f"{self.client[0]}:{self.client[1]} [{haproxy_date(self.received_at)}] {frontend} "
            f"{self.backend}/{self.server or '<NOSRV>'} "
            f"{_ms(self.request_s)}/{_ms(self.queue_s)}/{_ms(self.connect_s)}/"
            f"{_ms(self.response_s)}/{_ms(self.active_s)} "
            f"{self.status} {self.bytes_out} - - {self.termination} "
            f"{self.counters.render()} {request}"
        )


@dataclass(frozen=True)
class TcpLogRecord:
    """One connection's tcplog line."""

    client: tuple[str, int]
    accepted_at: dt.datetime
    frontend: str
    tls: bool
    backend: str | None
    server: str | None
    queue_s: float | None
    connect_s: float | None
    total_s: float
    bytes_out: int
    termination: str  # %ts, two characters
    counters: LogCounters

    def render(self) -> str:
        frontend = self.frontend + ("~" if self.tls else "")
        return (
            f"{self.client[0]}:{self.client[1]} [{haproxy_date(self.accepted_at)}] {frontend} "
            f"{self.backend or self.frontend}/{self.server or '<NOSRV>'} "
            f"{_ms(self.queue_s)}/{_ms(self.connect_s)}/{_ms(self.total_s)} "
            f"{self.bytes_out} {self.termination} {self.counters.render()}"
        )


def tcplog_writer(
    clock: Clock, log_line: Callable[[str], None] | None = None
) -> Callable[[ConnectionRecord], None]:
    """A `FrontendRuntime(log=...)` callable writing one tcplog line per closed connection."""
    emit = log_line or (lambda line: _log.info("%s", line))

    def write(record: ConnectionRecord) -> None:
        accepted = clock.now() - dt.timedelta(seconds=record.duration_s)
        line = TcpLogRecord(
            client=record.client_address,
            accepted_at=accepted,
            frontend=record.frontend,
            tls=record.tls_bind,
            backend=record.backend,
            server=record.server,
            queue_s=record.queue_s,
            connect_s=record.connect_s,
            total_s=record.duration_s,
            bytes_out=record.bytes_to_client,
            termination=record.termination.value,
            counters=LogCounters(),
        )
        emit(line.render())

    return write
