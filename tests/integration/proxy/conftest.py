"""The proxy tests share the TLS tests' harness (tests/integration/tls/tls_harness.py)."""

from __future__ import annotations

import pytest

from tests.integration.tls.tls_harness import TlsPki, build_pki


@pytest.fixture(scope="session")
def proxy_pki(tmp_path_factory: pytest.TempPathFactory) -> TlsPki:
    return build_pki(tmp_path_factory.mktemp("proxy-pki"))
