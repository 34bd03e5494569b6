"""`source` in proxy sections and on `server` lines: address, `usesrc`, and what is refused."""

from __future__ import annotations

import pytest

from staplegate.config.model import SourceBinding, UseSrc
from staplegate.config.parser.source import read_source_words
from staplegate.config.values import ValueSyntaxError
from tests.unit.config.helpers import check, one_error, warnings


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["0.0.0.0"], SourceBinding("0.0.0.0")),
        (["127.0.0.9:4000"], SourceBinding("127.0.0.9", 4000)),
        (["[::1]"], SourceBinding("::1")),
        (["0.0.0.0", "usesrc", "client"], SourceBinding("0.0.0.0", 0, UseSrc.CLIENT)),
        (["0.0.0.0", "usesrc", "clientip"], SourceBinding("0.0.0.0", 0, UseSrc.CLIENT_IP)),
        (
            ["192.0.2.1", "usesrc", "198.51.100.7:8000"],
            SourceBinding("192.0.2.1", 0, UseSrc.ADDRESS, "198.51.100.7", 8000),
        ),
    ],
)
def test_source_words(words: list[str], expected: SourceBinding) -> None:
    assert read_source_words(words) == expected


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ([], "expects <addr>[:<port>]"),
        (["db.internal"], "expects an IPv4 or IPv6 address"),
        (["127.0.0.1:1000-2000"], "port ranges are not supported"),
        (["0.0.0.0", "usesrc", "hdr_ip(x-forwarded-for)"], "lets a request header choose"),
        (["0.0.0.0", "interface", "eth0"], "binds connections to a network device"),
        (["0.0.0.0", "usesrc"], "'usesrc' expects an argument"),
        (["0.0.0.0", "via", "x"], "unknown keyword 'via'"),
    ],
)
def test_source_words_refused(words: list[str], message: str) -> None:
    with pytest.raises(ValueSyntaxError) as caught:
        read_source_words(words)
    assert message in caught.value.message


def test_backend_source_is_inherited_and_a_server_overrides_it() -> None:
    config, diags = check(
        "defaults\n    source 0.0.0.0 usesrc clientip\n"
        "backend app\n"
        "    server a 127.0.0.1:9000\n"
        "    server b 127.0.0.1:9001 source 127.0.0.9 usesrc client\n"
        "backend fixed\n    source 127.0.0.10:0\n    server c 127.0.0.1:9002\n"
    )
    assert diags == []
    assert config is not None
    app = config.backend("app")
    assert app.settings.source == SourceBinding("0.0.0.0", 0, UseSrc.CLIENT_IP)
    a, b = app.servers
    assert a.source is None  # the backend's applies (see the plan)
    assert b.source == SourceBinding("127.0.0.9", 0, UseSrc.CLIENT)
    assert config.backend("fixed").settings.source == SourceBinding("127.0.0.10")


def test_source_errors_name_the_line() -> None:
    assert "[t.cfg:2]" in one_error("backend app\n    source 0.0.0.0 usesrc hdr_ip(x-real-ip)\n")
    message = one_error("backend app\n    server a 127.0.0.1:80 usesrc clientip\n")
    assert "'usesrc' is only valid after 'source'" in message
    message = one_error("backend app\n    server a 127.0.0.1:80 source 0.0.0.0 interface lo\n")
    assert "'interface'" in message
    assert "network device" in message


def test_source_in_a_frontend_is_ignored_with_a_warning() -> None:
    found = warnings("frontend web\n    bind 127.0.0.1:80\n    source 127.0.0.9\n")
    expected = "'source' ignored because frontend 'web' has no backend capability"
    assert any(expected in w for w in found)
