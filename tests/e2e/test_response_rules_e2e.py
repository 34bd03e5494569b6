"""`http-response` and `http-after-response` header rules end to end (issue 18): a live
staplegate, a real TLS client, a real backend.

The corpus writes them for security headers (HSTS, X-Frame-Options), to hide `Server`, and
to label answers; HAProxy runs the backend's rules before the frontend's, and
`http-after-response` also on the answers it makes itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import staplegate
from .test_http_mode_e2e import HOST, backends, connect, started, write_config

pytestmark = pytest.mark.slow

CONFIG = """\
backend web
    http-response set-header X-Order backend
    http-response set-header X-Backend web
    server w 127.0.0.1:{web}

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    http-request return status 200 content-type text/plain string local if {{ path /local }}
    http-response set-header Strict-Transport-Security "max-age=31536000; includeSubDomains"
    http-response del-header Server
    http-response set-header X-Order frontend
    http-response add-header X-Served-By %[ssl_fc_sni]/%[status]/%[res.hdr(content-type)]
    http-response set-header X-Frame-Options DENY if {{ src 10.0.0.0/8 }}
    http-after-response set-header X-After yes
    default_backend web
"""


def test_response_header_rules(tmp_path: Path, pki: Pki) -> None:
    with backends("web") as (web,):
        config, port = write_config(tmp_path, pki, CONFIG, web=web.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            conn = connect(port, pki)
            for _ in range(2):  # the second one on the kept-alive connection
                conn.request("GET", "/page", headers={"Host": HOST})
                response = conn.getresponse()
                assert (response.status, response.read()) == (200, b"web /page")
                headers = {k.lower(): v for k, v in response.getheaders()}
                assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
                assert "server" not in headers  # BaseHTTPRequestHandler sends one
                assert headers["x-order"] == "frontend"  # the backend's rules run first
                assert headers["x-backend"] == "web"
                assert headers["x-served-by"] == f"{HOST}/200/text/plain"
                assert "x-frame-options" not in headers
                assert headers["x-after"] == "yes"
                assert headers["content-length"] == "9"
            conn.request("GET", "/local", headers={"Host": HOST})
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"local")
            headers = {k.lower(): v for k, v in response.getheaders()}
            assert headers["x-after"] == "yes"  # http-after-response: local answers too
            assert "strict-transport-security" not in headers  # http-response: not local
            conn.close()
