"""Header value expressions: what parses, and that everything else is a clear refusal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from staplegate.config.samples import (
    LogVariable,
    SampleExpression,
    SampleSyntaxError,
    compile_converter,
    forget_compiled,
    parse_header_format,
    parse_unique_id_format,
)


def test_literals_percent_and_expressions() -> None:
    assert parse_header_format("plain") == ("plain",)
    assert parse_header_format("100%%") == ("100%",)
    assert parse_header_format("cn=%[ssl_c_s_dn(CN,-1)] der=%{+Q}[ssl_c_der,base64]") == (
        "cn=",
        SampleExpression("ssl_c_s_dn", ("CN", "-1")),
        " der=",
        SampleExpression("ssl_c_der", (), ("base64",), quote=True),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("%[ssl_c_serial]", "is binary"),
        ("%[ssl_c_sha1]", "is binary"),
        ("%[ssl_c_r_dn]", "not supported"),
        ("%[ssl_c_serial,lower]", "is binary"),
        ("%[req.cook(x)]", "not supported"),
        ("%[req.hdr]", "expects a name"),
        ("%[hdr(x,y)]", "occurrence 'y'"),
        ("%[uuid(1)]", "only version 4"),
        ("%[src(1)]", "takes no argument"),
        ("%[ssl_c_s_dn(CN,0)]", "not a non-zero number"),
        ("%[ssl_c_s_dn(CN,1,oneline)]", "format"),
        ("%[ssl_c_s_dn(C N)]", "expects"),
        ("%[src,json]", "converter 'json'"),
        ("%[src", "not supported in header values"),
        ("50%", "not supported in header values"),
        ("%ci", "not supported in header values"),
    ],
)
def test_refusals_say_why(text: str, message: str) -> None:
    with pytest.raises(SampleSyntaxError, match=message):
        parse_header_format(text)


def test_unique_id_format() -> None:
    """`%{+X}o` turns hexadecimal on for what follows; `%[…]` and `%%` as in header values."""
    assert parse_unique_id_format("%{+X}o %ci:%cp_%[src]%%") == (
        " ",
        LogVariable("ci", hexa=True),
        ":",
        LogVariable("cp", hexa=True),
        "_",
        SampleExpression("src"),
        "%",
    )
    assert parse_unique_id_format("%Ts") == (LogVariable("Ts"),)
    with pytest.raises(SampleSyntaxError, match="'%hr' is not supported here"):
        parse_unique_id_format("%hr")


def test_map_converters_read_their_file_once_per_configuration_reading(tmp_path: Path) -> None:
    tiers = tmp_path / "tiers.map"
    tiers.write_text("gold.test gold\n", encoding="utf-8")
    text = f"%[req.hdr(host),lower,map_str({tiers},free)]"
    (expression,) = parse_header_format(text)
    assert isinstance(expression, SampleExpression)
    compiled = compile_converter(expression.converters[1])
    assert compiled.table is not None
    assert compiled.default == "free"
    assert dict(compiled.table.exact) == {"gold.test": "gold"}
    tiers.write_text("gold.test platinum\n", encoding="utf-8")
    assert dict(compile_converter(expression.converters[1]).table.exact) == {  # type: ignore[union-attr]
        "gold.test": "gold"
    }  # a request never reads the file
    forget_compiled()  # what a new reading of the configuration (a reload) does first
    assert dict(compile_converter(expression.converters[1]).table.exact) == {  # type: ignore[union-attr]
        "gold.test": "platinum"
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("%[path,map_dom(/x.map)]", "converter 'map_dom' is not supported (map converters"),
        ("%[path,map_str(/nonexistent/x.map)]", "map file '/nonexistent/x.map' cannot be read"),
        ("%[path,map_beg()]", "'map_beg' expects (<map file>[,<default value>])"),
        ("%[path,map(opt@/x.map)]", "'opt@' (HAProxy 3.x) is not supported"),
    ],
)
def test_map_refusals(text: str, message: str) -> None:
    with pytest.raises(SampleSyntaxError, match=re.escape(message)):
        parse_header_format(text)
