"""nginx's ssl_stapling_files: staples written atomically, placeholders where none is valid,
one reload request per batch, failures retried. Real DER from the test CA; the reload is a
recording stand-in here (the reload command has its own tests, nginx the e2e test)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import stat
from pathlib import Path

import pytest
from cryptography.x509 import ocsp

from staplegate.sidecar.nginx_config import discover
from staplegate.sidecar.nginx_delivery import (
    PLACEHOLDER,
    NginxStapleFiles,
    build_deliveries,
    placeholder_response,
)
from staplegate.sidecar.targets import Discovery, SidecarCertificate
from staplegate.testpki.pytest_plugin import Pki
from tests.nginx_sites import Site, write_site


class RecordingReloader:
    """Counts reload requests (the real ReloadCommand is tested in test_reload_command.py)."""

    def __init__(self) -> None:
        self.requests = 0

    def request(self) -> None:
        self.requests += 1

    async def close(self) -> None:
        return None


def _discovery(pki: Pki, tmp_path: Path, *names: str) -> tuple[Discovery, dict[str, Site]]:
    sites = {name: write_site(pki, tmp_path, name) for name in names}
    servers = "".join(
        f"""
    server {{
        listen 127.0.0.1:8443 ssl; server_name {name};
        ssl_certificate {site.crt}; ssl_certificate_key {site.key};
        ssl_stapling on; ssl_stapling_file staples/{name}.ocsp;
    }}"""
        for name, site in sites.items()
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"events {{}}\nhttp {{{servers}\n}}\n")
    discovery = discover([conf])
    assert discovery.ok, discovery.errors
    return discovery, sites


def _by_name(discovery: Discovery) -> dict[str, SidecarCertificate]:
    return {Path(c.entry.path).stem: c for c in discovery.certificates}


def test_the_placeholder_is_a_tryLater_response() -> None:
    response = ocsp.load_der_ocsp_response(PLACEHOLDER)
    assert response.response_status is ocsp.OCSPResponseStatus.TRY_LATER
    assert placeholder_response() == PLACEHOLDER == bytes.fromhex("30030a0103")


def test_first_delivery_writes_staples_and_placeholders_then_one_reload(
    pki: Pki, tmp_path: Path
) -> None:
    discovery, sites = _discovery(pki, tmp_path, "a.test", "b.test")
    found = _by_name(discovery)
    a, b = found["a.test"], found["b.test"]
    staple = pki.ca.good_response(sites["a.test"].issued)
    reloader = RecordingReloader()

    async def scenario() -> NginxStapleFiles:
        delivery = NginxStapleFiles(discovery.certificates, reloader=reloader)
        await delivery.deliver({a.cert_id: staple}, [])
        await delivery.close()
        return delivery

    delivery = asyncio.run(scenario())
    assert a.ocsp_file is not None
    assert b.ocsp_file is not None
    assert a.ocsp_file.read_bytes() == staple
    # b has no staple yet: nginx must still find a file it loads, and serve nothing harmful
    assert b.ocsp_file.read_bytes() == PLACEHOLDER
    assert stat.S_IMODE(a.ocsp_file.stat().st_mode) == 0o644
    assert delivery.writes == 2
    assert reloader.requests == 1


def test_an_existing_file_that_did_not_verify_is_replaced_at_once(pki: Pki, tmp_path: Path) -> None:
    """The updater verified the file's bytes (entry.sidecar_ocsp); not in the table = bad."""
    discovery, _sites = _discovery(pki, tmp_path, "a.test")
    (a,) = discovery.certificates
    assert a.ocsp_file is not None
    a.ocsp_file.parent.mkdir(exist_ok=True)
    a.ocsp_file.write_bytes(b"stale or foreign answer")

    async def scenario() -> None:
        delivery = NginxStapleFiles(discovery.certificates)
        await delivery.deliver({}, [])

    asyncio.run(scenario())
    assert a.ocsp_file.read_bytes() == PLACEHOLDER


def test_unchanged_bytes_are_not_rewritten_nor_reloaded(pki: Pki, tmp_path: Path) -> None:
    discovery, sites = _discovery(pki, tmp_path, "a.test")
    (a,) = discovery.certificates
    assert a.ocsp_file is not None
    staple = pki.ca.good_response(sites["a.test"].issued)
    a.ocsp_file.parent.mkdir(exist_ok=True)
    a.ocsp_file.write_bytes(staple)
    a.ocsp_file.chmod(0o640)
    before = a.ocsp_file.stat().st_ino
    reloader = RecordingReloader()

    async def scenario() -> None:
        delivery = NginxStapleFiles(discovery.certificates, reloader=reloader)
        await delivery.deliver({a.cert_id: staple}, [])
        await delivery.deliver({a.cert_id: staple}, [])

    asyncio.run(scenario())
    assert a.ocsp_file.stat().st_ino == before
    assert reloader.requests == 0


