"""Map converters end to end: header values, a dynamic `use_backend` and a condition read
HAProxy map files; a live staplegate and Debian's HAProxy 2.6 with the same configuration
and files in one run route and rewrite the same requests the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import check_accepts, debian_haproxy, free_port, staplegate
from .test_errorfile_e2e import answer, exchange
from .test_http_mode_e2e import RecordingBackend, backends, started, write_config

pytestmark = pytest.mark.slow

MAPS = {
    "tiers.map": "# host -> tier\ngold.test gold\nsilver.test silver\n",
    "nets.map": "10.0.0.0/8 private\n127.0.0.0/8 loopback\n127.0.0.1/32 this-host\n",
    "routes.map": "/api/ api\n/static/ fallback\n",
    "blocked.map": "evil.test 1\n",
}

CONFIG = """\
frontend web
    bind 127.0.0.1:{http}
    http-request deny if {{ req.hdr(host),lower,map_str({dir}/blocked.map) -m found }}
    http-request set-header X-Tier %[req.hdr(host),lower,map_str({dir}/tiers.map,free)]
    http-request set-header X-Net %[src,map_ip({dir}/nets.map)]
    use_backend %[path,map_beg({dir}/routes.map)]
    default_backend fallback

backend api
    server a 127.0.0.1:{api}

backend fallback
    server f 127.0.0.1:{fallback}
"""


def get(port: int, host: str, path: str) -> int:
    status, _, _ = answer(exchange(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()))
    return status


def run_and_check(port: int, api: RecordingBackend, fallback: RecordingBackend) -> None:
    assert get(port, "Gold.test", "/api/users") == 200
    path, headers = api.requests[-1]
    assert (path, headers["x-tier"], headers["x-net"]) == ("/api/users", "gold", "this-host")
    assert get(port, "other.test", "/static/a.css") == 200
    path, headers = fallback.requests[-1]
    assert (path, headers["x-tier"]) == ("/static/a.css", "free")  # the map's default
    assert get(port, "silver.test", "/unmapped") == 200  # no line: default_backend
    assert fallback.requests[-1][0] == "/unmapped"
    assert get(port, "EVIL.test", "/api/x") == 403
    assert api.requests[-1][0] == "/api/users"  # the denied request reached no server


def test_map_converters_like_haproxy(tmp_path: Path, pki: Pki) -> None:
    for name, text in MAPS.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    with backends("a", "f") as (api, fallback):
        ports = {"http": free_port(), "api": api.port, "fallback": fallback.port}
        config, _ = write_config(tmp_path, pki, CONFIG, dir=tmp_path, **ports)
        check_accepts(config)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            run_and_check(ports["http"], api, fallback)

        ha_ports = {"http": free_port(), "api": api.port, "fallback": fallback.port}
        (tmp_path / "ha").mkdir()
        ha_config, _ = write_config(tmp_path / "ha", pki, CONFIG, dir=tmp_path, **ha_ports)
        with debian_haproxy(ha_config, ha_ports["http"], tmp_path / "haproxy.log"):
            run_and_check(ha_ports["http"], api, fallback)
