"""The stats-socket server: Unix and TCP listeners speaking HAProxy's runtime-API framing.

Theory of operation. Each `Listener` (one `stats socket` line) has its own access level. A
connection's bytes go through a `grammar.Framer`; each complete line's commands run in order through
`RuntimeHandlers`, and every answer is written followed by the end-of-answer newline (HAProxy's: an
empty line is how clients see where an answer ends; there is no status code). Without `prompt` the
connection closes after the first line's answers, as HAProxy does; `prompt` toggles interactive mode
(a `> ` prompt after each line, the connection stays open until `quit`, EOF or the idle timeout). A
line or payload over the caps gets an error answer and the connection is closed; so does a `<<` line
whose payload the socket's level may not send (the payload is never read). A client that vanishes
costs its own task only: write errors end that connection, nothing else.

Limits, as HAProxy's CLI frontend ("GLOBAL") applies them: at most `stats maxconn`
connections (default 10) are served at once over all sockets, and a socket's own `maxconn`
caps it further. A connection over the limit is not accepted: it waits in the kernel's
accept queue until a slot frees, as HAProxy stops polling a full listener. `stats timeout`
(default 10 s) closes a connection that neither sends nor takes bytes for that long.

Unix sockets are created under a temporary name, given their mode (default 0600) and
owner, then renamed over the configured path, so the path never exists with looser
permissions. A stale socket file left by a dead process is replaced; a path held by a live
server, or a file that is not a socket, is an error. `close()` stops accepting, ends open
connections and removes the socket files it created.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from staplegate.config.model import GlobalSettings, StatsLevel
from staplegate.config.values import AddressFamily, SocketAddress
from staplegate.runtime.grammar import (
    MAX_LINE,
    MAX_PAYLOAD,
    Command,
    CommandName,
    Framer,
    PayloadRefused,
    Request,
    TooLong,
    UsageError,
)
from staplegate.runtime.handlers import PERMISSION_DENIED, RuntimeHandlers

log = logging.getLogger("staplegate.runtime")

DEFAULT_MODE = 0o600
#: Seconds a connection may stay silent (HAProxy's `stats timeout` default is 10 s).
IDLE_TIMEOUT = 10.0
#: Connections served at once over every socket (HAProxy's `stats maxconn` default).
DEFAULT_MAXCONN = 10
PROMPT = "> "
#: Bytes read at a time, and the stream's buffer limit: small, because up to `maxconn`
#: connections hold this much each (a 1 MiB payload still arrives in a few milliseconds).
READ_SIZE = 16 * 1024
#: Pause before accepting again when the process is out of descriptors (HAProxy: 100 ms).
_ACCEPT_RETRY = 0.1
_ACCEPT_TRANSIENT = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class RuntimeServerError(Exception):
    """A listener could not be opened; the message names it and says what to do."""


@dataclass(frozen=True)
class Listener:
    """One runtime-API socket: where, at which level, its own connection cap, and (Unix) its
    file mode and owner."""

    address: SocketAddress
    level: StatsLevel = StatsLevel.OPERATOR
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    maxconn: int | None = None
    """`stats socket ... maxconn N`: this socket's cap under the global one (None: only that)."""

    @property
    def is_unix(self) -> bool:
        return self.address.family is AddressFamily.UNIX


@dataclass(frozen=True)
class Limits:
    """The `global` limits of the runtime API (`stats maxconn`, `stats timeout`)."""

    maxconn: int = DEFAULT_MAXCONN
    timeout: float = IDLE_TIMEOUT


def listeners_from_config(settings: GlobalSettings) -> tuple[Listener, ...]:
    """The `stats socket` lines of `global` as listeners (HAProxy's default level: operator)."""
    return tuple(
        Listener(
            address=item.address,
            level=item.level,
            mode=item.mode,
            uid=item.uid,
            gid=item.gid,
            maxconn=item.maxconn,
        )
        for item in settings.stats_sockets
    )


def limits_from_config(settings: GlobalSettings) -> Limits:
    """`stats maxconn` and `stats timeout` of `global`, HAProxy's defaults when absent."""
    timeout_ms = settings.stats_timeout_ms
    return Limits(
        maxconn=settings.stats_maxconn,
        timeout=IDLE_TIMEOUT if timeout_ms is None else timeout_ms / 1000,
    )


