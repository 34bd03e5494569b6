"""A Prometheus endpoint of its own (`staplegate sidecar --metrics HOST:PORT`).

The main command answers scrapes from its workers (`use-service prometheus-exporter`); a
process without a data plane — the sidecar — serves `GET /metrics` here instead, from its own
`ProcessView` (for the sidecar, sidecar/runtime.py): every `staplegate_ocsp_*` family per
certificate, the CRL watch's `staplegate_crl_*`, and `haproxy_process_*` for the process
itself. The state is read on the loop and the exposition rendered by prometheus-client in a
thread, so a scrape never blocks the loop's work. With a page source, `GET /stats` answers
the stats page (the sidecar's: its certificates table). Anything else is a 404.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web

from staplegate.clock import SystemClock
from staplegate.observe.metrics import CollectedMetrics, StaplegateCollector, render
from staplegate.runtime.contract import ProcessView

#: prometheus-client's text exposition format
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


#: What `GET /stats` answers: the page's HTML, rendered in a thread from what the callable
#: read on the loop (None: no page).
PageSource = Callable[[], Callable[[], str]]


class MetricsEndpoint:
    """An aiohttp server answering `GET /metrics` from `view`, and `GET /stats` with `page`."""

    def __init__(
        self, view: ProcessView, host: str, port: int, *, page: PageSource | None = None
    ) -> None:
        clock = SystemClock()
        self._collector = StaplegateCollector(view, now=clock.now, started_at=time.time())
        self._page = page
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        if self._page is not None:
            app.router.add_get("/stats", self._stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner

    @property
    def port(self) -> int:
        """The port listened on (the one given, or the one the system chose for 0)."""
        assert self._runner is not None
        assert self._runner.addresses
        return int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _stats(self, _request: web.Request) -> web.Response:
        assert self._page is not None
        render_now = self._page()  # read on the loop...
        body = await asyncio.to_thread(render_now)  # ...render in a thread
        return web.Response(
            text=body, content_type="text/html", headers={"Cache-Control": "no-cache"}
        )

    async def _metrics(self, _request: web.Request) -> web.Response:
        collected = CollectedMetrics(self._collector)  # read now, on the loop
        body = await asyncio.to_thread(render, collected)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def parse_metrics_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (`[v6]:PORT` too) for `--metrics`; ValueError with the fix otherwise."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--metrics expects HOST:PORT (e.g. 127.0.0.1:9101), not '{text}'")
    return host, int(port)
