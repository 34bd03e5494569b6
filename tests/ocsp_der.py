"""DER surgery on real OCSP responses, for the tests that need a malformed one.

Tests may hand-craft bytes; production code never does. Everything here starts from a
response cryptography (or the test responder) really built and signed, then changes a few
bytes the way an attacker on the path to the responder could:

- `retag_string(der, text)`: the first DER string whose content is `text` (a name
  attribute's value: a CN in the ResponderID or in an embedded certificate's subject) gets
  another universal tag, BOOLEAN by default. The length stays, so every enclosing length is
  still right and the outer structure still parses; only the lazy name parsing trips on it.
- `resign(der, key)`: sign tbsResponseData again with `key`, so a test can show that even a
  correctly signed malformed response is refused for what it is, not for its signature.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

#: universal string types a name attribute may use (UTF8, Printable, T61, IA5)
_STRING_TAGS = (0x0C, 0x13, 0x14, 0x16)
BOOLEAN = 0x01
INTEGER = 0x02


def retag_string(der: bytes, text: str, *, tag: int = BOOLEAN, occurrence: int = 0) -> bytes:
    """`der` with the `occurrence`-th DER string holding `text` re-tagged as `tag`."""
    value = text.encode()
    if len(value) >= 0x80:
        raise ValueError("only short-form lengths are supported")
    found = -1
    start = 0
    while True:
        index = der.find(value, start)
        if index < 2:
            raise ValueError(f"{text!r} is not a DER string in the response")
        if der[index - 1] == len(value) and der[index - 2] in _STRING_TAGS:
            found += 1
            if found == occurrence:
                return der[: index - 2] + bytes([tag]) + der[index - 1 :]
        start = index + 1


def _read_tlv(der: bytes, offset: int) -> tuple[int, int]:
    """(content start, end) of the TLV at `offset`."""
    length = der[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(der[start : start + count], "big")
        start += count
    return start, start + length


def _children(der: bytes) -> list[bytes]:
    out, offset = [], 0
    while offset < len(der):
        _, end = _read_tlv(der, offset)
        out.append(der[offset:end])
        offset = end
    return out


def _content(tlv: bytes) -> bytes:
    start, end = _read_tlv(tlv, 0)
    return tlv[start:end]


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def tbs_response_data(der: bytes) -> bytes:
    """The signed part (tbsResponseData TLV) of a successful basic OCSPResponse."""
    _status, response_bytes = _children(_content(der))
    _oid, octets = _children(_content(_content(response_bytes)))
    return _children(_content(_content(octets)))[0]


def resign(der: bytes, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    """`der` with tbsResponseData signed again by `key` (SHA-256)."""
    status, response_bytes = _children(_content(der))
    oid, octets = _children(_content(_content(response_bytes)))
    tbs, algorithm, _signature, *rest = _children(_content(_content(octets)))
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    basic = _tlv(0x30, tbs + algorithm + _tlv(0x03, b"\x00" + signature) + b"".join(rest))
    body = _tlv(0x30, oid + _tlv(0x04, basic))
    return _tlv(0x30, status + _tlv(0xA0, body))
