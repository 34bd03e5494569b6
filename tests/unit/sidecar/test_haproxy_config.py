"""Reading HAProxy configurations for their certificates only, with HAProxy's update rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from staplegate.sidecar.haproxy_config import HaproxyDiscovery, read_haproxy_config
from staplegate.testpki.ca import IssuedCertificate
from staplegate.testpki.pytest_plugin import Pki


def _read(
    config: Path, *, update_all: bool = False, extra: tuple[str, ...] = ()
) -> HaproxyDiscovery:
    return read_haproxy_config(
        [str(config)], env={"HOME": "/nowhere"}, update_all=update_all, extra_config=extra
    )


def _names(found: HaproxyDiscovery) -> list[str]:
    return [Path(c.entry.path).name for c in found.discovery.certificates]


def _write(tmp_path: Path, text: str, name: str = "haproxy.cfg") -> Path:
    config = tmp_path / name
    config.write_text(text)
    return config


def _issue(pki: Pki, *names: str) -> list[IssuedCertificate]:
    return [pki.issue(name) for name in names]


def test_crt_list_lines_follow_haproxys_ocsp_update_rules(tmp_path: Path, pki: Pki) -> None:
    a, b, c = _issue(pki, "a.test", "b.test", "c.test")
    crt_list = tmp_path / "list.txt"
    crt_list.write_text(
        f"{a.bundle_path} [ocsp-update on alpn h2 no-ca-names curves X25519] a.test\n"
        f"# a comment\n{b.bundle_path} [ocsp-update off]\n{c.bundle_path}\n"
    )
    config = _write(
        tmp_path,
        "global\n    lua-load /nowhere/x.lua\n    frobnicate all the things\n"
        "frontend f\n    filter spoe engine x config /nowhere/spoe.conf\n"
        f"    bind 127.0.0.1:443 ssl crt-list {crt_list} unknown-option 3\n"
        "    http-request lua.anything\n",
    )
    found = _read(config)
    discovery = found.discovery
    assert discovery.errors == ()
    assert discovery.messages == ()
    assert _names(found) == ["a.test.pem"]
    assert discovery.certificates[0].source == f"{crt_list}:1"
    assert discovery.certificates[0].ocsp_file == Path(f"{a.bundle_path}.ocsp")
    assert [(Path(s.name).name, s.reason) for s in discovery.skipped] == [
        ("b.test.pem", "ocsp-update off; use --all"),
        ("c.test.pem", "ocsp-update off; use --all"),
    ]
    assert _names(_read(config, update_all=True)) == ["a.test.pem", "b.test.pem", "c.test.pem"]
    # what the service watches for changes: never the .ocsp files it writes itself
    assert discovery.files[:3] == (str(config), str(crt_list), str(a.bundle_path))
    assert not any(f.endswith(".ocsp") for f in discovery.files)


def test_global_mode_on_and_disable(tmp_path: Path, pki: Pki) -> None:
    a, b = _issue(pki, "a.test", "b.test")
    crt_list = tmp_path / "list.txt"
    crt_list.write_text(f"{a.bundle_path}\n{b.bundle_path} [ocsp-update off]\n")
    bind = f"frontend f\n    bind :443 ssl crt-list {crt_list}\n"
    on = _read(_write(tmp_path, f"global\n    ocsp-update.mode on\n{bind}"))
    assert _names(on) == ["a.test.pem"]
    off = _read(
        _write(tmp_path, f"global\n    ocsp-update.mode on\n    ocsp-update.disable on\n{bind}")
    )
    assert _names(off) == []


def test_crt_stores_bind_crt_directories_and_crt_base(tmp_path: Path, pki: Pki) -> None:
    a, b, c = _issue(pki, "a.test", "b.test", "c.test")
    directory = tmp_path / "certs"
    directory.mkdir()
    (directory / "c.pem").write_bytes(c.bundle_path.read_bytes())
    (directory / "c.pem.ocsp").write_bytes(b"not a certificate: a sidecar")
    (directory / "c.pem.issuer").write_bytes(c.issuer_path.read_bytes())
    config = _write(
        tmp_path,
        f"global\n    crt-base {a.bundle_path.parent}\n"
        "crt-store web\n"
        f"    load crt a.test.pem alias site ocsp-update on issuer {a.issuer_path}\n"
        "crt-store\n"
        f"    load crt {b.bundle_path} ocsp-update on issuer {b.issuer_path}\n"
        "listen l\n"
        "    bind :443 ssl crt @web/site\n"
        f"    bind :444 ssl crt {b.bundle_path}\n"
        f"    bind :445 ssl crt {directory}\n",
    )
    found = _read(config)
    assert found.discovery.errors == ()
    assert [c.entry.path for c in found.discovery.certificates] == ["@web/site", str(b.bundle_path)]
    store_entry = found.discovery.certificates[0]
    assert store_entry.source == f"{config}:8"
    assert store_entry.ocsp_file is None  # a `load` line reads only the files it names
    assert [Path(s.name).name for s in found.discovery.skipped] == ["c.pem"]
    everything = _read(config, update_all=True)
    assert [Path(c.entry.path).name for c in everything.discovery.certificates][-1] == "c.pem"


def test_conditional_blocks_are_said_not_evaluated(tmp_path: Path, pki: Pki) -> None:
    a, b = _issue(pki, "a.test", "b.test")
    config = _write(
        tmp_path,
        "frontend f\n.if defined(PROD)\n"
        f"    bind :443 ssl crt {a.bundle_path}\n.else\n    bind :443 ssl crt {b.bundle_path}\n"
        ".endif\n",
    )
    found = _read(config, update_all=True)
    assert _names(found) == ["a.test.pem", "b.test.pem"]
    assert len(found.discovery.messages) == 1
    assert f"[{config}:2] : conditional blocks" in found.discovery.messages[0]


def test_missing_files_are_alerts_naming_the_line(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        "frontend f\n"
        f"    bind :443 ssl crt {tmp_path / 'absent.pem'}\n"
        f"    bind :444 ssl crt-list {tmp_path / 'absent.list'}\n"
        "    bind :445 ssl crt @nowhere/x\n",
    )
    errors = sorted(_read(config).discovery.errors)  # lines 2, 3, 4 in that order
    assert len(errors) == 3
    assert f"[{config}:2]" in errors[0]
    assert "No such file or directory" in errors[0]
    assert f"[{config}:3]" in errors[1]
    assert "'crt-list' : cannot open file" in errors[1]
    assert f"[{config}:4]" in errors[2]
    assert "no crt-store 'load' line" in errors[2]
    absent = read_haproxy_config([str(tmp_path / "none.cfg")], env={})
    assert "Could not open configuration file" in absent.discovery.errors[0]


def test_paths_that_cannot_be_files_are_alerts(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        'frontend f\n    bind :443 ssl crt "a\\x00b.pem"\n    bind :444 ssl crt /dev/zero\n',
    )
    errors = _read(config).discovery.errors
    assert "a NUL character in the path" in errors[0]
    assert "'/dev/zero' : unable to load the certificate: larger than 16 MiB" in errors[1]


def test_a_file_without_a_certificate_is_an_alert(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("hello\n")
    config = _write(tmp_path, f"frontend f\n    bind :443 ssl crt {tmp_path / 'junk.pem'}\n")
    assert "no PEM certificate found" in _read(config).discovery.errors[0]


def test_a_certificate_without_an_issuer_is_skipped_with_a_warning(
    tmp_path: Path, pki: Pki
) -> None:
    (a,) = _issue(pki, "a.test")
    a.issuer_path.unlink()
    config = _write(tmp_path, f"frontend f\n    bind :443 ssl crt {a.bundle_path}\n")
    found = _read(config, update_all=True)
    assert found.discovery.certificates == ()
    assert found.discovery.skipped[0].reason == "no issuer found"
    assert "no issuer found" in found.discovery.messages[0]


def test_no_extra_files_means_no_ocsp_file_and_no_issuer_sidecar(tmp_path: Path, pki: Pki) -> None:
    (a,) = _issue(pki, "a.test")
    config = _write(
        tmp_path,
        "global\n    ssl-load-extra-files none\n"
        f"frontend f\n    bind :443 ssl crt {a.bundle_path}\n",
    )
    found = _read(config, update_all=True)
    assert found.discovery.skipped[0].reason == "no issuer found"


def test_the_first_admin_stats_socket_is_the_push_target(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        "global\n    stats socket /run/a.sock mode 600 level user\n"
        "    stats socket ipv4@127.0.0.1:9999 level admin expose-fd listeners\n"
        "    stats socket /run/c.sock level admin\n",
    )
    found = _read(config)
    assert found.push_socket is not None
    assert found.push_socket.address == "ipv4@127.0.0.1:9999"
    assert found.push_socket.source == f"{config}:3"


def test_global_ocsp_settings_and_extra_config(tmp_path: Path) -> None:
    config = _write(tmp_path, "global\n    ocsp-update.maxdelay 7200\n    maxconn 10\n")
    extra = _write(
        tmp_path,
        "global\n    ocsp-update.mindelay 1\n    ocsp-update.maxdelay 3\n"
        "    ocsp-update.maxconn 4\n    nbthread 2\nfrontend f\n    bind :1\n",
        name="extra.cfg",
    )
    assert _read(config).discovery.settings.ocsp_update_maxdelay_s == 7200
    found = _read(config, extra=(str(extra),))
    settings = found.discovery.settings
    assert (settings.ocsp_update_mindelay_s, settings.ocsp_update_maxdelay_s) == (1, 3)
    assert settings.ocsp_update_maxconn == 4
    assert [m.split(" : ")[-1] for m in found.discovery.messages] == [
        "--extra-config: only OCSP settings are read from 'global'; 'nbthread' skipped",
        "--extra-config: only 'global' is read here; 'frontend' skipped",
    ]


def test_a_responder_override_replaces_the_aia_and_covers_certificates_without_one(
    tmp_path: Path, pki: Pki
) -> None:
    two = pki.issue("two.test", ocsp_url=["http://127.0.0.1:1/first", "http://127.0.0.1:2/next"])
    none = pki.issue("none.test", ocsp_url=None)
    config = _write(
        tmp_path,
        f"frontend f\n    bind :443 ssl crt {two.bundle_path} crt {none.bundle_path}\n",
    )
    plain = _read(config, update_all=True).discovery
    assert [(c.entry.uri, c.entry.fallback_uris) for c in plain.certificates] == [
        ("http://127.0.0.1:1/first", ("http://127.0.0.1:2/next",))
    ]
    assert plain.skipped[0].reason == "no OCSP URI"
    mirror = _write(
        tmp_path, "global\n    ocsp-update.responder-url http://127.0.0.1:3/mirror\n", name="x.cfg"
    )
    overridden = _read(config, update_all=True, extra=(str(mirror),)).discovery
    assert [(c.entry.uri, c.entry.fallback_uris) for c in overridden.certificates] == [
        ("http://127.0.0.1:3/mirror", ()),
        ("http://127.0.0.1:3/mirror", ()),
    ]


def test_crl_watch_targets_follow_the_main_commands_rule(tmp_path: Path, pki: Pki) -> None:
    crl = "http://127.0.0.1:9/crl"
    only = pki.issue("only.test", ocsp_url=None, crl_url=crl)
    both = pki.issue("both.test", crl_url=crl)
    config = _write(
        tmp_path, f"frontend f\n    bind :443 ssl crt {only.bundle_path} crt {both.bundle_path}\n"
    )

    def watched(mode: str | None) -> list[str]:
        extra = () if mode is None else (str(_write(tmp_path, mode, name="extra.cfg")),)
        found = _read(config, update_all=True, extra=extra).discovery
        return [Path(t.path).name for t in found.crl_targets]

    assert watched(None) == ["only.test.pem"]
    assert watched("global\n    ocsp-update.crl-watch on\n") == ["only.test.pem", "both.test.pem"]
    assert watched("global\n    ocsp-update.crl-watch off\n") == []


def test_a_bad_ocsp_setting_is_staplegates_own_error(tmp_path: Path) -> None:
    config = _write(tmp_path, "global\n    ocsp-update.maxdelay soon\n")
    errors = _read(config).discovery.errors
    assert len(errors) == 1
    assert f"[{config}:2]" in errors[0]


# -- the 47 real configurations -------------------------------------------------------------

_REPOSITORY = Path(__file__).resolve().parents[3]
_CANDIDATES = [
    Path(os.environ.get("STAPLEGATE_REAL_CONFIGS", "/nonexistent")),
    _REPOSITORY.parent / "shared" / "real-configs",
    _REPOSITORY.parent.parent / "shared" / "real-configs",
]
REAL_CONFIGS = next((p for p in _CANDIDATES if (p / "prepare.py").is_file()), None)
_CONFIGS = sorted(REAL_CONFIGS.glob("*.cfg")) if REAL_CONFIGS else []


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every real configuration prepared once (prepare.py creates the files they name), in
    this process: 47 interpreter starts would cost more than the preparing itself."""
    import importlib.util

    assert REAL_CONFIGS is not None
    spec = importlib.util.spec_from_file_location(
        "real_configs_prepare", REAL_CONFIGS / "prepare.py"
    )
    assert spec is not None
    assert spec.loader is not None
    prepare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare)
    work = tmp_path_factory.mktemp("real-configs")
    for config in _CONFIGS:
        prepare.main([str(config), str(work / config.stem), "--pki", str(work / "pki")])
    return work


@pytest.mark.slow
@pytest.mark.skipif(
    REAL_CONFIGS is None,
    reason="../shared/real-configs is absent (set STAPLEGATE_REAL_CONFIGS to its path)",
)
@pytest.mark.parametrize("stem", [c.stem for c in _CONFIGS] or ["none"])
def test_every_real_configuration_loads_in_sidecar_mode(
    stem: str, prepared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = prepared / stem
    env = dict(os.environ)
    for line in (directory / "env").read_text().splitlines():
        key, equals, value = line.partition("=")
        if equals:
            env[key] = value
    monkeypatch.chdir(directory)  # relative paths resolve as HAProxy's would, from its cwd
    found = read_haproxy_config([str(directory / "haproxy.cfg")], env=env, update_all=True)
    assert found.discovery.errors == ()
    for certificate in found.discovery.certificates:
        assert certificate.entry.uri is not None