class RuntimeServer:
    """Serves the runtime API on every listener; `start()`, then `close()`."""

    def __init__(
        self,
        listeners: Sequence[Listener],
        handlers: RuntimeHandlers,
        *,
        limits: Limits | None = None,
        idle_timeout: float | None = None,
        max_line: int | None = None,
        max_payload: int | None = None,
    ) -> None:
        limits = limits or Limits()
        self._listeners = tuple(listeners)
        self._handlers = handlers
        self._idle_timeout = limits.timeout if idle_timeout is None else idle_timeout
        self._slots = asyncio.Semaphore(limits.maxconn)
        self._max_line = MAX_LINE if max_line is None else max_line
        self._max_payload = MAX_PAYLOAD if max_payload is None else max_payload
        self._sockets: list[socket.socket] = []
        self._acceptors: set[asyncio.Task[None]] = set()
        self._created: list[tuple[Path, int]] = []  # socket files we own (path, inode)
        self._connections: set[asyncio.Task[None]] = set()
        self.started = asyncio.Event()
        self.bound: list[str] = []
        """Where each listener listens, in order (a path, or `host:port` with the real port)."""

    async def start(self) -> None:
        """Open every listener; on failure close those already open and raise."""
        try:
            for listener in self._listeners:
                self._open(listener)
        except BaseException:
            await self.close()
            raise
        self.started.set()

    def _open(self, listener: Listener) -> None:
        if listener.is_unix:
            path = Path(listener.address.host)
            sock = _unix_socket(path, listener)
            self._created.append((path, path.stat().st_ino))
            self.bound.append(str(path))
        else:
            sock = _tcp_socket(listener)
            host, port = sock.getsockname()[:2]
            self.bound.append(f"{host}:{port}")
        self._sockets.append(sock)
        own = asyncio.Semaphore(listener.maxconn) if listener.maxconn is not None else None
        task = asyncio.create_task(self._accept(sock, listener, own))
        self._acceptors.add(task)

    async def _accept(
        self, sock: socket.socket, listener: Listener, own: asyncio.Semaphore | None
    ) -> None:
        """Accept a waiting client once a slot is free; until then it stays in the queue.

        A slot is taken only when a client is waiting, so an idle socket holds none.
        """
        loop = asyncio.get_running_loop()
        while True:
            await _readable(loop, sock)
            if own is not None:
                await own.acquire()  # the socket's own slot first: waiting on it holds no
            await self._slots.acquire()  # global slot another socket could use
            try:
                connection, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                self._release(own)  # the client gave up while it waited
                continue
            except OSError as exc:
                self._release(own)
                if exc.errno in _ACCEPT_TRANSIENT:
                    log.warning("runtime API: cannot accept a connection (%s)", exc.strerror)
                    await asyncio.sleep(_ACCEPT_RETRY)
                continue  # ECONNABORTED and the like: that client is gone already
            task = asyncio.create_task(self._connection(connection, listener.level))
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)
            task.add_done_callback(lambda _task: self._release(own))

    def _release(self, own: asyncio.Semaphore | None) -> None:
        self._slots.release()
        if own is not None:
            own.release()

    async def _connection(self, connection: socket.socket, level: StatsLevel) -> None:
        connection.setblocking(False)
        try:
            await self._serve(connection, level)
        finally:
            connection.close()

    async def close(self) -> None:
        """Stop accepting, end open connections, remove our socket files."""
        for task in list(self._acceptors):
            task.cancel()
        await asyncio.gather(*self._acceptors, return_exceptions=True)
        self._acceptors.clear()
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for path, inode in self._created:
            with contextlib.suppress(OSError):
                if path.stat().st_ino == inode:
                    path.unlink()
        self._created.clear()
        self.started.clear()

    async def _serve(self, connection: socket.socket, level: StatsLevel) -> None:
        """Read, frame, answer; the socket itself, no stream buffers: a connection holds at
        most one read and the framer's bounded buffer."""
        loop = asyncio.get_running_loop()
        framer = Framer(max_line=self._max_line, max_payload=self._max_payload, level=level)
        interactive = False
        try:
            while True:
                try:
                    async with asyncio.timeout(self._idle_timeout):
                        data = await loop.sock_recv(connection, READ_SIZE)
                except TimeoutError:
                    return
                events = framer.feed(data) if data else framer.eof()
                for event in events:
                    if isinstance(event, TooLong):
                        await self._send(connection, event.message + "\n\n")
                        return
                    if isinstance(event, PayloadRefused):
                        await self._refuse_payload(event.request, level, connection)
                        return
                    interactive, keep = await self._run(event, level, interactive, connection)
                    if not keep:
                        return
                if not data:
                    return
        except (OSError, TimeoutError):
            return  # the client vanished or stopped reading: nothing more to answer

    async def _send(self, connection: socket.socket, text: str) -> None:
        """Send it all, waiting for room at most the timeout (a client that stops reading)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._idle_timeout):
            await loop.sock_sendall(connection, text.encode("utf-8", errors="replace"))

    async def _run(
        self, request: Request, level: StatsLevel, interactive: bool, connection: socket.socket
    ) -> tuple[bool, bool]:
        """Answer one line; returns (interactive, keep the connection open)."""
        for command in request.commands:
            name = getattr(command, "name", None)
            if name is CommandName.QUIT:
                return interactive, False
            if name is CommandName.PROMPT:
                interactive = not interactive
                continue
            await self._send(connection, await self._answer(command, level) + "\n")
        if interactive:
            await self._send(connection, PROMPT)
            return True, True
        return False, False  # HAProxy closes after the first line in non-interactive mode

    async def _refuse_payload(
        self, request: Request, level: StatsLevel, connection: socket.socket
    ) -> None:
        """Answer a `<<` line whose payload is not read: the commands before the last run,
        the last one gets the refusal, and the caller closes the connection."""
        *before, last = request.commands or (None,)
        if before:
            await self._run(Request(tuple(before)), level, False, connection)
        if isinstance(last, UsageError):
            answer = await self._answer(last, level)
        elif isinstance(last, Command) and last.spec.level > level:
            answer = PERMISSION_DENIED + "\n"
        elif isinstance(last, Command):
            answer = f"'{last.name.value}' takes no payload; the payload was not read.\n"
        else:
            answer = "A payload ('<<') needs a command before it.\n"
        await self._send(connection, answer + "\n")

    async def _answer(self, command: Command | UsageError, level: StatsLevel) -> str:
        try:
            return await self._handlers.execute(command, level)
        except Exception as exc:  # a bug must not take the socket down
            log.error(
                "runtime API command '%s' failed with an internal error:\n%s",
                _command_label(command),
                _traceback_text(exc, withhold_messages=_has_payload(command)),
            )
            return f"Internal error while running the command: {type(exc).__name__}\n"


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Wait until a listening socket has a client to accept (without accepting it)."""
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


