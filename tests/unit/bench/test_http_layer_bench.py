"""bench/http_layer_bench.py keeps running against the real HTTP layer (its fakes follow the
layer's interfaces: a drift made http_bench.py's calibration line fail after issue 18)."""

from __future__ import annotations

import asyncio

from bench.http_layer_bench import run


def test_the_in_process_layer_serves_requests_and_reports_a_time() -> None:
    microseconds = asyncio.run(run(200, False))
    assert 0 < microseconds < 10_000
