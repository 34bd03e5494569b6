"""Stand-ins for the proxy unit tests: a transport that records, a bind TLS is never reached."""

from __future__ import annotations

import types
from typing import Any, cast

from staplegate.tls.contexts import TlsBind

# A bind whose TLS the test never reaches (a hello that is not TLS fails before it): the
# connection only asks whether one certificate answers every hello.
NO_TLS = cast(TlsBind, types.SimpleNamespace(name="fe:443", sni=types.SimpleNamespace(only=None)))


class _Socket:
    def setsockopt(self, *args: object) -> None:
        pass


class RecordingTransport:
    """What asyncio's transports offer a protocol, writing into `written`."""

    def __init__(self, peer: tuple[str, int] = ("192.0.2.7", 5555)) -> None:
        self.peer = peer
        self.written: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.reading = True
        self.eof_written = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self.peer, "sockname": ("198.51.100.1", 443), "socket": _Socket()}.get(
            name, default
        )

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def writelines(self, chunks: list[bytes]) -> None:
        self.written.extend(bytes(chunk) for chunk in chunks)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True
