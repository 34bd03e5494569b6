"""bench/http_perf_ab.py and bench/http_counts.py turn perf, strace and cProfile output into
per-request figures; these tests pin the parsing, not the tools (which the test run does not
install)."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPOSITORY = Path(__file__).resolve().parents[3]

PERF_REPORT = """\
# Samples: 1K of event 'cpu-clock:pppH'
#
# Overhead       Samples  Shared Object
# ........  ............  ..........................................
#
    42.45%           850  [kernel.kallsyms]
    38.67%           774  libpython3.11.so.1.0
     7.39%           148  _rust.abi3.so
     3.31%            66  parser.cpython-311-x86_64-linux-gnu.so
     0.27%             5  [vdso]
"""


@functools.cache
def load(name: str) -> ModuleType:
    """A bench script as a module; its siblings import each other by name."""
    sys.path.insert(0, str(REPOSITORY / "bench"))
    spec = importlib.util.spec_from_file_location(name, REPOSITORY / "bench" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_perf_samples_become_microseconds_per_request_by_shared_object() -> None:
    figures = load("http_perf_ab").by_dso(PERF_REPORT, requests=1000)
    # 2,000 samples a second: a sample is 500 µs of CPU
    assert figures["kernel"] == pytest.approx(425.0)
    assert figures["libpython"] == pytest.approx(387.0)
    assert figures["OpenSSL"] == pytest.approx(74.0)
    assert figures["llhttp"] == pytest.approx(33.0)
    assert figures["other"] == pytest.approx(2.5)
    assert figures["total"] == pytest.approx(921.5)


def test_profile_counts_split_python_functions_from_c_calls() -> None:
    counts = {
        "http_stream.py:76(client_data)": 10,
        "<built-in method _openssl.SSL_write>": 10,
        "<built-in method _openssl.SSL_read>": 12,
        "<method 'append' of 'list' objects>": 30,
    }
    summary = load("http_counts").summarise(counts)
    assert summary["Python functions called"] == 10
    assert summary["calls, C functions included"] == 62
    assert summary["SSL_write (TLS records out)"] == 10
    assert summary["SSL_read"] == 12
