"""Read a TLS ClientHello from the first bytes of a connection, before OpenSSL sees them.

Theory of operation: the data plane picks the certificate (and so the immutable SSL.Context)
before it creates the pyOpenSSL connection, the way mitmproxy does, so it never switches
contexts inside OpenSSL's servername callback: `set_context` there would not apply the new
context's verify mode or options, and every context would need the same callbacks.
This module is the pure half of that: bytes in, a `ClientHello` (or "need more bytes") out.

- Records: the hello may be split over several handshake records, and the records over any
  number of TCP segments. Handshake payloads are concatenated until the 4-byte handshake
  header and the body it announces are complete.
- Only what the data plane needs is kept: SNI, ALPN offers, `status_request`, supported
  versions, signature algorithms (to pick RSA or ECDSA for one name), cipher suites. Every
  field is bounds-checked in the one pass; the lists are decoded only when read.
- A bind with one certificate does not call this at all (`proxy.connection`): OpenSSL reads the
  hello, and the SNI is asked of it.
- Anything malformed raises `ClientHelloError` with a reason; nothing else ever escapes
  (the module is fuzzed). The size is capped so a peer cannot make us buffer without bound.
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass
from typing import Final, cast

RECORD_HEADER_LEN: Final = 5
HANDSHAKE_HEADER_LEN: Final = 4
MAX_RECORD_PAYLOAD: Final = 16384 + 2048  # TLSPlaintext limit plus the compression allowance
MAX_CLIENT_HELLO: Final = 65536  # far above real hellos (post-quantum shares are ~1.5 KB)

#: Cipher suites an ECDSA certificate can serve: every TLS 1.3 suite (the key type is not in
#: the suite) and the TLS 1.2 ECDHE_ECDSA ones OpenSSL knows (IANA values).
ECDSA_CAPABLE_SUITES: Final = frozenset(
    (
        *range(0x1301, 0x1306),  # TLS 1.3
        *range(0xC006, 0xC00B),  # ECDHE_ECDSA with NULL, RC4, 3DES, AES-CBC-SHA
        0xC023, 0xC024, 0xC02B, 0xC02C,  # AES-CBC-SHA2, AES-GCM
        0xC048, 0xC049, 0xC05C, 0xC05D,  # ARIA
        0xC072, 0xC073, 0xC086, 0xC087,  # Camellia
        *range(0xC0AC, 0xC0B0),  # AES-CCM
        0xCCA9,  # ChaCha20-Poly1305
    )
)  # fmt: skip

_CONTENT_HANDSHAKE: Final = 22
_HANDSHAKE_CLIENT_HELLO: Final = 1


class ExtensionType(enum.IntEnum):
    """The ClientHello extensions this parser reads (IANA TLS ExtensionType values)."""

    SERVER_NAME = 0
    STATUS_REQUEST = 5
    SIGNATURE_ALGORITHMS = 13
    ALPN = 16
    SUPPORTED_VERSIONS = 43


class SignatureScheme(enum.IntEnum):
    """The TLS SignatureScheme values that decide the certificate's key type."""

    RSA_PKCS1_SHA1 = 0x0201
    ECDSA_SHA1 = 0x0203
    RSA_PKCS1_SHA256 = 0x0401
    ECDSA_SECP256R1_SHA256 = 0x0403
    RSA_PKCS1_SHA384 = 0x0501
    ECDSA_SECP384R1_SHA384 = 0x0503
    RSA_PKCS1_SHA512 = 0x0601
    ECDSA_SECP521R1_SHA512 = 0x0603
    RSA_PSS_RSAE_SHA256 = 0x0804
    RSA_PSS_RSAE_SHA384 = 0x0805
    RSA_PSS_RSAE_SHA512 = 0x0806
    ED25519 = 0x0807
    ED448 = 0x0808
    RSA_PSS_PSS_SHA256 = 0x0809
    RSA_PSS_PSS_SHA384 = 0x080A
    RSA_PSS_PSS_SHA512 = 0x080B


