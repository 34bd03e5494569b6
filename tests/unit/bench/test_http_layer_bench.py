"""bench/http_layer_bench.py keeps running against the real HTTP layer (its fakes follow the
layer's interfaces: a drift made http_bench.py's calibration line fail after issue 18)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPOSITORY = Path(__file__).resolve().parents[3]


def load_http_layer_bench() -> ModuleType:
    """The script as a module (registered first: its dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location(
        "http_layer_bench_under_test", REPOSITORY / "bench" / "http_layer_bench.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_in_process_layer_serves_requests_and_reports_a_time() -> None:
    bench = load_http_layer_bench()
    microseconds = asyncio.run(bench.run(200, False))
    assert 0 < microseconds < 10_000
