"""One real PKI per session for the TLS data-plane tests (see tls_harness.py)."""

from __future__ import annotations

import pytest

from .tls_harness import TlsPki, build_pki


@pytest.fixture(scope="session")
def tls_pki(tmp_path_factory: pytest.TempPathFactory) -> TlsPki:
    return build_pki(tmp_path_factory.mktemp("tls-pki"))
