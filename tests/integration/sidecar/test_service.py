"""The sidecar's runner with the real updater and responder: what each delivery is handed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from staplegate.ocsp.certid import CertId
from staplegate.sidecar.haproxy_config import read_haproxy_config
from staplegate.sidecar.service import SidecarService
from staplegate.sidecar.targets import Delivery, Discovery
from staplegate.store import FileStapleStore
from staplegate.testpki.pytest_plugin import Pki


class Recorder:
    """A delivery that remembers every call."""

    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[tuple[dict[CertId, bytes], list[CertId]]] = []
        self.closed = False
        self.fail = fail

    async def deliver(self, changed: Mapping[CertId, bytes], removed: Sequence[CertId]) -> None:
        if self.fail:
            raise RuntimeError("a broken delivery")
        self.calls.append((dict(changed), list(removed)))

    async def close(self) -> None:
        self.closed = True

    @property
    def held(self) -> dict[CertId, bytes]:
        table: dict[CertId, bytes] = {}
        for changed, removed in self.calls:
            table.update(changed)
            for cert_id in removed:
                table.pop(cert_id, None)
        return table


def _site(tmp_path: Path, pki: Pki, *names: str) -> tuple[Path, list[CertId]]:
    lines = []
    ids = []
    for name in names:
        issued = pki.issue(name)
        lines.append(f"{issued.bundle_path}\n")
        ids.append(CertId.for_certificate(issued.certificate, issued.issuer))
    crt_list = tmp_path / "list.txt"
    crt_list.write_text("".join(lines))
    config = tmp_path / "haproxy.cfg"
    config.write_text(f"frontend f\n    bind :443 ssl crt-list {crt_list}\n")
    return config, ids


def _reader(config: Path) -> Callable[[], Discovery]:
    return lambda: read_haproxy_config([str(config)], env={}, update_all=True).discovery


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def _run(service: SidecarService, scenario: Callable[[SidecarService], Awaitable[None]]) -> None:
    async def main() -> None:
        task = asyncio.get_running_loop().create_task(service.run())
        await _until(service.started.is_set)
        try:
            await scenario(service)
        finally:
            service.stop()
            await task

    asyncio.run(main())


def test_a_delivery_gets_the_whole_table_then_only_what_changed(tmp_path: Path, pki: Pki) -> None:
    config, (a_id, b_id) = _site(tmp_path, pki, "a.test", "b.test")
    read = _reader(config)
    recorder = Recorder()
    broken = Recorder(fail=True)
    service = SidecarService(
        read, lambda d: [broken, recorder], read(), store=FileStapleStore(tmp_path / "state")
    )

    async def scenario(service: SidecarService) -> None:
        await _until(lambda: set(recorder.held) == {a_id, b_id})
        calls = len(recorder.calls)
        pki.revoke("a.test")
        await service.updater.update_now(a_id)
        await _until(lambda: len(recorder.calls) > calls)
        changed, removed = recorder.calls[-1]
        assert set(changed) == {a_id}
        assert removed == []

    _run(service, scenario)
    assert recorder.closed
    assert broken.closed


def test_a_reread_builds_new_deliveries_and_one_with_errors_keeps_the_old(
    tmp_path: Path, pki: Pki
) -> None:
    config, (a_id,) = _site(tmp_path, pki, "a.test")
    read = _reader(config)
    built: list[Recorder] = []

    def build(discovery: Discovery) -> list[Delivery]:
        built.append(Recorder())
        return [built[-1]]

    service = SidecarService(read, build, read(), store=FileStapleStore(tmp_path / "state"))

    async def scenario(service: SidecarService) -> None:
        await _until(lambda: a_id in built[0].held)
        b = pki.issue("b.test")
        b_id = CertId.for_certificate(b.certificate, b.issuer)
        with (tmp_path / "list.txt").open("a") as crt_list:
            crt_list.write(f"{b.bundle_path}\n")
        assert await service.reread()
        assert built[0].closed
        await _until(lambda: len(built) == 2 and set(built[1].held) == {a_id, b_id})
        # the first call of a new delivery carries the whole table
        assert a_id in built[1].calls[0][0]
        (tmp_path / "list.txt").write_text(f"{tmp_path / 'gone.pem'}\n")
        assert not await service.reread()
        assert len(built) == 2
        assert len(service.discovery.certificates) == 2

    _run(service, scenario)


def test_staples_come_back_from_the_state_directory_with_the_responder_down(
    tmp_path: Path, pki: Pki
) -> None:
    config, (a_id,) = _site(tmp_path, pki, "a.test")
    read = _reader(config)
    first = Recorder()
    store = FileStapleStore(tmp_path / "state")

    async def fetched(service: SidecarService) -> None:
        await _until(lambda: a_id in first.held)

    _run(SidecarService(read, lambda d: [first], read(), store=store), fetched)
    pki.responder.stop()
    second = Recorder()

    async def restored(service: SidecarService) -> None:
        await _until(lambda: a_id in second.held)

    _run(SidecarService(read, lambda d: [second], read(), store=store), restored)
    assert second.held[a_id] == first.held[a_id]


def test_a_renewed_certificate_is_picked_up_and_its_old_staple_left_behind(
    tmp_path: Path, pki: Pki
) -> None:
    config, (old_id,) = _site(tmp_path, pki, "a.test")
    read = _reader(config)
    built: list[Recorder] = []

    def build(discovery: Discovery) -> list[Delivery]:
        built.append(Recorder())
        return [built[-1]]

    service = SidecarService(
        read, build, read(), store=FileStapleStore(tmp_path / "state"), watch_interval=0.02
    )

    async def scenario(service: SidecarService) -> None:
        await _until(lambda: old_id in built[0].held)
        renewed = pki.issue("a-renewed.test")  # renewal: a new certificate in the same file
        staged = tmp_path / "staged.pem"
        staged.write_bytes(renewed.bundle_path.read_bytes())
        staged.replace(pki.issued["a.test"].bundle_path)
        new_id = CertId.for_certificate(renewed.certificate, renewed.issuer)
        assert new_id != old_id
        await _until(lambda: len(built) == 2 and new_id in built[-1].held)
        assert old_id not in built[-1].held
        assert service.rereads == 1

    _run(service, scenario)


def test_a_broken_file_is_read_once_and_not_again_until_it_changes(
    tmp_path: Path, pki: Pki
) -> None:
    config, _ = _site(tmp_path, pki, "a.test")
    read = _reader(config)
    service = SidecarService(
        read,
        lambda d: [Recorder()],
        read(),
        store=FileStapleStore(tmp_path / "state"),
        watch_interval=0.02,
    )
    crt_list = tmp_path / "list.txt"

    async def scenario(service: SidecarService) -> None:
        crt_list.write_text(f"{tmp_path / 'gone.pem'}\n")
        await _until(lambda: service.reread_attempts == 1)
        rounds = service.watch_rounds
        await _until(lambda: service.watch_rounds >= rounds + 5)
        assert service.reread_attempts == 1  # the failure is not retried in a loop
        assert service.rereads == 0
        crt_list.write_text(f"{pki.issued['a.test'].bundle_path}\n# fixed\n")
        await _until(lambda: service.rereads == 1)
        assert service.reread_attempts == 2

    _run(service, scenario)


def test_the_revoked_hook_from_extra_config_runs_on_a_revocation(tmp_path: Path, pki: Pki) -> None:
    config, (a_id,) = _site(tmp_path, pki, "a.test")
    seen = tmp_path / "revoked.txt"
    extra = tmp_path / "extra.cfg"
    extra.write_text(
        "global\n    ocsp-update.revoked-hook "  # single quotes: no expansion by the lexer
        f"'echo \"$STAPLEGATE_EVENT $STAPLEGATE_CERT_PATH\" >> {seen}'\n"
    )

    def read() -> Discovery:
        return read_haproxy_config(
            [str(config)], env={}, update_all=True, extra_config=[str(extra)]
        ).discovery

    recorder = Recorder()
    service = SidecarService(
        read, lambda d: [recorder], read(), store=FileStapleStore(tmp_path / "s")
    )

    async def scenario(service: SidecarService) -> None:
        await _until(lambda: a_id in recorder.held)
        pki.revoke("a.test")
        await service.updater.update_now(a_id)
        await _until(lambda: seen.exists() and "revoked" in seen.read_text())

    _run(service, scenario)
    assert seen.read_text() == f"revoked {pki.issued['a.test'].bundle_path}\n"


def test_a_certificate_without_an_ocsp_url_is_watched_on_its_crl(tmp_path: Path, pki: Pki) -> None:
    crl_only = pki.issue("crl-only.test", ocsp_url=None, crl_url=f"{pki.responder.url}/crl")
    pki.revoke("crl-only.test")
    pki.ca.crl()  # the responder serves it at /crl
    config = tmp_path / "haproxy.cfg"
    config.write_text(f"frontend f\n    bind :443 ssl crt {crl_only.bundle_path}\n")
    seen = tmp_path / "revoked.txt"
    extra = tmp_path / "extra.cfg"
    extra.write_text(
        f"global\n    ocsp-update.revoked-hook 'echo \"$STAPLEGATE_REVOCATION_SOURCE\" >> {seen}'\n"
    )

    def read() -> Discovery:
        return read_haproxy_config(
            [str(config)], env={}, update_all=True, extra_config=[str(extra)]
        ).discovery

    discovery = read()
    assert [t.path for t in discovery.crl_targets] == [str(crl_only.bundle_path)]
    assert discovery.certificates == ()
    service = SidecarService(read, lambda d: [], discovery, store=FileStapleStore(tmp_path / "s"))

    async def scenario(service: SidecarService) -> None:
        await _until(lambda: seen.exists() and seen.read_text() != "")

    _run(service, scenario)
    assert seen.read_text() == "crl\n"
