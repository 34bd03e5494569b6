"""Send log records to the global `log` targets in HAProxy's formats, without ever blocking.

Each `log` line of the configuration becomes one `SyslogTarget`: a destination (stdout,
stderr, a Unix datagram socket such as /dev/log, or UDP syslog), a facility, a maximum and
optional minimum severity, a maximum length and a format (`raw`, `short`, `rfc3164`,
`rfc5424`, `timed`, `iso`, `priority`, `local`). Records pass through a bounded queue to one
writer thread, so a slow or vanished destination costs the event loop nothing: when the queue
is full the record is dropped and counted. Datagram sockets are non-blocking and drop on
EAGAIN, like HAProxy.
"""

from __future__ import annotations

import datetime as dt
import logging
import logging.handlers
import os
import queue
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

NOTICE = 25
ALERT = 55
logging.addLevelName(NOTICE, "NOTICE")
logging.addLevelName(ALERT, "ALERT")

SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
    "uucp", "cron", "auth2", "ftp", "ntp", "audit", "alert", "cron2",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
FORMATS = ("raw", "short", "rfc3164", "rfc5424", "timed", "iso", "priority", "local")


def severity_of(levelno: int) -> int:
    """Python level -> syslog severity number (0 emerg .. 7 debug)."""
    if levelno >= ALERT:
        return 1
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= NOTICE:
        return 5
    if levelno >= logging.INFO:
        return 6
    return 7


@dataclass(frozen=True)
class SyslogTarget:
    """Where and how to send: one `log` line."""

    kind: str  # "stdout", "stderr", "unix", "udp"
    address: str | tuple[str, int] | None
    facility: str = "local0"
    max_level: str = "debug"
    min_level: str = "emerg"
    length: int = 1024
    format: str = "rfc3164"
    tag: str = "staplegate"

    def accepts(self, severity: int) -> bool:
        return SEVERITIES.index(self.min_level) <= severity <= SEVERITIES.index(self.max_level)


def format_line(
    target: SyslogTarget, message: str, severity: int, when: dt.datetime, host: str, pid: int
) -> str:
    """One log line in the target's format, truncated to its `len` (HAProxy's rules)."""
    pri = f"<{FACILITIES.index(target.facility) * 8 + severity}>"
    fmt = target.format
    if fmt == "raw":
        line = message
    elif fmt in ("short", "priority"):
        line = f"{pri}{message}"
    elif fmt == "timed":
        line = f"{pri}{when:%b %d %H:%M:%S} {message}"
    elif fmt == "iso":
        line = f"{pri}{when.isoformat(timespec='microseconds')} {message}"
    elif fmt == "local":
        line = f"{pri}{when:%b %d %H:%M:%S} {target.tag}[{pid}]: {message}"
    elif fmt == "rfc5424":
        stamp = when.isoformat(timespec="microseconds")
        line = f"{pri}1 {stamp} {host} {target.tag} {pid} - - {message}"
    else:  # rfc3164
        line = f"{pri}{when:%b %e %H:%M:%S} {host} {target.tag}[{pid}]: {message}"
    return line[: target.length]


class _Destination:
    """An open output for one target; writes never block for long and never raise."""

    def __init__(self, target: SyslogTarget) -> None:
        self.target = target
        self._stream: TextIO | None = None
        self._socket: socket.socket | None = None
        if target.kind == "stdout":
            self._stream = sys.stdout
        elif target.kind == "stderr":
            self._stream = sys.stderr
        elif target.kind == "unix":
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
        elif target.kind == "udp":
            assert isinstance(target.address, tuple)
            family = socket.AF_INET6 if ":" in target.address[0] else socket.AF_INET
            self._socket = socket.socket(family, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
        self.dropped = 0

    def write(self, line: str) -> None:
        try:
            if self._stream is not None:
                self._stream.write(line + "\n")
                self._stream.flush()
            elif self._socket is not None and self.target.address is not None:
                self._socket.sendto(line.encode("utf-8", "replace"), self.target.address)
        except (OSError, ValueError):
            self.dropped += 1

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """A QueueHandler that drops (and counts) records when its bounded queue is full."""

    dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


class _TargetsHandler(logging.Handler):
    """Runs on the writer thread: formats each record once per target and writes it."""

    def __init__(self, targets: Sequence[SyslogTarget]) -> None:
        super().__init__()
        self._destinations = [_Destination(t) for t in targets]
        self._host = socket.gethostname()
        self._pid = os.getpid()

    def emit(self, record: logging.LogRecord) -> None:
        severity = severity_of(record.levelno)
        when = dt.datetime.fromtimestamp(record.created).astimezone()
        message = record.getMessage()
        for destination in self._destinations:
            if destination.target.accepts(severity):
                line = format_line(
                    destination.target, message, severity, when, self._host, self._pid
                )
                destination.write(line)

    def close(self) -> None:
        for destination in self._destinations:
            destination.close()
        super().close()


class LogRouter:
    """Installs the non-blocking handler on the `staplegate` logger; `close()` flushes."""

    def __init__(self, targets: Sequence[SyslogTarget], *, queue_size: int = 10_000) -> None:
        self._queue: queue.Queue[logging.LogRecord] = queue.Queue(queue_size)
        self._handler = _DroppingQueueHandler(self._queue)
        self._targets_handler = _TargetsHandler(targets)
        self._listener = logging.handlers.QueueListener(
            self._queue, self._targets_handler, respect_handler_level=False
        )
        self._lock = threading.Lock()
        self._started = False

    @property
    def dropped(self) -> int:
        return self._handler.dropped

    def install(self, logger: logging.Logger) -> None:
        with self._lock:
            if not self._started:
                self._listener.start()
                self._started = True
        logger.addHandler(self._handler)

    def uninstall(self, logger: logging.Logger) -> None:
        logger.removeHandler(self._handler)

    def close(self) -> None:
        with self._lock:
            if self._started:
                self._listener.stop()
                self._started = False
        self._targets_handler.close()
