"""The checked configuration's lookups: sections by name, `listen` halves, certificate uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from staplegate.config.loader import load_config
from staplegate.config.model import CertOrigin, Config, Mode, ProxyKind

DATA = Path(__file__).resolve().parents[2] / "data" / "configs"


def loaded(name: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.chdir(DATA)  # the samples' relative paths resolve here, as in HAProxy
    result = load_config([Path(name)], env={})
    assert result.config is not None, [str(d) for d in result.diagnostics]
    return result.config


def test_a_listen_section_is_a_frontend_and_a_backend_of_one_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = loaded("10-tcp-passthrough.cfg", monkeypatch)
    assert config.listens == ("tls-terminate",)
    frontend = config.frontend("tls-terminate")
    backend = config.backend("tls-terminate")
    assert frontend.kind is backend.kind is ProxyKind.LISTEN
    assert frontend.mode is Mode.TCP
    assert frontend.timeouts == frontend.settings.timeouts
    assert backend.timeouts.server == 60_000  # milliseconds
    assert config.frontend("passthrough").binds[0].name == "bind 127.0.0.1:7443"
    with pytest.raises(KeyError):
        config.frontend("shop")  # a backend only
    with pytest.raises(KeyError):
        config.backend("passthrough")  # a frontend only


def test_certificate_uses_keep_where_each_was_written(monkeypatch: pytest.MonkeyPatch) -> None:
    config = loaded("04-crt-store.cfg", monkeypatch)
    load, bind = config.certificate_references()  # configuration order: the store first
    assert (load.name, bind.name) == ("@web/mysite.pem", "@web/mysite.pem")
    assert (load.origin, bind.origin) == (CertOrigin.CRT_STORE, CertOrigin.BIND)
    assert (load.file, load.line, bind.line) == ("04-crt-store.cfg", 8, 17)
    assert (load.frontend, bind.frontend) == (None, "www")
    assert load.effective_ocsp_update  # `ocsp-update on` on the load line
    assert bind.effective_ocsp_update  # ...reaches the bind line that uses the store
    assert config.global_.ocsp_update_mindelay == 300
    assert config.global_.ocsp_update_maxdelay == 3600
