"""The master's start-up never leaves it alive but deaf (issue 14, defect 6).

A real `Master` from a real configuration runs `supervise` in-process, without workers.
The store that raises is a fake, for a fault no real file can cause any more (the state
directory skips bad files since the fix); the e2e tests start a real staplegate on an MD5 file.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from staplegate.clock import SystemClock
from staplegate.deploy.generation import load_generation
from staplegate.deploy.plan import build_plan
from staplegate.fetch.client import FetchSettings
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.process.master import Deployment, Master
from staplegate.process.supervisor import supervise
from staplegate.store import FileStapleStore
from staplegate.testpki.pytest_plugin import Pki
from staplegate.updater.service import OcspUpdater

CONFIG = """\
global
    log stdout format raw local0 info
defaults
    mode tcp
    timeout connect 1s
    timeout client 1s
    timeout server 1s
frontend www
    bind 127.0.0.1:9 ssl crt {crt}
    default_backend web
backend web
    server web1 127.0.0.1:9
"""


class BrokenStore(FileStapleStore):
    """A store whose load raises what no StoreError covers (a bug, or a library surprise)."""

    def load_all(self) -> dict[CertId, bytes]:
        raise RuntimeError("the store is broken")


def test_an_exception_while_loading_staples_exits_non_zero_with_an_alert(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    leaf = pki.issue("www.example.test")
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(crt=leaf.bundle_path), encoding="utf-8")
    clock = SystemClock()
    generation = load_generation([str(config)], now=clock.now(), err=io.StringIO())
    assert generation is not None
    plan, _ = build_plan(generation, number=1)
    assert plan is not None
    master = Master(
        config_paths=(str(config),),
        current=Deployment(1, generation, plan, sockets={}),
        state_dir=tmp_path / "state",
        worker_count=1,
        clock=clock,
    )
    updater = OcspUpdater(
        [],
        update_settings=UpdateSettings(),
        fetch_settings=FetchSettings(),
        on_staples=master.broadcast,
        store=BrokenStore(tmp_path / "state"),
    )

    async def main() -> int:
        async with asyncio.timeout(10):  # before the fix: waited for `started` forever
            return await supervise(master, updater)

    assert asyncio.run(main()) == 1
    err = capsys.readouterr().err
    assert (
        "[ALERT] staplegate could not start: the OCSP updater failed while loading the stored "
        "staples: RuntimeError('the store is broken'); exiting"
    ) in err.splitlines()
    assert master.stopping
