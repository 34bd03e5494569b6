"""Parser, `crt-store` sections: bases, `load` lines, names, and their errors."""

from __future__ import annotations

import pytest

from tests.unit.config.helpers import A, check, one_error


def test_load_line_joins_the_store_bases() -> None:
    text = (
        "crt-store web\n    crt-base /c\n    key-base /k\n"
        "    load crt a.pem key a.key alias site ocsp-update on\n"
    )
    config, diags = check(text)
    assert diags == []
    assert config is not None
    (store,) = config.crt_stores
    assert (store.name, store.crt_base, store.key_base) == ("web", "/c", "/k")
    (load,) = store.loads
    assert (load.crt_path, load.key_path, load.alias, load.ocsp_update) == (
        "/c/a.pem",
        "/k/a.key",
        "site",
        True,
    )


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "crt-store web\n    load crt a.pem\n    crt-base /c\n",
            3,
            "'crt-base' must be set before the first 'load' line of the crt-store section "
            "(it only applies to the lines after it); move it up.",
        ),
        (
            "crt-store web\n    load crt a.pem\ncrt-store web\n",
            3,
            "crt-store 'web' has the same name as another crt-store declared at t.cfg:1.",
        ),
        (
            "crt-store web\n    load crt a.pem\n    load crt a.pem\n",
            3,
            "Cannot create a new certificate store entry '@web/a.pem', this name is already "
            "used at t.cfg:2.",
        ),
        (
            "crt-store web\n    load crt a.pem aliass x\n",
            2,
            "'load' : unknown keyword 'aliass'. Did you mean 'alias' maybe ?",
        ),
        (
            "crt-store web\n    load crt a.pem acme le\n",
            2,
            "'load acme' is a HAProxy keyword that staplegate does not support and it would "
            "change traffic",
        ),
        ("crt-store web\n    load key a.key\n", 2, "'load' : 'crt' is mandatory."),
        (
            "crt-store web\n    load crt a.pem ocsp-update yes\n",
            2,
            "cannot parse 'ocsp-update' value 'yes', 'on' or 'off' is expected.",
        ),
        ("crt-store web\n    bogus x\n", 2, "unknown keyword 'bogus' in 'crt-store' section."),
        ("crt-store w@b\n", 1, "character '@' is not permitted in 'crt-store' name 'w@b'."),
    ],
)
def test_crt_store_errors(text: str, line: int, message: str) -> None:
    assert one_error(text) == A.format(line, message)


def test_load_line_takes_an_ocsp_responder_override() -> None:
    config, diags = check(
        "crt-store web\n    load crt a.pem ocsp-responder http://mirror.internal/ocsp\n"
    )
    assert diags == []
    assert config is not None
    assert config.crt_stores[0].loads[0].ocsp_responder == "http://mirror.internal/ocsp"
    assert one_error("crt-store web\n    load crt a.pem ocsp-responder mirror.internal\n") == (
        A.format(
            2,
            "'ocsp-responder' expects an http:// or https:// URL with a host, "
            "not 'mirror.internal'.",
        )
    )
