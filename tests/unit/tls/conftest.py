"""Fixtures for the TLS unit tests (see tls_unit_pki.py)."""

from __future__ import annotations

import pytest

from .tls_unit_pki import UnitPki, build_unit_pki


@pytest.fixture(scope="session")
def unit_pki(tmp_path_factory: pytest.TempPathFactory) -> UnitPki:
    return build_unit_pki(tmp_path_factory.mktemp("tls-unit"))