class ClientHelloErrorReason(enum.Enum):
    NOT_HANDSHAKE = "the first record is not a TLS handshake record (not TLS, or SSLv2)"
    BAD_RECORD = "malformed TLS record header"
    NOT_CLIENT_HELLO = "the first handshake message is not a ClientHello"
    TOO_LARGE = "ClientHello larger than the limit"
    TRUNCATED = "a length field points past the end of the ClientHello"
    BAD_EXTENSION = "malformed extension"
    DUPLICATE_EXTENSION = "an extension appears twice"
    BAD_SERVER_NAME = "malformed server_name (SNI)"


class ClientHelloError(Exception):
    """The peer sent something that is not a usable ClientHello; close the connection."""

    def __init__(self, reason: ClientHelloErrorReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}{': ' + detail if detail else ''}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class NeedMoreData:
    """The bytes so far are a valid prefix; read at least `at_least` more before retrying."""

    at_least: int


class ClientHello:
    """What the data plane needs from a ClientHello (wire values, not interpreted further).

    From the wire (`parse_client_hello`) only the server name is decoded up front: the cipher
    suites, signature algorithms, versions and ALPN offers stay as validated spans of the
    message until something reads them. Picking a certificate for a name with one key type
    never does, and decoding them cost a third of the parse (docs/performance.md).
    """

    __slots__ = (
        "_alpn",
        "_message",
        "_sigalgs",
        "_suites",
        "_versions",
        "legacy_version",
        "server_name",
        "status_request",
    )

    def __init__(
        self,
        legacy_version: int,
        server_name: str | None,
        alpn_protocols: tuple[bytes, ...],
        status_request: bool,
        supported_versions: tuple[int, ...],
        signature_algorithms: tuple[int, ...] | None,  # None: the extension was absent
        cipher_suites: tuple[int, ...],
    ) -> None:
        self.legacy_version = legacy_version
        self.server_name = server_name
        self.status_request = status_request
        self._message = b""
        self._alpn: tuple[bytes, ...] | slice = alpn_protocols
        self._versions: tuple[int, ...] | slice = supported_versions
        self._sigalgs: tuple[int, ...] | slice | None = signature_algorithms
        self._suites: tuple[int, ...] | slice = cipher_suites

    @property
    def alpn_protocols(self) -> tuple[bytes, ...]:
        span = self._alpn
        if type(span) is slice:
            self._alpn = _alpn_names(self._message, span.start, span.stop)
        return cast("tuple[bytes, ...]", self._alpn)

    @property
    def supported_versions(self) -> tuple[int, ...]:
        span = self._versions
        if type(span) is slice:
            self._versions = _uint16s(self._message, span.start, span.stop)
        return cast("tuple[int, ...]", self._versions or (self.legacy_version,))

    @property
    def signature_algorithms(self) -> tuple[int, ...] | None:
        """None when the extension was absent."""
        span = self._sigalgs
        if type(span) is slice:
            self._sigalgs = _uint16s(self._message, span.start, span.stop)
        return cast("tuple[int, ...] | None", self._sigalgs)

    @property
    def cipher_suites(self) -> tuple[int, ...]:
        span = self._suites
        if type(span) is slice:
            self._suites = _uint16s(self._message, span.start, span.stop)
        return cast("tuple[int, ...]", self._suites)

    def _materialized(self) -> tuple[object, ...]:
        return (
            self.legacy_version,
            self.server_name,
            self.alpn_protocols,
            self.status_request,
            self.supported_versions,
            self.signature_algorithms,
            self.cipher_suites,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClientHello):
            return NotImplemented
        return self._materialized() == other._materialized()

    def __hash__(self) -> int:
        return hash(self._materialized())

    def __repr__(self) -> str:
        names = ("legacy_version", "server_name", "alpn_protocols", "status_request",
                 "supported_versions", "signature_algorithms", "cipher_suites")  # fmt: skip
        fields = ", ".join(f"{n}={v!r}" for n, v in zip(names, self._materialized(), strict=True))
        return f"ClientHello({fields})"

    @property
    def offers_tls13(self) -> bool:
        return 0x0304 in self.supported_versions

    def accepts_ecdsa(self) -> bool:
        """True when the peer can verify an ECDSA certificate's signature.

        Without the signature_algorithms extension (TLS 1.2 only) RFC 5246 §7.4.1.4.1 says the
        peer assumes rsa/sha1 for an RSA key exchange: choose RSA then. Like HAProxy, it also
        takes a cipher suite an ECDSA key can serve: a TLS 1.2 client offering only
        ECDHE_RSA suites fails the handshake with an ECDSA certificate whatever its sigalgs.
        """
        sigalgs = self.signature_algorithms
        if sigalgs is None:
            return False
        if not any(alg & 0xFF == 0x03 for alg in sigalgs):
            return False
        return any(suite in ECDSA_CAPABLE_SUITES for suite in self.cipher_suites)

    def accepts_rsa(self) -> bool:
        sigalgs = self.signature_algorithms
        if sigalgs is None:
            return True
        return any(
            alg & 0xFF == 0x01 or 0x0804 <= alg <= 0x0806 or 0x0809 <= alg <= 0x080B
            for alg in sigalgs
        )


