"""Two sidecars sharing `ocsp-update.shared-store` (from `--extra-config`, as issue 17 asks):
one request to the responder per certificate, both hold the same verified staple."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path

from staplegate.clock import SystemClock
from staplegate.fleet.redis_share import shared_store
from staplegate.ocsp.certid import CertId
from staplegate.sidecar.haproxy_config import read_extra_settings, read_haproxy_config
from staplegate.sidecar.service import SidecarService
from staplegate.sidecar.targets import Delivery, Discovery
from staplegate.store import FileStapleStore
from staplegate.testpki.pytest_plugin import Pki
from tests.integration.sidecar.test_service import Recorder
from tests.redis_server import RedisServer


def test_two_sidecars_on_one_redis_ask_the_responder_once(
    tmp_path: Path, pki: Pki, redis_server: RedisServer
) -> None:
    leaves = [pki.issue(f"s{i}.test") for i in range(3)]
    ids = [CertId.for_certificate(leaf.certificate, leaf.issuer) for leaf in leaves]
    config = tmp_path / "haproxy.cfg"
    crts = " ".join(f"crt {leaf.bundle_path}" for leaf in leaves)
    config.write_text(f"frontend f\n    bind :443 ssl {crts}\n")
    extra = tmp_path / "extra.cfg"
    extra.write_text(f"global\n    ocsp-update.shared-store {redis_server.url}\n")
    settings = read_extra_settings([str(extra)], env={})
    assert settings.errors == ()
    assert settings.settings.ocsp_update_shared_store == redis_server.url
    found = read_haproxy_config([str(config)], env={}, update_all=True).discovery
    discovery = dataclasses.replace(found, settings=settings.settings)
    recorders = [Recorder(), Recorder()]

    def deliveries(recorder: Recorder) -> Callable[[Discovery], list[Delivery]]:
        return lambda _discovery: [recorder]

    services = [
        SidecarService(
            lambda: discovery,
            deliveries(recorder),
            discovery,
            store=FileStapleStore(tmp_path / f"state{n}"),
            shared=shared_store(
                settings.settings.ocsp_update_shared_store, None, clock=SystemClock(), environ={}
            ),
        )
        for n, recorder in enumerate(recorders)
    ]

    async def main() -> None:
        tasks = [asyncio.get_running_loop().create_task(s.run()) for s in services]
        try:
            async with asyncio.timeout(20):
                while not all(i in r.held for r in recorders for i in ids):
                    await asyncio.sleep(0.02)
        finally:
            for service in services:
                service.stop()
            await asyncio.gather(*tasks)

    asyncio.run(main())
    assert len(pki.responder.requests) == len(leaves)  # one request per certificate
    assert all(recorders[0].held[i] == recorders[1].held[i] for i in ids)
