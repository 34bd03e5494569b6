"""Conditions and redirects end to end (issue 18): a live staplegate, a real TLS client,
real backends that record what they receive.

One configuration in the style of the real-world corpus (HAProxy's content-switching
example, home-server Host routing, easy-haproxy's certbot paths): named ACLs on several
lines, `||`, `!`, `-m`, derived keywords, header/method/query/port fetches, `-f FILE`,
`%[…]` values from the request, `return … lf-string`, and the `redirect` keyword.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import staplegate
from .test_http_mode_e2e import HOST, backends, connect, get, started, write_config

pytestmark = pytest.mark.slow

CONDITIONS = """\
frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    acl static path_end -i .css .js
    acl static path_beg /static/
    acl is_api hdr_beg(host) -i api.
    acl v2 path_reg ^/v[0-9]+/
    acl blocked src -f {blocked}
    acl write method POST PUT DELETE
    acl tagged req.hdr(x-tag) -m sub beta
    acl debug url_param(debug) 1
    acl tls_port dst_port {port}
    http-request deny deny_status 451 if blocked
    http-request deny if write !is_api
    http-request set-header X-Route %[method]:%[path]:%[url_param(id)]:%[dst_port]
    http-request set-header X-Host %[req.hdr(host),lower]
    http-request return status 200 content-type text/plain string debug-on \
        if debug tls_port || {{ hdr_cnt(x-probe) ge 2 }}
    http-request return status 200 content-type text/plain \
        lf-string "hello %[src] n=%[url_param(n)]" if {{ path /hello }}
    redirect prefix https://new.example.test code 301 drop-query if {{ path_beg /old/ }}
    redirect location https://docs.example.test/ if {{ hdr(host) -m str docs.test }}
    use_backend static if static || tagged
    use_backend api if is_api v2
    default_backend web

backend web
    server w 127.0.0.1:{web}

backend static
    server s 127.0.0.1:{static}

backend api
    server a 127.0.0.1:{api}
"""


def test_conditions_route_deny_rewrite_and_redirect(tmp_path: Path, pki: Pki) -> None:
    blocked = tmp_path / "blocked.lst"
    blocked.write_text("# nobody local is blocked\n192.0.2.0/24\n", encoding="utf-8")
    with backends("web", "static", "api") as (web, static, api):
        config, port = write_config(
            tmp_path,
            pki,
            CONDITIONS,
            web=web.port,
            static=static.port,
            api=api.port,
            blocked=blocked,
        )
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            # named ACL on two lines (OR), and `||` with a header match: per request routing
            conn = connect(port, pki)
            for path, headers in (
                ("/a/site.CSS", {}),
                ("/static/x.png", {}),
                ("/page?id=7", {}),
                ("/page", {"X-Tag": "alpha,beta-2"}),
            ):
                conn.request("GET", path, headers={"Host": HOST, **headers})
                response = conn.getresponse()
                assert response.status == 200, path
                response.read()
            conn.close()
            assert static.paths() == ["/a/site.CSS", "/static/x.png", "/page"]
            assert web.paths() == ["/page?id=7"]
            _path, seen = web.requests[0]
            assert seen["x-route"] == f"GET:/page:7:{port}"
            assert seen["x-host"] == HOST
            # AND of a Host prefix (-i) and a regex on the path
            assert get(port, pki, "/v2/users", {"Host": "API.example.test"})[:2] == (
                200,
                b"api /v2/users",
            )
            assert get(port, pki, "/users", {"Host": "api.example.test"})[1] == b"web /users"
            # method ACL with `!`: a POST is denied unless it goes to the API host
            conn = connect(port, pki)
            conn.request("POST", "/form", body=b"x", headers={"Host": HOST})
            response = conn.getresponse()
            assert response.status == 403
            response.read()
            conn.close()
            # url_param and dst_port, or a header counted twice
            assert get(port, pki, "/x?a=1&debug=1")[:2] == (200, b"debug-on")
            conn = connect(port, pki)
            conn.putrequest("GET", "/probe", skip_host=True)
            conn.putheader("Host", HOST)
            conn.putheader("X-Probe", "1")
            conn.putheader("X-Probe", "2")
            conn.endheaders()
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"debug-on")
            conn.close()
            # `return … lf-string`: evaluated for each request
            assert get(port, pki, "/hello?n=5")[:2] == (200, b"hello 127.0.0.1 n=5")
            # the `redirect` keyword: prefix with drop-query and code, and location
            status, _body, response = get(port, pki, "/old/page?q=1")
            assert (status, response.getheader("location")) == (
                301,
                "https://new.example.test/old/page",
            )
            status, _body, response = get(port, pki, "/any", {"Host": "docs.test"})
            assert (status, response.getheader("location")) == (302, "https://docs.example.test/")
            assert "/any" not in web.paths() + static.paths() + api.paths()
