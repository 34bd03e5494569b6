"""A backend on 127.0.0.1 that records the raw bytes it gets and the requests it reads in them.

It frames messages as a typical lenient origin server does (Transfer-Encoding over
Content-Length, answers each request in turn), so a proxy that forwards a request with
framing the proxy itself did not follow shows up here as a request nobody sent, or as a
body eaten from the next request. Each answer names the server connection and the
request it answers (`conn 2 req 1 GET /x`), so a client can tell whose answer it got.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class RawRequest:
    connection: int
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    trailers: bytes = b""

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]


@dataclass
class RawConnection:
    number: int
    received: bytearray = field(default_factory=bytearray)


class RawBackend:
    """Threaded socket server; `answer_before_body` answers at the end of each head.

    Answering before reading the body is legal and common (an early 4xx, or a handler
    that ignores the body); it is what turns a body left unsent by the proxy into the
    start of whatever request the proxy sends next on that connection.
    """

    def __init__(self, *, answer_before_body: bool = False, upgrade_status: int = 200) -> None:
        self.answer_before_body = answer_before_body
        self.upgrade_status = upgrade_status
        self.requests: list[RawRequest] = []
        self.connections: list[RawConnection] = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def close(self) -> None:
        self.sock.close()

    def snapshot(self) -> int:
        with self.lock:
            return len(self.requests)

    def since(self, start: int) -> list[RawRequest]:
        with self.lock:
            return list(self.requests[start:])

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                record = RawConnection(len(self.connections) + 1)
                self.connections.append(record)
            thread = threading.Thread(target=self._serve, args=(conn, record), daemon=True)
            thread.start()

    def _serve(self, conn: socket.socket, record: RawConnection) -> None:
        buffer = bytearray()

        def more() -> bool:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return False
            if not chunk:
                return False
            with self.lock:
                record.received += chunk
            buffer.extend(chunk)
            return True

        def line() -> bytes | None:
            while b"\n" not in buffer:
                if not more():
                    return None
            end = buffer.index(b"\n") + 1
            taken = bytes(buffer[:end])
            del buffer[:end]
            return taken

        def exactly(count: int) -> bytes | None:
            while len(buffer) < count:
                if not more():
                    return None
            taken = bytes(buffer[:count])
            del buffer[:count]
            return taken

        served = 0
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    if not more():
                        return
                end = buffer.index(b"\r\n\r\n")
                head = bytes(buffer[:end]).decode("latin-1")
                del buffer[: end + 4]
                first, *lines = head.split("\r\n")
                parts = first.split(" ")
                method, target = parts[0], parts[1] if len(parts) > 1 else ""
                headers = []
                for raw in lines:
                    name, _, value = raw.partition(":")
                    headers.append((name.strip(), value.strip()))
                served += 1
                request = RawRequest(record.number, method, target, headers)
                names = {k.lower(): v for k, v in headers}
                chunked = names.get("transfer-encoding", "").lower().endswith("chunked")
                length = 0 if chunked else int(names.get("content-length", "0") or 0)
                upgrade = "upgrade" in names.get("connection", "").lower() and "upgrade" in names
                if self.answer_before_body:
                    with self.lock:
                        self.requests.append(request)
                    self._answer(conn, record.number, served, request, upgrade)
                if chunked:
                    body = bytearray()
                    while True:
                        size_line = line()
                        if size_line is None:
                            return
                        size = int(size_line.split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            break
                        data = exactly(size + 2)
                        if data is None:
                            return
                        body += data[:-2]
                    trailers = bytearray()
                    while (trailer := line()) not in (b"\r\n", None):
                        trailers += trailer
                    request.body, request.trailers = bytes(body), bytes(trailers)
                elif length:
                    data = exactly(length)
                    if data is None:
                        return
                    request.body = data
                if not self.answer_before_body:
                    with self.lock:
                        self.requests.append(request)
                    self._answer(conn, record.number, served, request, upgrade)
                if upgrade and self.upgrade_status == 101:
                    while more():  # the tunnel: echo
                        conn.sendall(bytes(buffer))
                        buffer.clear()
                    return

    def _answer(
        self, conn: socket.socket, number: int, served: int, request: RawRequest, upgrade: bool
    ) -> None:
        if upgrade and self.upgrade_status == 101:
            answer = (
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: upgrade\r\n\r\n"
            )
        else:
            text = f"conn {number} req {served} {request.method} {request.target}".encode()
            answer = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(text), text)
        with contextlib.suppress(OSError):
            conn.sendall(answer)
