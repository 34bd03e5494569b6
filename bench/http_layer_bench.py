"""The mode-http layer alone: CPU per keep-alive request without TLS, sockets or load generator.

`http_bench.py` measures the whole proxy, and on a shared machine its figures move by
±15 %: too much to see a 1 µs change in the HTTP layer. This drives `HttpStream` in
process, on uvloop, with one idle keep-alive server connection: a wrk-like request in
(`client_data`), an nginx-like response back (`ServerConnection.data_received`). The client
side and the transports are stand-ins that only count; everything in `proxy/http_*.py`
and `backends.py` runs for real. Median of several runs.

    .venv/bin/python bench/http_layer_bench.py [--requests 100000] [--runs 5] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import time
from collections.abc import Sequence
from typing import Any, cast

import uvloop

from staplegate.proxy.backends import BackendPool, BackendServer
from staplegate.proxy.http_pool import (
    HttpBackendSettings,
    HttpFrontend,
    HttpSettings,
    ServerConnection,
)
from staplegate.proxy.http_stream import HttpStream

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n\r\n"  # what wrk sends
RESPONSE = (  # what nginx's `return 200 "ok"` answers
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 24 Nov 2026 18:00:00 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 2\r\n"
    b"Connection: keep-alive\r\n\r\nok"
)


class _Transport:
    """Accepts writes and flow-control calls; the kernel's share is not measured here."""

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class _FrontendStats:
    active = 1


class _Frontend:
    name = "www"
    stats = _FrontendStats()
    stopping = False


class _ClientSide:
    """What `HttpStream` uses of `connection.ClientConnection` (`http_exchange.ClientSide`),
    minus TLS: counts responses."""

    client_address = ("127.0.0.1", 40000)
    frontend_address = ("127.0.0.1", 8443)
    server_name = "bench.example.test"
    stopping = False
    client_write_paused = False
    frontend = _Frontend()

    def __init__(self, pool: BackendPool) -> None:
        self.pool = pool
        self.responses = 0

    def connection_info(
        self, host: str | None = None, target: bytes | None = None, head: object = None
    ) -> str | None:
        return host

    def route(self, info: object) -> BackendPool:
        return self.pool

    def send_plain(self, data: bytes) -> None:
        self.responses += 1

    def pause_client_reading(self) -> None:
        pass

    def resume_client_reading(self) -> None:
        pass

    def end_http(self, *, aborted: bool) -> None:
        raise RuntimeError("the stream ended the connection: the benchmark is broken")


async def run(requests: int, profile: bool) -> float:
    """Seconds per request through one stream (after one warm-up request)."""
    settings = HttpSettings(
        forwardfor_header=b"X-Forwarded-For",
        keep_alive_timeout_s=30.0,
        client_timeout_s=30.0,
        backends={"web": HttpBackendSettings("web", connect_timeout_s=5.0, server_timeout_s=30.0)},
    )
    http = HttpFrontend(settings)
    pool = BackendPool("web", [BackendServer("s1", "127.0.0.1", 9)])
    client = _ClientSide(pool)
    stream = HttpStream(cast(Any, client), http)
    conn = ServerConnection(http, ("web", "s1", None))
    conn.connection_made(cast(Any, _Transport()))
    http.put_idle(conn, asyncio.get_running_loop().time())

    def one() -> None:
        stream.client_data([REQUEST])
        conn.data_received(RESPONSE)

    one()
    if client.responses != 1 or http.stats.server_reuses != 1:
        raise RuntimeError("the warm-up request did not reuse the idle server connection")
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    for _ in range(requests):
        one()
    elapsed = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    if client.responses != requests + 1:
        raise RuntimeError(f"{client.responses - 1} responses for {requests} requests")
    stream.close()
    http.close_idle()
    return elapsed / requests


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="one run under cProfile")
    options = parser.parse_args(argv)
    if options.profile:
        uvloop.run(run(options.requests, True))
        return 0
    results = [uvloop.run(run(options.requests, False)) for _ in range(options.runs)]
    print(
        f"mode-http layer: {statistics.median(results) * 1e6:.2f} µs per keep-alive request "
        f"(median of {options.runs} runs of {options.requests:,}; min "
        f"{min(results) * 1e6:.2f} µs)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
