"""The test responder's pure parts: decoding an OCSP GET path (RFC 6960 A.1) to DER."""

from __future__ import annotations

import base64

from staplegate.testpki.responder import decode_get_path


def test_get_path_decoding() -> None:
    der = bytes([0x30, 0x45, 0x00, 0xFB, 0xEF, 0xBE, 0xFF, 0xFF, 0xFF]) + bytes(range(62))
    assert len(der) == 0x45 + 2
    text = base64.b64encode(der).decode()
    assert "/" in text
    assert "+" in text
    encoded = text.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    assert decode_get_path("/" + encoded) == der
    assert decode_get_path("/" + text) == der
    assert decode_get_path("/ocsp/" + encoded) == der
    assert decode_get_path("/" + encoded + "?x=1") == der
    assert decode_get_path("/%%%") is None
    assert decode_get_path("/" + base64.b64encode(b"\x30\x05abc").decode()) is None  # bad length
    assert decode_get_path("/") is None
