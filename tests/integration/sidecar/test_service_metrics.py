"""`--metrics`: the sidecar's Prometheus endpoint over its own updater, scraped over HTTP."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from staplegate.ocsp.certid import CertId
from staplegate.sidecar.haproxy_config import read_haproxy_config
from staplegate.sidecar.service import SidecarService
from staplegate.store import FileStapleStore
from staplegate.testpki.pytest_plugin import Pki
from tests.integration.sidecar.test_service import Recorder


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, "", ""


def test_a_scrape_shows_each_certificate_stapled_with_its_times(tmp_path: Path, pki: Pki) -> None:
    a = pki.issue("a.test")
    a_id = CertId.for_certificate(a.certificate, a.issuer)
    config = tmp_path / "haproxy.cfg"
    config.write_text(f"frontend f\n    bind :443 ssl crt {a.bundle_path}\n")
    recorder = Recorder()
    discovery = read_haproxy_config([str(config)], env={}, update_all=True).discovery
    service = SidecarService(
        lambda: discovery,
        lambda d: [recorder],
        discovery,
        store=FileStapleStore(tmp_path / "state"),
        metrics_address=("127.0.0.1", 0),
    )

    async def main() -> tuple[tuple[int, str, str], tuple[int, str, str], tuple[int, str, str]]:
        task = asyncio.get_running_loop().create_task(service.run())
        try:
            async with asyncio.timeout(10):
                while not (service.started.is_set() and a_id in recorder.held):
                    await asyncio.sleep(0.01)
            assert service.metrics is not None
            base = f"http://127.0.0.1:{service.metrics.port}"
            scrape = await asyncio.to_thread(_get, base + "/metrics")
            other = await asyncio.to_thread(_get, base + "/nothing")
            page = await asyncio.to_thread(_get, base + "/stats")
        finally:
            service.stop()
            await task
        return scrape, other, page

    (status, kind, body), other, page = asyncio.run(main())
    assert status == 200
    assert kind.startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    path = str(a.bundle_path)
    assert samples[("staplegate_ocsp_stapled", (("certificate", path),))] == 1
    assert (
        samples[("staplegate_ocsp_response_status", (("certificate", path), ("status", "good")))]
        == 1
    )
    assert ("staplegate_ocsp_response_next_update_timestamp_seconds", (("certificate", path),)) in (
        samples
    )
    assert any(name == "staplegate_ocsp_fetch_duration_seconds_count" for name, _ in samples)
    assert other[0] == 404
    # /stats: the certificates table of the stats page, this certificate's row green
    page_status, page_kind, html = page
    assert (page_status, page_kind) == (200, "text/html; charset=utf-8")
    assert f'<tr class="ok"><td class="name">{path}</td>' in html.replace("&#x27;", "'")
