"""The stats-socket server: Unix and TCP listeners speaking HAProxy's runtime-API framing.

Theory of operation. Each `Listener` (one `stats socket` line) has its own access level. A
connection's bytes go through a `grammar.Framer`; each complete line's commands run in order
through `RuntimeHandlers`, and every answer is written followed by the end-of-answer newline
(spec §8.0). Without `prompt` the connection closes after the first line's answers, as
HAProxy does; `prompt` toggles interactive mode (a `> ` prompt after each line, the
connection stays open until `quit`, EOF or the idle timeout). A line or payload over the caps
gets an error answer and the connection is closed. A client that vanishes costs its own task
only: write errors end that connection, nothing else.

Unix sockets are created under a temporary name, given their mode (default 0600) and
owner, then renamed over the configured path, so the path never exists with looser
permissions. A stale socket file left by a dead process is replaced; a path held by a live
server, or a file that is not a socket, is an error. `close()` stops accepting, ends open
connections and removes the socket files it created.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from staplegate.config.model import GlobalSettings
from staplegate.config.values import AddressFamily, SocketAddress
from staplegate.runtime.grammar import (
    CommandName,
    Framer,
    Level,
    Request,
    TooLong,
)
from staplegate.runtime.handlers import RuntimeHandlers

log = logging.getLogger("staplegate.runtime")

DEFAULT_MODE = 0o600
#: Seconds an idle connection may stay open (HAProxy's `stats timeout` default is 10 s).
IDLE_TIMEOUT = 10.0
PROMPT = "> "
READ_SIZE = 64 * 1024


class RuntimeServerError(Exception):
    """A listener could not be opened; the message names it and says what to do."""


@dataclass(frozen=True)
class Listener:
    """One runtime-API socket: where, at which level, and (Unix) its file mode and owner."""

    address: SocketAddress
    level: Level = Level.OPERATOR
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None

    @property
    def is_unix(self) -> bool:
        return self.address.family is AddressFamily.UNIX


def listeners_from_config(settings: GlobalSettings) -> tuple[Listener, ...]:
    """The `stats socket` lines of `global` as listeners (HAProxy's default level: operator)."""
    return tuple(
        Listener(
            address=item.address,
            level=Level.parse(item.level.value),
            mode=item.mode,
            uid=item.uid,
            gid=item.gid,
        )
        for item in settings.stats_sockets
    )


class RuntimeServer:
    """Serves the runtime API on every listener; `start()`, then `close()`."""

    def __init__(
        self,
        listeners: Sequence[Listener],
        handlers: RuntimeHandlers,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        max_line: int | None = None,
    ) -> None:
        self._listeners = tuple(listeners)
        self._handlers = handlers
        self._idle_timeout = idle_timeout
        self._max_line = max_line
        self._servers: list[asyncio.Server] = []
        self._created: list[tuple[Path, int]] = []  # socket files we own (path, inode)
        self._connections: set[asyncio.Task[None]] = set()
        self.started = asyncio.Event()
        self.bound: list[str] = []
        """Where each listener listens, in order (a path, or `host:port` with the real port)."""

    async def start(self) -> None:
        """Open every listener; on failure close those already open and raise."""
        try:
            for listener in self._listeners:
                await self._open(listener)
        except BaseException:
            await self.close()
            raise
        self.started.set()

    async def _open(self, listener: Listener) -> None:
        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._connections.add(task)
                task.add_done_callback(self._connections.discard)
            await self._serve(reader, writer, listener.level)

        if listener.is_unix:
            path = Path(listener.address.host)
            sock = _unix_socket(path, listener)
            server = await asyncio.start_unix_server(client, sock=sock, limit=READ_SIZE)
            self._created.append((path, path.stat().st_ino))
            self.bound.append(str(path))
        else:
            try:
                server = await asyncio.start_server(
                    client,
                    host=listener.address.host or "127.0.0.1",
                    port=listener.address.port,
                    reuse_address=True,
                )
            except OSError as exc:
                raise RuntimeServerError(
                    f"stats socket {listener.address}: cannot listen ({exc.strerror}); "
                    "pick a free port or stop the other process"
                ) from exc
            host, port = server.sockets[0].getsockname()[:2]
            self.bound.append(f"{host}:{port}")
        self._servers.append(server)

    async def close(self) -> None:
        """Stop accepting, end open connections, remove our socket files."""
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        for path, inode in self._created:
            with contextlib.suppress(OSError):
                if path.stat().st_ino == inode:
                    path.unlink()
        self._created.clear()
        self.started.clear()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, level: Level
    ) -> None:
        framer = Framer() if self._max_line is None else Framer(max_line=self._max_line)
        interactive = False
        try:
            while True:
                try:
                    async with asyncio.timeout(self._idle_timeout):
                        data = await reader.read(READ_SIZE)
                except TimeoutError:
                    return
                events = framer.feed(data) if data else framer.eof()
                for event in events:
                    if isinstance(event, TooLong):
                        writer.write((event.message + "\n\n").encode())
                        await writer.drain()
                        return
                    interactive, keep = await self._run(event, level, interactive, writer)
                    if not keep:
                        return
                if not data:
                    return
        except (ConnectionError, OSError):
            return  # the client vanished: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _run(
        self, request: Request, level: Level, interactive: bool, writer: asyncio.StreamWriter
    ) -> tuple[bool, bool]:
        """Answer one line; returns (interactive, keep the connection open)."""
        for command in request.commands:
            name = getattr(command, "name", None)
            if name is CommandName.QUIT:
                return interactive, False
            if name is CommandName.PROMPT:
                interactive = not interactive
                continue
            try:
                answer = await self._handlers.execute(command, level)
            except Exception as exc:  # a bug must not take the socket down
                log.exception("runtime API command %r failed", command)
                answer = f"Internal error while running the command: {exc!r}\n"
            writer.write((answer + "\n").encode("utf-8", errors="replace"))
            await writer.drain()
        if interactive:
            writer.write(PROMPT.encode())
            await writer.drain()
            return True, True
        return False, False  # HAProxy closes after the first line in non-interactive mode


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