def _has_payload(command: Command | UsageError) -> bool:
    return isinstance(command, Command) and command.payload is not None


def _command_label(command: Command | UsageError) -> str:
    """The command's name only: its arguments and payload may be secrets or long."""
    if isinstance(command, Command):
        return command.name.value
    return "(unknown command)"


def _traceback_text(exc: BaseException, *, withhold_messages: bool) -> str:
    """The traceback of `exc` (with its causes) as one text.

    With `withhold_messages`, every exception is named by its type only: a message may quote
    the input that caused it, and a payload may hold a private key, which is never logged.
    """
    if not withhold_messages:
        return "".join(traceback.format_exception(exc)).rstrip("\n")
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    parts: list[str] = []
    for item in reversed(chain):
        if parts:
            parts.append("\nThe above exception led to the following one:\n\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(item.__traceback__))
        parts.append(
            f"{type(item).__module__}.{type(item).__qualname__}: (message withheld: "
            "the command carried a payload)\n"
        )
    return "".join(parts).rstrip("\n")


def _tcp_socket(listener: Listener) -> socket.socket:
    """A listening TCP socket for `listener` (port 0: any free port)."""
    host = listener.address.host or "127.0.0.1"
    try:
        infos = socket.getaddrinfo(
            host, listener.address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _name, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RuntimeServerError(
            f"stats socket {listener.address}: cannot listen ({reason}); "
            "pick a free port or stop the other process"
        ) from exc
    sock.setblocking(False)
    return sock


def _unix_socket(path: Path, listener: Listener) -> socket.socket:
    """A listening Unix socket at `path` with the listener's mode and owner, atomically."""
    _remove_stale(path)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(temporary))
        os.chmod(temporary, DEFAULT_MODE if listener.mode is None else listener.mode)
        if listener.uid is not None or listener.gid is not None:
            try:
                os.chown(
                    temporary,
                    -1 if listener.uid is None else listener.uid,
                    -1 if listener.gid is None else listener.gid,
                )
            except PermissionError as exc:
                raise RuntimeServerError(
                    f"stats socket {path}: cannot give it owner {listener.uid} / group "
                    f"{listener.gid} ({exc.strerror}); only root can, or drop 'user'/'group'"
                ) from exc
        sock.listen(128)
        os.rename(temporary, path)
    except (OSError, RuntimeServerError) as exc:
        sock.close()
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(exc, RuntimeServerError):
            raise
        raise RuntimeServerError(
            f"stats socket {path}: cannot create it ({exc.strerror}); check that the "
            "directory exists and is writable by this user"
        ) from exc
    sock.setblocking(False)
    return sock


def _remove_stale(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise RuntimeServerError(
            f"stats socket {path}: the path exists and is not a socket; remove it or choose "
            "another path"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)  # nobody listens: a stale file from a dead process
        return
    finally:
        probe.close()
    raise RuntimeServerError(
        f"stats socket {path}: another process is serving it; stop it or choose another path"
    )
