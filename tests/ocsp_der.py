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

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

#: universal string types a name attribute may use (UTF8, Printable, T61, IA5)
_STRING_TAGS = (0x0C, 0x13, 0x14, 0x16)
BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03  # cryptography raises TypeError for it (ValueError for the two above)


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


def resign(
    der: bytes,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
    *,
    deterministic: bool = False,
) -> bytes:
    """`der` with tbsResponseData signed again by `key` (SHA-256; `deterministic`: RFC 6979
    ECDSA, the same bytes on every run)."""
    status, response_bytes = _children(_content(der))
    oid, octets = _children(_content(_content(response_bytes)))
    tbs, algorithm, _signature, *rest = _children(_content(_content(octets)))
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(tbs)
    else:
        signature = key.sign(tbs, ec.ECDSA(hashes.SHA256(), deterministic_signing=deterministic))
    basic = _tlv(0x30, tbs + algorithm + _tlv(0x03, b"\x00" + signature) + b"".join(rest))
    body = _tlv(0x30, oid + _tlv(0x04, basic))
    return _tlv(0x30, status + _tlv(0xA0, body))


def malformed_name_response(
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    issuer_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    tag: int = BOOLEAN,
    now: dt.datetime | None = None,
) -> bytes:
    """A GOOD response for `certificate`, signed by `issuer` and naming it byName, whose
    ResponderID CN has the wrong ASN.1 type `tag` (then signed again: only the name is bad).
    """
    when = now or dt.datetime.now(dt.UTC)
    response = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=certificate,
            issuer=issuer,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=when - dt.timedelta(minutes=1),
            next_update=when + dt.timedelta(days=1),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.NAME, issuer)
        .sign(issuer_key, hashes.SHA256())
    )
    der = response.public_bytes(serialization.Encoding.DER)
    common_name = issuer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(common_name, str)
    return resign(retag_string(der, common_name, tag=tag), issuer_key)


# --- re-encoding with a substitution (the lengths of every enclosing TLV follow) ---

#: AlgorithmIdentifier of SHA-1 and MD5 as cryptography writes a CertID's (NULL parameters)
SHA1_ALGORITHM = bytes.fromhex("300906052b0e03021a0500")
MD5_ALGORITHM = bytes.fromhex("300c06082a864886f70d02050500")


def _encapsulates(tag: int, content: bytes) -> bool:
    """An OCTET STRING that holds DER (ResponseBytes.response) rather than a hash."""
    if tag != 0x04 or len(content) < 64 or content[0] != 0x30:
        return False
    try:
        return _read_tlv(content, 0)[1] == len(content)
    except IndexError:
        return False


def substitute(der: bytes, old: bytes, new: bytes) -> bytes:
    """`der` with every complete TLV equal to `old` replaced by `new`, lengths re-encoded."""
    out = []
    offset = 0
    while offset < len(der):
        start, end = _read_tlv(der, offset)
        tlv, tag, content = der[offset:end], der[offset], der[start:end]
        if tlv == old:
            out.append(new)
        elif tag & 0x20 or _encapsulates(tag, content):
            out.append(_tlv(tag, substitute(content, old, new)))
        else:
            out.append(tlv)
        offset = end
    return b"".join(out)


def with_md5_cert_id(der: bytes) -> bytes:
    """A response or a CertID DER with its CertID hash algorithm changed from SHA-1 to MD5
    (the hashes stay 20 bytes: only the algorithm matters to the code under test)."""
    changed = substitute(der, SHA1_ALGORITHM, MD5_ALGORITHM)
    if changed == der:
        raise ValueError("no SHA-1 CertID in the DER")
    return changed


def with_produced_at(der: bytes, when: dt.datetime) -> bytes:
    """`der` with producedAt set to `when` (cryptography's builder stamps the real time);
    sign again afterwards."""
    produced = ocsp.load_der_ocsp_response(der).produced_at_utc
    old = b"\x18\x0f" + produced.strftime("%Y%m%d%H%M%SZ").encode()
    new = b"\x18\x0f" + when.astimezone(dt.UTC).strftime("%Y%m%d%H%M%SZ").encode()
    if der.count(old) != 1:
        raise ValueError("producedAt is not unique in the DER")
    return der.replace(old, new)