def _uint16s(data: bytes, start: int, end: int) -> tuple[int, ...]:
    """A validated span of big-endian 16-bit values."""
    return struct.unpack_from(f">{(end - start) // 2}H", data, start)


def _alpn_names(data: bytes, pos: int, end: int) -> tuple[bytes, ...]:
    """A validated protocol_name_list's names."""
    names: list[bytes] = []
    while pos < end:
        stop = pos + 1 + data[pos]
        names.append(data[pos + 1 : stop])
        pos = stop
    return tuple(names)


ParseResult = ClientHello | NeedMoreData


def _handshake_payload(data: bytes, limit: int) -> bytes | NeedMoreData:
    """Concatenate handshake record payloads until the first handshake message is whole."""
    if (  # the usual case: one record holds the whole hello (no copying into a bytearray)
        len(data) >= RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN
        and data[0] == _CONTENT_HANDSHAKE
        and data[1] == 3
        and data[5] == _HANDSHAKE_CLIENT_HELLO
    ):
        length = (data[3] << 8) | data[4]
        message_len = HANDSHAKE_HEADER_LEN + ((data[6] << 16) | (data[7] << 8) | data[8])
        if (
            message_len <= length <= MAX_RECORD_PAYLOAD
            and message_len <= limit
            and len(data) >= RECORD_HEADER_LEN + length
        ):
            return data[RECORD_HEADER_LEN : RECORD_HEADER_LEN + message_len]
    payload = bytearray()
    pos = 0
    while True:
        if len(payload) >= HANDSHAKE_HEADER_LEN:
            if payload[0] != _HANDSHAKE_CLIENT_HELLO:
                raise ClientHelloError(
                    ClientHelloErrorReason.NOT_CLIENT_HELLO, f"handshake type {payload[0]}"
                )
            body_len = int.from_bytes(payload[1:4], "big")
            if body_len + HANDSHAKE_HEADER_LEN > limit:
                raise ClientHelloError(
                    ClientHelloErrorReason.TOO_LARGE, f"{body_len} bytes, limit {limit}"
                )
            if len(payload) >= HANDSHAKE_HEADER_LEN + body_len:
                return bytes(payload[: HANDSHAKE_HEADER_LEN + body_len])
        elif payload and payload[0] != _HANDSHAKE_CLIENT_HELLO:
            raise ClientHelloError(
                ClientHelloErrorReason.NOT_CLIENT_HELLO, f"handshake type {payload[0]}"
            )
        if len(data) - pos < RECORD_HEADER_LEN:
            if pos < len(data) and data[pos] != _CONTENT_HANDSHAKE:
                raise ClientHelloError(
                    ClientHelloErrorReason.NOT_HANDSHAKE, f"content type {data[pos]}"
                )
            return NeedMoreData(RECORD_HEADER_LEN - (len(data) - pos))
        content_type = data[pos]
        major = data[pos + 1]
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if content_type != _CONTENT_HANDSHAKE:
            raise ClientHelloError(
                ClientHelloErrorReason.NOT_HANDSHAKE, f"content type {content_type}"
            )
        if major != 3:
            raise ClientHelloError(ClientHelloErrorReason.BAD_RECORD, f"version major {major}")
        if length == 0 or length > MAX_RECORD_PAYLOAD:
            raise ClientHelloError(ClientHelloErrorReason.BAD_RECORD, f"record length {length}")
        available = len(data) - pos - RECORD_HEADER_LEN
        if available < length:
            return NeedMoreData(length - available)
        payload += data[pos + RECORD_HEADER_LEN : pos + RECORD_HEADER_LEN + length]
        pos += RECORD_HEADER_LEN + length


