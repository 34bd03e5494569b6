"""A generation: the configuration's certificates loaded once each, problems as diagnostics.

Real configuration files and certificates from the test CA in tmp_path; `load_generation`
is what `staplegate -c` and the server both call.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

from staplegate.certs import ExtraFiles
from staplegate.config.diagnostics import Severity
from staplegate.deploy.generation import extra_files_of, load_generation
from staplegate.testpki.pytest_plugin import Pki

NOW = dt.datetime.now(dt.UTC)

CONFIG = """\
global
    ssl-load-extra-files {extra}
defaults
    timeout connect 1s
    timeout client 1s
    timeout server 1s
frontend one
    bind 127.0.0.1:9 ssl crt {crt}
    default_backend web
frontend two
    bind 127.0.0.1:10 ssl crt {crt} crt {other}
    default_backend web
backend web
    server web1 127.0.0.1:9
"""


def write(tmp_path: Path, **fields: object) -> Path:
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(**{"extra": "all", **fields}), encoding="utf-8")
    return config


def test_a_certificate_used_twice_is_loaded_once_with_both_uses(tmp_path: Path, pki: Pki) -> None:
    www = pki.issue("www.example.test")
    shop = pki.issue("shop.example.test")
    err = io.StringIO()
    config = write(tmp_path, crt=www.bundle_path, other=shop.bundle_path)
    generation = load_generation([str(config)], now=NOW, err=err)
    assert generation is not None
    assert generation.ok, err.getvalue()
    entries = {entry.name: entry for entry in generation.loaded()}
    assert set(entries) == {str(www.bundle_path), str(shop.bundle_path)}
    shared = entries[str(www.bundle_path)]
    assert [ref.frontend for ref in shared.references] == ["one", "two"]
    assert shared.certificate is not None
    assert shared.certificate.cert_id is not None  # the issuer was found: OCSP is possible
    assert shared.readiness is not None
    assert extra_files_of(generation.config) == ExtraFiles.parse(["all"], del_ext=False)


def test_extra_files_none_when_unset_and_all_when_every_kind_is_named(
    tmp_path: Path, pki: Pki
) -> None:
    www = pki.issue("www.example.test")
    every_kind = "bundle sctl ocsp issuer key"
    for extra, expected in [(every_kind, ["all"]), ("none", ["none"]), ("ocsp", ["ocsp"])]:
        config = write(tmp_path, extra=extra, crt=www.bundle_path, other=www.bundle_path)
        generation = load_generation([str(config)], now=NOW, err=io.StringIO())
        assert generation is not None
        assert extra_files_of(generation.config) == ExtraFiles.parse(expected, del_ext=False)


def test_an_unloadable_certificate_is_an_error_at_its_first_use(tmp_path: Path, pki: Pki) -> None:
    www = pki.issue("www.example.test")
    missing = tmp_path / "gone.pem"
    err = io.StringIO()
    config = write(tmp_path, crt=missing, other=www.bundle_path)
    generation = load_generation([str(config)], now=NOW, err=err)
    assert generation is not None  # the configuration itself is fine
    assert not generation.ok
    (error,) = [d for d in generation.diagnostics if d.severity is Severity.ERROR]
    assert (error.file, error.line, error.keyword) == (str(config), 8, "crt")  # frontend one's bind
    assert str(error) in err.getvalue()
    failed = next(e for e in generation.certificates if e.name == str(missing))
    assert failed.certificate is None
    assert failed.error is not None
    assert [e.name for e in generation.loaded()] == [str(www.bundle_path)]


def test_a_configuration_error_gives_no_generation(tmp_path: Path) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text("frontend www\n    bind\n", encoding="utf-8")
    err = io.StringIO()
    assert load_generation([str(config)], now=NOW, err=err) is None
    assert "[ALERT] config : parsing [" in err.getvalue()
