"""`STAPLEGATE_PROFILE=DIR`: each worker leaves a cProfile dump of what it served (bench/README)."""

from __future__ import annotations

import pstats
from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import http_backend, s_client_status, staplegate
from .test_stapling_e2e import SUCCESS, write_config

pytestmark = pytest.mark.slow


def test_each_worker_writes_its_profile_on_stop(tmp_path: Path, pki: Pki) -> None:
    pki.issue("www.example.test")
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    with http_backend() as backend:
        config, port = write_config(tmp_path, pki, backend, "www.example.test")
        env = {"STAPLEGATE_PROFILE": str(profiles)}
        with staplegate(config, tmp_path / "state", workers=1, env=env) as proc:
            proc.wait_for(SUCCESS)
            assert "Cert Status: good" in s_client_status(port, "www.example.test")
            assert proc.stop() == 0
    dumps = list(profiles.glob("worker-0-*.pstats"))
    assert len(dumps) == 1, list(profiles.iterdir())
    calls = {
        function: count
        for (_file, _line, function), (_primitive, count, *_rest) in pstats.Stats(
            str(dumps[0])
        ).stats.items()  # type: ignore[attr-defined]  # typeshed's pstats.Stats omits `stats`
    }
    assert calls.get("_hello_received", 0) >= 1  # the s_client handshake was served


def test_no_profile_without_the_variable(tmp_path: Path, pki: Pki) -> None:
    pki.issue("www.example.test")
    with http_backend() as backend:
        config, _port = write_config(tmp_path, pki, backend, "www.example.test")
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            proc.wait_for("staplegate started")
            assert proc.stop() == 0
    assert not list(tmp_path.rglob("*.pstats"))
