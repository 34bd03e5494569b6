"""Send log records to the global `log` targets in HAProxy's formats, without ever blocking.

Each `log` line of the configuration becomes one `SyslogTarget`: a destination (stdout,
stderr, a Unix datagram socket such as /dev/log, or UDP syslog), a facility, a maximum and
optional minimum severity, a maximum length and a format (`raw`, `short`, `rfc3164`,
`rfc5424`, `timed`, `iso`, `priority`, `local`).

Theory of operation. The event loop only ever does `queue.put_nowait`: records pass through a
bounded queue to one writer thread, and when the queue is full the record is dropped and
counted. The writer thread itself never blocks for long either, so stopping is always quick:
datagram sockets are non-blocking and drop on EAGAIN (as HAProxy does); stdout/stderr are
written only when `poll` says the descriptor can take the bytes (a pipe nobody drains costs at
most `stream_wait` seconds per line, then lines are dropped and counted). A line is built as
HAProxy's `build_log_header` builds it (log.c), truncated to `len - 1` bytes, and ends with
`\\n` on every target, datagrams included.

Level rules are HAProxy's: a record above the target's maximum level is not sent; one more
severe than the optional minimum level is sent *with* the minimum level (it caps, it does not
filter). Divergence: the rfc3164/rfc5424 hostname field is always this host's name
(`log-send-hostname` is ignored by the configuration), where HAProxy writes `localhost`/`-`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import select
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

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

#: Bytes a pipe accepts atomically once poll() reports it writable (POSIX PIPE_BUF).
_PIPE_BUF = select.PIPE_BUF


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

    def __post_init__(self) -> None:
        if self.facility not in FACILITIES:
            raise ValueError(f"unknown log facility {self.facility!r}")
        for level in (self.max_level, self.min_level):
            if level not in SEVERITIES:
                raise ValueError(f"unknown log level {level!r}")
        if self.format not in FORMATS:
            raise ValueError(f"unknown log format {self.format!r}")
        if self.length < 2:
            raise ValueError("log len must leave room for at least one byte and the newline")

    def accepts(self, severity: int) -> bool:
        """HAProxy sends a record unless it is less severe than the maximum level."""
        return severity <= SEVERITIES.index(self.max_level)

    def effective_severity(self, severity: int) -> int:
        """A record more severe than the minimum level is sent at the minimum level."""
        return max(severity, SEVERITIES.index(self.min_level))

    @property
    def socket_path(self) -> str | None:
        """The Unix socket path of a `unix` target (`unix@/dev/log` and `/dev/log` alike)."""
        if self.kind != "unix" or not isinstance(self.address, str):
            return None
        return self.address.removeprefix("unix@")


def format_line(
    target: SyslogTarget, message: str, severity: int, when: dt.datetime, host: str, pid: int
) -> str:
    """Header and message in the target's format (HAProxy's build_log_header), untruncated.

    `severity` is the record's; the target's minimum level is applied here. `when` should be
    local time (HAProxy logs local time); ISO stamps carry its UTC offset.
    """
    level = target.effective_severity(severity)
    pri = f"<{FACILITIES.index(target.facility) * 8 + level}>"
    legacy = f"{when:%b} {when.day:2d} {when:%H:%M:%S}"
    iso = when.isoformat(timespec="microseconds")
    fmt = target.format
    if fmt == "raw":
        return message
    if fmt == "short":
        return f"<{level}>{message}"
    if fmt == "priority":
        return f"{pri}{message}"
    if fmt == "timed":
        return f"<{level}>{iso} {message}"
    if fmt == "iso":
        return f"{iso} {message}"
    if fmt == "local":
        return f"{pri}{legacy} {target.tag}[{pid}]: {message}"
    if fmt == "rfc5424":
        return f"{pri}1 {iso} {host} {target.tag} {pid} - - {message}"
    return f"{pri}{legacy} {host} {target.tag}[{pid}]: {message}"  # rfc3164


def frame_line(target: SyslogTarget, line: str) -> bytes:
    """The bytes sent: the line cut to `len - 1` bytes, then `\\n` (HAProxy's maxlen rule)."""
    data = line.replace("\n", " ").encode("utf-8", "replace")
    return data[: target.length - 1] + b"\n"


class _Destination:
    """An open output for one target; writes never block for long and never raise."""

    def __init__(self, target: SyslogTarget, *, stream_wait: float) -> None:
        self.target = target
        self.dropped = 0
        self.sent = 0
        self.stream_wait = stream_wait
        self._fd: int | None = None
        self._poll: select.poll | None = None
        self._socket: socket.socket | None = None
        self._address: str | tuple[str, int] | None = None
        if target.kind in ("stdout", "stderr"):
            stream = sys.stdout if target.kind == "stdout" else sys.stderr
            try:
                self._fd = stream.fileno()
            except (AttributeError, OSError, ValueError):
                self._fd = None  # no real descriptor (e.g. captured): every line is dropped
            if self._fd is not None:
                self._poll = select.poll()
                self._poll.register(self._fd, select.POLLOUT)
        elif target.kind == "unix":
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
            self._address = target.socket_path
        elif target.kind == "udp":
            assert isinstance(target.address, tuple)
            family = socket.AF_INET6 if ":" in target.address[0] else socket.AF_INET
            self._socket = socket.socket(family, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
            self._address = target.address

    def write(self, data: bytes) -> None:
        try:
            if self._socket is not None and self._address is not None:
                self._socket.sendto(data, self._address)
            elif self._fd is not None:
                self._write_stream(data)
            else:
                raise OSError("no destination")
        except OSError:
            self.dropped += 1
        else:
            self.sent += 1

    def _write_stream(self, data: bytes) -> None:
        """Write only what poll() says fits (a pipe takes PIPE_BUF bytes without blocking)."""
        assert self._fd is not None
        assert self._poll is not None
        view = memoryview(data)
        while view:
            if not self._poll.poll(int(self.stream_wait * 1000)):
                raise BlockingIOError("stream not writable")
            written = os.write(self._fd, view[:_PIPE_BUF])
            view = view[written:]

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()


_STOP = object()


class _Writer:
    """The writer thread: formats each record once per target and writes it."""

    def __init__(self, targets: Sequence[SyslogTarget], *, stream_wait: float) -> None:
        self.destinations = [_Destination(t, stream_wait=stream_wait) for t in targets]
        self._host = socket.gethostname()
        self._pid = os.getpid()

    def emit(self, record: logging.LogRecord) -> None:
        severity = severity_of(record.levelno)
        when = dt.datetime.fromtimestamp(record.created).astimezone()
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format in a log call must not kill the writer
            message = f"{record.msg!r} (unformattable arguments)"
        for destination in self.destinations:
            target = destination.target
            if target.accepts(severity):
                line = format_line(target, message, severity, when, self._host, self._pid)
                destination.write(frame_line(target, line))

    def close(self) -> None:
        for destination in self.destinations:
            destination.close()


class _EnqueueHandler(logging.Handler):
    """The only code the event loop runs per record: a non-blocking put, or a counted drop."""

    def __init__(self, records: queue.Queue[object]) -> None:
        super().__init__()
        self._records = records
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._records.put_nowait(record)
        except queue.Full:
            self.dropped += 1


class LogRouter:
    """Installs the non-blocking handler on the `staplegate` logger; `close()` flushes.

    `stream_wait` bounds how long the writer thread waits for stdout/stderr to accept a line
    before dropping it.
    """

    def __init__(
        self,
        targets: Sequence[SyslogTarget],
        *,
        queue_size: int = 10_000,
        stream_wait: float = 0.1,
    ) -> None:
        self._queue: queue.Queue[object] = queue.Queue(queue_size)
        self._handler = _EnqueueHandler(self._queue)
        self._writer = _Writer(targets, stream_wait=stream_wait)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def dropped(self) -> int:
        """Lines lost so far: queue full, plus per-target write failures (EAGAIN, full pipe)."""
        return self._handler.dropped + sum(d.dropped for d in self._writer.destinations)

    @property
    def queue_dropped(self) -> int:
        """Records dropped before formatting because the writer thread was behind."""
        return self._handler.dropped

    @property
    def sent(self) -> int:
        """Lines written to targets (one record to two targets counts twice)."""
        return sum(d.sent for d in self._writer.destinations)

    def install(self, logger: logging.Logger) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("LogRouter is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="staplegate-log-writer", daemon=True
                )
                self._thread.start()
        logger.addHandler(self._handler)

    def uninstall(self, logger: logging.Logger) -> None:
        logger.removeHandler(self._handler)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, logging.LogRecord):
                self._writer.emit(item)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (quickly: a stuck stream drops at once), then stop.

        When lines were dropped, one `[WARNING] ... log line(s) dropped` goes to stderr.
        """
        with self._lock:
            thread, self._thread = self._thread, None
            self._closed = True
        if thread is not None:
            for destination in self._writer.destinations:
                destination.stream_wait = 0.0
            while True:
                try:
                    self._queue.put_nowait(_STOP)
                    break
                except queue.Full:
                    try:
                        self._queue.get_nowait()
                        self._handler.dropped += 1
                    except queue.Empty:
                        pass
            thread.join(timeout)
        self._writer.close()
        if self.dropped:
            _report_drops(self.dropped)


def _report_drops(count: int) -> None:
    """Say on stderr, once at exit, that lines were lost; never wait for a stuck stderr."""
    message = (
        f"[WARNING] staplegate: {count} log line(s) dropped: a log target was too slow or "
        "gone (see the `log` lines of the configuration)\n"
    ).encode()
    try:
        fd = sys.stderr.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        if poller.poll(0):
            os.write(fd, message[:_PIPE_BUF])
    except (AttributeError, OSError, ValueError):
        pass
