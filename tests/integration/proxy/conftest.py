"""The proxy tests share the TLS tests' harness (tests/integration/tls/tls_harness.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tls"))

from tls_harness import TlsPki, build_pki


@pytest.fixture(scope="session")
def proxy_pki(tmp_path_factory: pytest.TempPathFactory) -> TlsPki:
    return build_pki(tmp_path_factory.mktemp("proxy-pki"))
