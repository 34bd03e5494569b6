"""The keyword registry: tables, classification, and the rules every section table keeps."""

from __future__ import annotations

import pytest

from staplegate.config.crtlist import CRT_LIST_OPTIONS
from staplegate.config.parser.bind import BIND_OPTIONS
from staplegate.config.parser.crt_store import CRT_STORE
from staplegate.config.parser.global_section import GLOBAL
from staplegate.config.parser.proxies import PROXY
from staplegate.config.parser.registry import (
    KeywordClass,
    KeywordTable,
    ignored,
    keyword_of,
    refused,
    refused_all,
    suggest,
    supported,
)
from staplegate.config.parser.rules import HTTP_REQUEST_ACTIONS
from staplegate.config.parser.server import SERVER_OPTIONS


def _handler() -> None:
    """A stand-in handler: the registry never calls it."""


def test_a_table_classifies_and_explains() -> None:
    table: KeywordTable[object] = KeywordTable(
        [
            supported("mode", _handler),
            ignored("chroot", "staplegate does not chroot"),
            ignored("daemon", "runs in the foreground", _handler),
            refused("lua-load"),
        ]
    )
    assert table.classify("mode") is KeywordClass.SUPPORTED
    assert table.classify("chroot") is KeywordClass.IGNORED
    assert table.classify("lua-load") is KeywordClass.REFUSED
    assert table.classify("frobnicate") is KeywordClass.UNKNOWN
    assert table.names() == {"mode", "chroot", "daemon", "lua-load"}
    assert table.parsed() == {"mode", "daemon"}
    assert table.reasons() == {
        "chroot": "staplegate does not chroot",
        "daemon": "runs in the foreground",
    }
    assert table.reasons(parsed=False) == {"chroot": "staplegate does not chroot"}
    assert table.reasons(parsed=True) == {"daemon": "runs in the foreground"}
    assert table.reason("mode") == "it does not change traffic"


def test_a_keyword_is_registered_once() -> None:
    with pytest.raises(ValueError, match="'mode' is registered twice"):
        KeywordTable([supported("mode"), *refused_all(["mode"])])


@pytest.mark.parametrize(
    ("args", "keyword"),
    [
        (["timeout", "client", "5s"], "timeout client"),
        (["option", "httplog"], "option httplog"),
        (["no", "option", "httplog"], "option httplog"),
        (["no", "option"], "no"),
        (["maxconn", "10"], "maxconn"),
        (["stats"], "stats"),
    ],
)
def test_keyword_of_reads_two_word_keywords(args: list[str], keyword: str) -> None:
    assert keyword_of(args) == keyword


def test_suggest_only_close_typos() -> None:
    assert suggest("chrot", frozenset({"chroot", "daemon"})) == "chroot"
    assert suggest("xyz", frozenset({"chroot", "daemon"})) is None


@pytest.mark.parametrize("table", [GLOBAL, PROXY, CRT_STORE, BIND_OPTIONS, SERVER_OPTIONS])
def test_every_supported_keyword_has_a_handler(table: KeywordTable[object]) -> None:
    """A supported keyword without a handler would be refused: register both together."""
    assert all(e.parsed for e in table if e.kind is KeywordClass.SUPPORTED)


@pytest.mark.parametrize("table", [GLOBAL, PROXY, BIND_OPTIONS, SERVER_OPTIONS])
def test_every_ignored_keyword_says_why(table: KeywordTable[object]) -> None:
    assert all(e.reason.strip() for e in table if e.kind is KeywordClass.IGNORED)


def test_refused_keywords_have_no_handler_except_families() -> None:
    for table in (GLOBAL, PROXY, CRT_STORE, BIND_OPTIONS, SERVER_OPTIONS, CRT_LIST_OPTIONS):
        assert not [e.name for e in table if e.kind is KeywordClass.REFUSED and e.parsed]


def test_each_supported_http_request_action_is_a_proxy_keyword() -> None:
    for action in HTTP_REQUEST_ACTIONS:
        entry = PROXY.get(f"http-request {action.name}")
        if action.parsed:
            assert entry is not None
            assert entry.parsed
        else:
            assert entry is None  # refused through the `http-request` family
