"""bench/tls_bench.py builds its handshake load client from the repository's own source.

Compiling needs gcc and libssl-dev, which the test run does not install: these tests check
where the source is and what the bench says when it cannot build, not the build itself.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPOSITORY = Path(__file__).resolve().parents[3]


@functools.cache
def load_tls_bench() -> ModuleType:
    """The script as a module (registered first: its dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location(
        "tls_bench_under_test", REPOSITORY / "bench" / "tls_bench.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_load_client_source_is_inside_the_repository() -> None:
    tls_bench = load_tls_bench()
    source: Path = tls_bench.HSBENCH_SOURCE
    assert source == REPOSITORY / "bench" / "hsbench" / "hsbench.c"
    assert "int main(" in source.read_text(encoding="utf-8")
    command = tls_bench.hsbench_command(Path("/build/hsbench"))
    assert str(source) in command
    assert command[-2:] == ["-lssl", "-lcrypto"]


def test_without_a_compiler_the_bench_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls_bench = load_tls_bench()
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no `cc` on the path
    with pytest.raises(tls_bench.HsbenchBuildError, match="gcc libssl-dev"):
        tls_bench.build_hsbench(tmp_path)
    assert not (tmp_path / "hsbench").exists()
