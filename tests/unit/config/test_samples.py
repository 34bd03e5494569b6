"""Header value expressions: what parses, and that everything else is a clear refusal."""

from __future__ import annotations

import pytest

from staplegate.config.samples import SampleExpression, SampleSyntaxError, parse_header_format


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
