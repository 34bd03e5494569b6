"""Parser, `server` and `default-server` lines and their options."""

from __future__ import annotations

from staplegate.config.model import (
    ProxyProtocol,
    Verify,
)
from staplegate.config.values import AddressFamily
from tests.unit.config.helpers import A, check, one_error

# ------------------------------------------------------------------ server


def test_server_options_and_default_server() -> None:
    config, diags = check(
        "global\n    ca-base /etc/ssl/certs\n"
        "backend app\n    default-server check inter 3s fall 5\n"
        "    server s1 127.0.0.1:9000 rise 4 weight 50 backup maxconn 10 send-proxy-v2\n"
        "    server s2 app.internal:9001 ssl verify required ca-file ca.pem sni "
        "str(app.example.test) no-check disabled\n"
    )
    assert diags == []
    assert config is not None
    s1, s2 = config.backend("app").servers
    assert (s1.check, s1.inter_ms, s1.rise, s1.fall, s1.weight) == (True, 3000, 4, 5, 50)
    assert s1.backup
    assert s1.maxconn == 10
    assert s1.send_proxy is ProxyProtocol.V2
    assert (s2.check, s2.ssl, s2.verify, s2.disabled) == (False, True, Verify.REQUIRED, True)
    assert (s2.ca_file, s2.sni) == ("/etc/ssl/certs/ca.pem", "str(app.example.test)")
    assert s2.address.family is AddressFamily.HOSTNAME


def test_server_errors() -> None:
    cases = {
        "server s1": "'server' expects <name> and <addr>[:<port>] as arguments.",
        "server s1 127.0.0.1:80 weight 300": "'server s1' : 'weight' : 300 is higher than the "
        "maximum 256.",
        "server s1 127.0.0.1:80 rise": "'server s1' : 'rise' expects an argument.",
        "server s1 127.0.0.1:80 inter 2x": "unexpected character 'x' in 'inter'",
        "server s1 127.0.0.1:80 verify optional": "'server s1' : 'verify' : expects 'none' or "
        "'required'.",
        "server s1 127.0.0.1:80 cookie a;b": "'server s1' : 'cookie' : invalid value 'a;b'.",
        "server s1 127.0.0.1:80 port 0": "'server s1' : 'port' : 0 is lower than the minimum 1.",
        "server s1 127.0.0.1:80 slowstart 5x": "unexpected character 'x' in 'slowstart'",
        "server s1 127.0.0.1:80 agent-check": "'server s1' : 'agent-check' is a HAProxy "
        "keyword that staplegate does not support and it would change traffic",
        "server s1 127.0.0.1:80 chek": "'server s1' unknown keyword 'chek'. Did you mean "
        "'check' maybe ?",
    }
    for line, message in cases.items():
        assert one_error(f"backend app\n    {line}\n") == A.format(2, message), line


def test_a_server_without_a_port_takes_the_destinations() -> None:
    config, diags = check("backend app\n    mode http\n    server hop 0.0.0.0\n")
    assert diags == []
    assert config is not None
    (hop,) = config.backend("app").servers
    assert (hop.address.host, hop.address.port) == ("0.0.0.0", 0)
