"""Every sample configuration under tests/data/configs loads through the real loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from staplegate.config.diagnostics import Reason, Severity
from staplegate.config.loader import LoadResult, list_certificate_directory, load_config
from staplegate.config.model import CertOrigin, Config, Mode

DATA = Path(__file__).resolve().parents[2] / "data" / "configs"
ENV = {"CERT_DIR": "certs", "HTTPS_PORT": "8443"}
CLEAN = sorted(p.name for p in DATA.glob("*.cfg") if p.name != "01-debian-stock.cfg")


@pytest.fixture(autouse=True)
def _in_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    # relative paths in the samples resolve against the working directory, like HAProxy
    monkeypatch.chdir(DATA)


def load(*names: str) -> LoadResult:
    return load_config([Path(n) for n in names], env=ENV)


def loaded(name: str) -> Config:
    result = load(name)
    assert result.diagnostics == (), [str(d) for d in result.diagnostics]
    assert result.config is not None
    return result.config


def test_there_are_at_least_fifteen_samples() -> None:
    assert len(CLEAN) + 1 >= 15


@pytest.mark.parametrize("name", CLEAN)
def test_sample_loads_without_diagnostics(name: str) -> None:
    config = loaded(name)
    assert config.files == (name,)


def test_debian_stock_config_passes_with_warnings_only() -> None:
    result = load("01-debian-stock.cfg")
    assert result.config is not None
    assert result.errors == ()
    assert {d.severity for d in result.diagnostics} == {Severity.WARNING}
    assert {d.reason for d in result.diagnostics} == {Reason.IGNORED}
    assert [d.keyword for d in result.diagnostics] == [
        "chroot",
        "user",
        "group",
        "daemon",
        "option dontlognull",
    ]  # its seven `errorfile` lines are served (issue 18), so they warn no more
    (defaults,) = result.config.defaults
    assert sorted(e.status for e in defaults.settings.errorfiles) == [
        400, 403, 408, 500, 502, 503, 504,
    ]  # fmt: skip
    g = result.config.global_
    assert (g.crt_base, g.ca_base) == ("/etc/ssl/private", "/etc/ssl/certs")
    assert g.stats_sockets[0].address.host == "/run/haproxy/admin.sock"
    assert g.stats_timeout_ms == 30_000  # `stats timeout 30s` is honoured, not ignored
    assert [log.facility for log in g.logs] == ["local0", "local1"]
    (defaults,) = result.config.defaults
    assert defaults.settings.mode is Mode.HTTP
    assert defaults.settings.timeouts.client == 50000


def test_seed_global_mode() -> None:
    config = loaded("02-global-mode.cfg")
    (ref,) = config.certificate_references()
    assert (ref.name, ref.ocsp_update, ref.effective_ocsp_update) == (
        "certs/mysite.pem",
        None,
        True,
    )
    assert ref.discover_sidecars


def test_seed_crt_list_keeps_discovery_with_only_ocsp_update() -> None:
    (ref,) = loaded("03-crt-list.cfg").certificate_references()
    assert (ref.origin, ref.ocsp_update, ref.alpn, ref.discover_sidecars) == (
        CertOrigin.CRT_LIST,
        True,
        ("h2",),
        True,
    )
    assert (ref.file, ref.line) == ("crt-lists/seed.txt", 1)


def test_seed_crt_store() -> None:
    load_ref, bind_ref = loaded("04-crt-store.cfg").certificate_references()
    assert load_ref.origin is CertOrigin.CRT_STORE
    assert bind_ref.origin is CertOrigin.BIND
    assert bind_ref.name == "@web/mysite.pem"
    assert bind_ref.crt_path == Path("certs/mysite.pem")
    assert bind_ref.effective_ocsp_update
    assert not bind_ref.discover_sidecars


def test_named_ocsp_files() -> None:
    (listed,) = loaded("05-crt-list-ocsp-file.cfg").certificate_references()
    assert (listed.ocsp_path, listed.discover_sidecars) == (Path("certs/mysite.ocsp"), False)
    _, stored = loaded("06-crt-store-ocsp-file.cfg").certificate_references()
    assert stored.ocsp_path == Path("certs/mysite.ocsp")


def test_httpproxy_and_legacy_delays() -> None:
    assert str(loaded("07-httpproxy.cfg").global_.ocsp_update_httpproxy) == "127.0.0.1:8000"
    g = loaded("08-legacy-tune-delays.cfg").global_
    assert (g.ocsp_update_mindelay, g.ocsp_update_maxdelay) == (7200, 86400)


def test_sni_routing_crt_list() -> None:
    config = loaded("09-sni-routing.cfg")
    refs = config.certificate_references()
    assert [r.sni_filters for r in refs] == [
        ("www.example.test", "example.test"),
        ("shop.example.test",),
        ("*.example.test", "!admin.example.test"),
        (),
    ]
    assert [r.effective_ocsp_update for r in refs] == [True, True, False, True]
    assert [r.line for r in refs] == [2, 4, 5, 7]
    fe = config.frontend("https-in")
    assert [rule.backend for rule in fe.use_backends] == ["shop", "www"]
    www = config.backend("www")
    assert [s.backup for s in www.servers] == [False, True]


def test_crt_directory_skips_sidecars_and_dot_files() -> None:
    refs = loaded("11-crt-dir.cfg").certificate_references()
    assert [r.name for r in refs] == [
        "certs-dir/a.example.test.pem",
        "certs-dir/b.example.test.pem",
    ]
    assert list_certificate_directory("certs-dir") == (
        "certs-dir/a.example.test.pem",
        "certs-dir/b.example.test.pem",
    )


def test_multi_store_aliases() -> None:
    refs = loaded("12-multi-store.cfg").certificate_references()
    by_origin = [(r.origin, r.name) for r in refs]
    assert by_origin == [
        (CertOrigin.CRT_STORE, "@web/www"),
        (CertOrigin.CRT_STORE, "@web/shop"),
        (CertOrigin.CRT_STORE, "certs/wildcard.example.test.pem"),
        (CertOrigin.BIND, "@web/www"),
        (CertOrigin.BIND, "@web/shop"),
        (CertOrigin.BIND, "certs/wildcard.example.test.pem"),
    ]
    assert refs[3].key_path == Path("certs/www.example.test.key")
    assert refs[4].issuer_path == Path("certs/ca.pem")


def test_environment_expansion() -> None:
    config = loaded("17-environment.cfg")
    assert config.global_.crt_base == "certs"
    assert config.frontend("www").binds[0].addresses[0].port == 8443
    (rule,) = config.frontend("www").http_request_rules
    assert getattr(rule.action, "body", None) == "single $NOT_EXPANDED"


def test_directory_loads_cfg_files_in_order() -> None:
    result = load("conf.d")
    assert result.diagnostics == ()
    assert result.config is not None
    assert result.config.files == (
        "conf.d/00-global.cfg",
        "conf.d/10-frontend.cfg",
        "conf.d/20-backend.cfg",
    )
    (ref,) = result.config.certificate_references()
    assert ref.effective_ocsp_update


def test_several_files_share_state_but_not_sections() -> None:
    result = load("conf.d/00-global.cfg", "02-global-mode.cfg")
    assert result.config is not None
    # 02 sets crt-base again: HAProxy keeps the first value and says so
    assert [str(d) for d in result.diagnostics] == [
        "[WARNING] config : parsing [02-global-mode.cfg:6] : 'crt-base' already specified. "
        "Continuing."
    ]


def test_missing_files_are_reported(tmp_path: Path) -> None:
    result = load_config([tmp_path / "absent.cfg"], env={})
    assert result.config is None
    (problem,) = result.diagnostics
    assert str(problem) == (
        f"[ALERT] config : Could not open configuration file {tmp_path / 'absent.cfg'} : "
        "No such file or directory"
    )


def test_missing_crt_list_is_an_error_at_the_bind(tmp_path: Path) -> None:
    cfg = tmp_path / "x.cfg"
    cfg.write_text(
        "frontend fe\n    bind 127.0.0.1:8443 ssl crt-list nope.txt\n    default_backend b\n"
        "backend b\n    server s 127.0.0.1:1\n"
    )
    result = load_config([cfg], env={})
    assert result.config is None
    assert [str(d) for d in result.diagnostics] == [
        f"[ALERT] config : parsing [{cfg}:2] : 'bind 127.0.0.1:8443' : 'crt-list' : cannot "
        "open file 'nope.txt' : No such file or directory"
    ]


def test_crt_list_errors_carry_the_list_location(tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("a.pem [ocsp-update maybe]\n")
    cfg = tmp_path / "x.cfg"
    cfg.write_text(
        f"frontend fe\n    bind 127.0.0.1:8443 ssl crt-list {tmp_path}/l.txt\n"
        "    default_backend b\nbackend b\n    server s 127.0.0.1:1\n"
    )
    result = load_config([cfg], env={})
    assert [str(d) for d in result.diagnostics] == [
        f"[ALERT] config : parsing [{tmp_path}/l.txt:1] : cannot parse 'ocsp-update' value "
        "'maybe', 'on' or 'off' is expected."
    ]
