"""Fixtures for the certificate store tests: one real PKI per session (see certs_pki.py)."""

from __future__ import annotations

import pytest

from .certs_pki import Pki


@pytest.fixture(scope="session")
def pki() -> Pki:
    return Pki.build()