def test_a_refresh_replaces_the_file_keeping_its_mode_and_reloads(pki: Pki, tmp_path: Path) -> None:
    discovery, sites = _discovery(pki, tmp_path, "a.test")
    (a,) = discovery.certificates
    assert a.ocsp_file is not None
    old = pki.ca.good_response(sites["a.test"].issued)
    reloader = RecordingReloader()

    async def scenario() -> None:
        delivery = NginxStapleFiles(discovery.certificates, reloader=reloader)
        await delivery.deliver({a.cert_id: old}, [])
        assert a.ocsp_file is not None
        a.ocsp_file.chmod(0o640)
        new = pki.ca.good_response(sites["a.test"].issued, valid_for=dt.timedelta(days=2))
        await delivery.deliver({a.cert_id: new}, [])
        assert a.ocsp_file.read_bytes() == new

    asyncio.run(scenario())
    assert stat.S_IMODE(a.ocsp_file.stat().st_mode) == 0o640
    assert reloader.requests == 2


def test_a_withdrawn_staple_becomes_the_placeholder_and_reloads(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    discovery, sites = _discovery(pki, tmp_path, "a.test")
    (a,) = discovery.certificates
    assert a.ocsp_file is not None
    staple = pki.ca.good_response(sites["a.test"].issued)
    reloader = RecordingReloader()

    async def scenario() -> None:
        delivery = NginxStapleFiles(discovery.certificates, reloader=reloader)
        await delivery.deliver({a.cert_id: staple}, [])
        await delivery.deliver({}, [a.cert_id])

    with caplog.at_level(logging.INFO, logger="staplegate.sidecar"):
        asyncio.run(scenario())
    assert a.ocsp_file.read_bytes() == PLACEHOLDER
    assert reloader.requests == 2
    assert any("tryLater placeholder" in r.message for r in caplog.records)


def test_unknown_certificates_are_ignored(pki: Pki, tmp_path: Path) -> None:
    discovery, _sites = _discovery(pki, tmp_path, "a.test")
    other, _ = _discovery(pki, tmp_path / "other", "z.test")
    (z,) = other.certificates
    reloader = RecordingReloader()

    async def scenario() -> NginxStapleFiles:
        delivery = NginxStapleFiles(discovery.certificates, reloader=reloader)
        await delivery.deliver({z.cert_id: b"x"}, [z.cert_id])
        return delivery

    delivery = asyncio.run(scenario())
    assert z.ocsp_file is not None
    assert not z.ocsp_file.exists()
    assert delivery.writes == 1  # only a's placeholder, from the first delivery


def test_a_file_that_cannot_be_written_is_logged_once_and_retried(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    discovery, sites = _discovery(pki, tmp_path, "a.test")
    (a,) = discovery.certificates
    assert a.ocsp_file is not None
    staple = pki.ca.good_response(sites["a.test"].issued)
    # A regular file where the directory should be: even root cannot write below it.
    a.ocsp_file.parent.write_text("in the way")
    reloader = RecordingReloader()

    async def scenario() -> NginxStapleFiles:
        delivery = NginxStapleFiles(discovery.certificates, reloader=reloader, retry_delay=0.05)
        await delivery.deliver({a.cert_id: staple}, [])
        assert delivery.pending
        await delivery.deliver({}, [])  # still failing: no second log line
        assert a.ocsp_file is not None
        a.ocsp_file.parent.unlink()  # the operator fixes it; the retry timer writes it
        while delivery.pending:
            await asyncio.sleep(0.01)
        await delivery.close()
        return delivery

    with caplog.at_level(logging.INFO, logger="staplegate.sidecar"):
        delivery = asyncio.run(scenario())
    assert a.ocsp_file.read_bytes() == staple
    failures = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(failures) == 1
    assert f"cannot write ssl_stapling_file '{a.ocsp_file}'" in failures[0]
    assert "retrying every 0.05s" in failures[0]
    assert reloader.requests == 1
    assert delivery.writes == 1


def test_a_certificate_in_two_servers_writes_both_files(pki: Pki, tmp_path: Path) -> None:
    site = write_site(pki, tmp_path, "a.test")
    conf = tmp_path / "nginx.conf"
    servers = "".join(
        f"""
    server {{
        listen 127.0.0.1:{port} ssl; server_name a.test;
        ssl_certificate {site.crt}; ssl_stapling on; ssl_stapling_file s{port}.ocsp;
    }}"""
        for port in (8443, 9443)
    )
    conf.write_text(f"events {{}}\nhttp {{{servers}\n}}\n")
    discovery = discover([conf])
    staple = pki.ca.good_response(site.issued)

    async def scenario() -> None:
        (delivery,) = build_deliveries(discovery, None)
        await delivery.deliver({discovery.certificates[0].cert_id: staple}, [])

    asyncio.run(scenario())
    assert (tmp_path / "s8443.ocsp").read_bytes() == staple
    assert (tmp_path / "s9443.ocsp").read_bytes() == staple