def parse_client_hello(data: bytes, *, limit: int = MAX_CLIENT_HELLO) -> ParseResult:
    """Parse the ClientHello at the start of `data` (the connection's first bytes).

    Returns `NeedMoreData` while `data` is a valid but incomplete prefix; raises only
    `ClientHelloError`.
    """
    message = _handshake_payload(data, limit)
    if isinstance(message, NeedMoreData):
        return message
    return _parse_body(message, HANDSHAKE_HEADER_LEN, len(message))


_SERVER_NAME: Final = int(ExtensionType.SERVER_NAME)  # plain ints: enum lookups cost per use
_ALPN: Final = int(ExtensionType.ALPN)
_STATUS_REQUEST: Final = int(ExtensionType.STATUS_REQUEST)
_SUPPORTED_VERSIONS: Final = int(ExtensionType.SUPPORTED_VERSIONS)
_SIGNATURE_ALGORITHMS: Final = int(ExtensionType.SIGNATURE_ALGORITHMS)


def _truncated(what: str) -> ClientHelloError:
    return ClientHelloError(ClientHelloErrorReason.TRUNCATED, what)


def _vector(data: bytes, pos: int, end: int, size: int, what: str) -> tuple[int, int]:
    """The (start, end) of the length-prefixed vector at `pos`, bounded by `end`."""
    start = pos + size
    if start > end:
        raise _truncated(what)
    stop = start + int.from_bytes(data[pos:start], "big")
    if stop > end:
        raise _truncated(what)
    return start, stop


