"""The runtime's port helpers: crt-lists and `crt` directories as `show ssl crt-list` sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from staplegate.config.loader import load_config
from staplegate.config.model import Config
from staplegate.runtime.contract import CrtListLine, CrtListView, crt_lists_from_config

DATA = Path(__file__).resolve().parents[2] / "data" / "configs"

CONFIG = """\
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend www
    bind 127.0.0.1:8443 ssl crt-list crt-lists/multi.txt
    bind 127.0.0.1:8444 ssl crt-list crt-lists/multi.txt
    bind 127.0.0.1:8445 ssl crt certs-dir/
    default_backend web
backend web
    server web1 127.0.0.1:8080
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.chdir(DATA)  # the samples' relative paths resolve here, as in HAProxy
    path = tmp_path / "haproxy.cfg"
    path.write_text(CONFIG, encoding="utf-8")
    result = load_config([path], env={})
    assert result.config is not None, [str(d) for d in result.diagnostics]
    return result.config


def test_each_list_once_by_name_with_haproxys_option_order(config: Config) -> None:
    views = crt_lists_from_config(config)
    assert [view.name for view in views] == ["certs-dir", "crt-lists/multi.txt"]  # sorted, once
    directory, crt_list = views
    assert directory == CrtListView(
        "certs-dir",
        (
            CrtListLine("certs-dir/a.example.test.pem", 1, (), ()),
            CrtListLine("certs-dir/b.example.test.pem", 2, (), ()),
        ),
    )
    first, second, third, default = crt_list.lines
    assert first.options == ("alpn h2,http/1.1", "ocsp-update on")
    assert first.sni_filters == ("www.example.test", "example.test")
    assert first.line == 2  # the file's own line numbers, comments counted
    assert second.options == ("ssl-min-ver TLSv1.2", "ocsp-update on")
    assert third.options == ("ocsp-update off",)
    assert third.sni_filters == ("*.example.test", "!admin.example.test")
    assert (default.store, default.options, default.sni_filters) == ("certs/mysite.pem", (), ())
