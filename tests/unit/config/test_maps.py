"""Map files and the `map_*` lookups: HAProxy's file format and match methods."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from staplegate.config.maps import MapError, load_map, lookup


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "m.map"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_exact_beg_sub_end_and_reg(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# routes\n\n/api/   api backend\n/api/v2/ v2\n/static/ static\n.png images\n  \n",
    )
    exact = load_map(path, "str")
    assert lookup(exact, "/api/") == "api backend"  # the value is the rest of the line
    assert lookup(exact, "/api/x") is None
    beg = load_map(path, "beg")
    assert lookup(beg, "/api/v2/users") == "api backend"  # the first line in file order
    assert lookup(beg, "/static/a.css") == "static"
    assert lookup(load_map(path, "end"), "/logo.png") == "images"
    assert lookup(load_map(path, "sub"), "/x/static/y") == "static"
    regs = load_map(write(tmp_path, "^/a/[0-9]+$ numbered\n^/a/ any\n"), "reg")
    assert lookup(regs, "/a/42") == "numbered"
    assert lookup(regs, "/a/b") == "any"
    assert lookup(regs, "/b") is None


def test_ip_takes_the_most_specific_network(tmp_path: Path) -> None:
    table = load_map(
        write(tmp_path, "10.0.0.0/8 private\n10.1.0.0/16 lab\n127.0.0.1 me\n::1 me6\n"), "ip"
    )
    assert lookup(table, "10.1.2.3") == "lab"
    assert lookup(table, "10.9.9.9") == "private"
    assert lookup(table, "127.0.0.1") == "me"
    assert lookup(table, "::1") == "me6"
    assert lookup(table, "192.0.2.1") is None
    assert lookup(table, "not an address") is None


@pytest.mark.parametrize(
    ("text", "method", "message"),
    [
        ("^(a oops\n", "reg", "line 1: bad regex"),
        ("# c\n300.1.1.1 x\n", "ip", "line 2: '300.1.1.1' is no IP address or network"),
    ],
)
def test_bad_lines_name_the_file_and_line(
    tmp_path: Path, text: str, method: str, message: str
) -> None:
    with pytest.raises(MapError, match=message):
        load_map(write(tmp_path, text), method)


def test_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(MapError, match="cannot be read"):
        load_map(str(tmp_path / "missing.map"), "str")


@given(data=st.binary(max_size=300), method=st.sampled_from(["str", "beg", "reg", "ip"]))
@settings(max_examples=200)
def test_any_file_loads_or_is_refused_with_map_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, method: str
) -> None:
    path = tmp_path_factory.mktemp("maps") / "m.map"
    path.write_bytes(data)
    try:
        table = load_map(str(path), method)
    except MapError:
        return
    for key, _ in table.pairs:
        lookup(table, key)  # never raises