def _parse_body(data: bytes, pos: int, end: int) -> ClientHello:
    # Plain offsets and inline length reads, not a reader object or a call per vector: this
    # runs once per connection on the data plane (docs/performance.md). Every vector is
    # bounds-checked here; the lists are decoded only when read (`ClientHello`).
    if pos + 35 > end:
        raise _truncated(
            "legacy_version" if pos + 2 > end else "random" if pos + 34 > end else "session_id"
        )
    legacy_version = (data[pos] << 8) | data[pos + 1]
    pos += 34
    session_id_len = data[pos]
    if session_id_len > 32:
        raise _truncated("session_id longer than 32")
    pos += 1 + session_id_len
    if pos > end:
        raise _truncated("session_id")
    if pos + 2 > end:
        raise _truncated("cipher_suites")
    start = pos + 2
    pos = start + ((data[pos] << 8) | data[pos + 1])
    if pos > end:
        raise _truncated("cipher_suites")
    if (pos - start) % 2:
        raise _truncated("odd cipher_suites length")
    suites = slice(start, pos)
    if pos + 1 > end:
        raise _truncated("compression_methods")
    pos += 1 + data[pos]
    if pos > end:
        raise _truncated("compression_methods")
    low_seen = 0  # extension types below 64, as bits: no set operation per extension
    high_seen: set[int] | None = None
    server_name: str | None = None
    alpn: slice | tuple[()] = ()
    status_request = False
    versions: slice | tuple[()] = ()
    sigalgs: slice | None = None
    if pos < end:
        if pos + 2 > end:
            raise _truncated("extensions")
        extensions_end = pos + 2 + ((data[pos] << 8) | data[pos + 1])
        if extensions_end > end:
            raise _truncated("extensions")
        pos += 2
        while pos < extensions_end:
            ext_start = pos + 4
            if ext_start > extensions_end:
                raise _truncated("extension type" if pos + 2 > extensions_end else "extension data")
            ext_type = (data[pos] << 8) | data[pos + 1]
            pos = ext_start + ((data[pos + 2] << 8) | data[pos + 3])
            if pos > extensions_end:
                raise _truncated("extension data")
            if ext_type < 64:
                bit = 1 << ext_type
                if low_seen & bit:
                    raise _duplicate(ext_type)
                low_seen |= bit
            else:
                if high_seen is None:
                    high_seen = set()
                elif ext_type in high_seen:
                    raise _duplicate(ext_type)
                high_seen.add(ext_type)
                continue  # every extension we read has a type below 64
            if ext_type == _SERVER_NAME:
                server_name = _server_name(data, ext_start, pos)
            elif ext_type == _ALPN:
                alpn = _alpn_span(data, ext_start, pos)
            elif ext_type == _STATUS_REQUEST:
                status_request = pos > ext_start and data[ext_start] == 1
            elif ext_type == _SUPPORTED_VERSIONS:
                versions = _uint16_span(data, ext_start, pos, 1, "supported_versions")
            elif ext_type == _SIGNATURE_ALGORITHMS:
                sigalgs = _uint16_span(data, ext_start, pos, 2, "signature_algorithms")
    hello = ClientHello.__new__(ClientHello)
    hello.legacy_version = legacy_version
    hello.server_name = server_name
    hello.status_request = status_request
    hello._message = data
    hello._alpn = alpn
    hello._versions = versions
    hello._sigalgs = sigalgs
    hello._suites = suites
    return hello


def _duplicate(ext_type: int) -> ClientHelloError:
    return ClientHelloError(ClientHelloErrorReason.DUPLICATE_EXTENSION, f"extension {ext_type}")


def _uint16_span(data: bytes, pos: int, end: int, size: int, what: str) -> slice:
    start, stop = _vector(data, pos, end, size, what)
    if (stop - start) % 2:
        raise ClientHelloError(ClientHelloErrorReason.BAD_EXTENSION, f"odd {what} list")
    return slice(start, stop)


def _server_name(data: bytes, pos: int, end: int) -> str | None:
    pos, end = _vector(data, pos, end, 2, "server_name_list")
    host: str | None = None
    while pos < end:
        name_type = data[pos]
        start, pos = _vector(data, pos + 1, end, 2, "host_name")
        if name_type != 0 or host is not None:
            continue
        raw = data[start:pos]
        if not raw or len(raw) > 255:
            raise ClientHelloError(ClientHelloErrorReason.BAD_SERVER_NAME, "empty or too long")
        if not is_host_name(raw):
            raise ClientHelloError(
                ClientHelloErrorReason.BAD_SERVER_NAME,
                "not printable ASCII (control bytes, spaces; use the A-label form)",
            )
        host = raw.decode("ascii")
    return host


_NOT_HOST_BYTE: Final = re.compile(rb"[^\x21-\x7e]")


def is_host_name(raw: bytes) -> bool:
    """Printable ASCII without spaces: what a DNS host name (RFC 6066's HostName, A-labels)
    can hold. Control bytes would reach routing, logs and headers (`%[ssl_fc_sni]`)."""
    return _NOT_HOST_BYTE.search(raw) is None


def _alpn_span(data: bytes, pos: int, end: int) -> slice:
    """The protocol_name_list's span, each name checked (non-empty, inside the list)."""
    start, end = _vector(data, pos, end, 2, "protocol_name_list")
    pos = start
    while pos < end:
        name_start, pos = _vector(data, pos, end, 1, "protocol_name")
        if pos == name_start:
            raise ClientHelloError(ClientHelloErrorReason.BAD_EXTENSION, "empty ALPN name")
    return slice(start, end)
