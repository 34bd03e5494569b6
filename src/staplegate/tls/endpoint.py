"""One server-side TLS connection over memory BIOs: ciphertext in, plaintext and ciphertext out.

Theory of operation ("A-fast", docs/explanation/data-plane.md): the asyncio protocol hands
every ciphertext chunk to `receive`, which writes it into OpenSSL's incoming memory BIO, drives
the handshake, decrypts whatever complete records are there and returns the plaintext and the
bytes OpenSSL wants sent (handshake flights, TLS 1.3 tickets, alerts, KeyUpdate answers).
Fill levels of the BIOs are read (`_openssl_compat`), so the common path raises no
`WantReadError`; without them it falls back to draining until the exception.

No I/O happens here, so tests can pump two endpoints in memory. Errors are `TlsEndpointError`
with a reason and the bytes still to send (an alert), because the peer deserves the alert even
when we give up. Exceptions that pyOpenSSL defers from callbacks (any type, not only
`SSL.Error`) are caught too. `release()` marks the session shut down cleanly, so closing a
connection whose client never sent close_notify does not evict its session from the cache
(pitfall 2).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

from staplegate.tls import _openssl_compat as compat
from staplegate.tls.clientcert import ClientCertificate
from staplegate.tls.contexts import ServerContext
from staplegate.tls.staples import StapleLookup, StapleOutcome, StapleStats

_DER: Final = serialization.Encoding.DER
CHUNK: Final = 65536  # bigger reads make glibc trim and regrow the heap (dataplane.md §6.8)
_FAST: Final = compat.fast_path_available()  # fill levels: no drain-until-exception
_DIRECT: Final = _FAST and compat.direct_io_available()  # no pyOpenSSL wrapper per call
#: Whether `TlsEndpoint.read` and `encrypt_plaintext_buffer` may be used (else `receive`
#: and `send`, which work with any pyOpenSSL).
DIRECT: Final = _DIRECT
#: Where backend reads land: what `TlsEndpoint.encrypt_plaintext_buffer` encrypts.
PLAINTEXT_BUFFER: Final = compat.plaintext_buffer()


class AlertDescription(enum.IntEnum):
    """TLS alert descriptions we send ourselves, before OpenSSL has a connection."""

    HANDSHAKE_FAILURE = 40
    UNRECOGNIZED_NAME = 112


def fatal_alert(description: AlertDescription) -> bytes:
    """A plaintext fatal alert record (what a server sends before any keys exist)."""
    return bytes((21, 3, 3, 0, 2, 2, int(description)))


class TlsErrorReason(enum.Enum):
    HANDSHAKE_FAILED = "TLS handshake failed"
    PROTOCOL_ERROR = "TLS protocol error after the handshake"
    CALLBACK_FAILED = "a TLS callback raised during the handshake"


class TlsEndpointError(Exception):
    """The TLS session cannot go on; send `to_peer` (an alert, maybe empty) and close."""

    def __init__(self, reason: TlsErrorReason, detail: str, to_peer: bytes = b"") -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.to_peer = to_peer


@dataclass(slots=True)
class Received:
    """What one `receive` produced."""

    to_peer: bytes
    plaintext: list[bytes]
    handshake_completed: bool = False  # just now, in this call
    peer_closed: bool = False  # close_notify received


class SessionInfo:
    """What the handshake negotiated (for routing and the connection log).

    ALPN, resumption and the staple are read once, at the end of the handshake; the version
    and cipher names only when something asks (nothing on the data path does).
    """

    __slots__ = ("_conn", "alpn", "client_certificate", "resumed", "staple")

    def __init__(
        self,
        conn: SSL.Connection,
        alpn: bytes | None,
        resumed: bool,
        staple: StapleOutcome,
        client_certificate: ClientCertificate | None = None,
    ) -> None:
        self._conn = conn
        self.alpn = alpn
        self.resumed = resumed
        self.staple = staple
        self.client_certificate = client_certificate

    @property
    def version(self) -> str:
        return self._conn.get_protocol_version_name()

    @property
    def cipher(self) -> str | None:
        return self._conn.get_cipher_name()


def _describe(error: BaseException) -> str:
    if isinstance(error, SSL.Error) and error.args and isinstance(error.args[0], list):
        parts = [str(item[2]) for item in error.args[0] if isinstance(item, tuple) and item]
        if parts:
            return "; ".join(parts)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class TlsEndpoint:
    """The server side of one TLS connection; also the OCSP callback's `StapleRecorder`."""

    __slots__ = (
        "_conn",
        "_fast",
        "_stats",
        "client_verify_error",
        "handshake_complete",
        "server",
        "staple_error",
        "staple_outcome",
        "staples",
    )

    def __init__(self, server: ServerContext, staples: StapleLookup, stats: StapleStats) -> None:
        self.server = server
        self.staples = staples
        self.staple_outcome = StapleOutcome.NOT_REQUESTED
        self.staple_error: BaseException | None = None
        self.handshake_complete = False
        self.client_verify_error = 0  # the first X509 error the verify callback saw
        self._stats = stats
        self._conn = SSL.Connection(server.context, None)
        self._conn.set_accept_state()
        self._conn.set_app_data(self)
        self._fast = _FAST

    def receive(self, data: bytes) -> Received:
        """Feed ciphertext from the peer; raises only `TlsEndpointError`."""
        conn = self._conn
        if _DIRECT and self.handshake_complete:
            result = Received(b"", [])
            result.to_peer, result.peer_closed = self.read(data, result.plaintext)
            return result
        if _DIRECT:
            return self._handshake_step(conn, data)
        conn.bio_write(data)
        result = Received(b"", [])
        if not self.handshake_complete:
            try:
                conn.do_handshake()
            except SSL.WantReadError:
                result.to_peer = self._drain()
                return result
            except SSL.Error as error:
                raise self._handshake_failed(error) from None
            except Exception as error:  # deferred from a callback (python-anchors §4.4)
                raise self._handshake_failed(error) from error
            self._completed(result)
        self._read_plaintext(result)
        result.to_peer = self._drain()
        return result

    def _handshake_step(self, conn: SSL.Connection, data: bytes) -> Received:
        """`receive` before the handshake is done, calling OpenSSL directly (one new
        connection's path: "send me more" is an answer here, not an exception)."""
        try:
            done = compat.handshake(conn, data)
        except SSL.Error as error:
            raise self._handshake_failed(error) from None
        except Exception as error:  # deferred from a callback (python-anchors §4.4)
            raise self._handshake_failed(error) from error
        if not done:
            return Received(compat.take_outgoing(conn), [])
        result = Received(b"", [])
        self._completed(result)
        self._decrypt(conn, result, b"")  # the client's first data came with its Finished?
        result.to_peer = compat.take_outgoing(conn)
        return result

    def _handshake_failed(self, error: BaseException) -> TlsEndpointError:
        """Count the staple outcome; the error to raise, carrying the alert for the peer."""
        self._record_staple()
        reason = (
            TlsErrorReason.HANDSHAKE_FAILED
            if isinstance(error, SSL.Error)
            else TlsErrorReason.CALLBACK_FAILED
        )
        return TlsEndpointError(reason, _describe(error), self._drain_quietly())

    def _completed(self, result: Received) -> None:
        self.handshake_complete = True
        result.handshake_completed = True
        self._record_staple()
        # Only the handshake's OCSP callback reads it; dropping it breaks the
        # endpoint <-> Connection cycle, so refcounting frees both without the GC.
        self._conn.set_app_data(None)

    def read(self, data: bytes, plaintext: list[bytes]) -> tuple[bytes, bool]:
        """After the handshake, with the direct bindings (`direct`): the keep-alive hot path.

        Decrypts every complete record of `data` into `plaintext`; returns the bytes to send
        back (usually none) and whether the peer's close_notify came. Raises only
        `TlsEndpointError`.
        """
        try:
            return compat.read_records(self._conn, data, plaintext)
        except Exception as error:
            raise self._protocol_error(error) from (None if isinstance(error, SSL.Error) else error)

    def encrypt_plaintext_buffer(self, size: int) -> bytes:
        """`send` for the first `size` bytes of `PLAINTEXT_BUFFER` (with `direct` only)."""
        try:
            return compat.encrypt_plaintext_buffer(self._conn, size)
        except Exception as error:
            raise self._protocol_error(error) from (None if isinstance(error, SSL.Error) else error)

    def _protocol_error(self, error: BaseException) -> TlsEndpointError:
        return TlsEndpointError(
            TlsErrorReason.PROTOCOL_ERROR, _describe(error), self._drain_quietly()
        )

    def _decrypt(self, conn: SSL.Connection, result: Received, data: bytes) -> None:
        """Feed `data` (maybe empty), then decrypt every complete record into `result`."""
        try:
            if compat.decrypt_into(conn, result.plaintext, data):
                result.peer_closed = True
        except Exception as error:
            raise self._protocol_error(error) from (None if isinstance(error, SSL.Error) else error)

    def _read_plaintext(self, result: Received) -> None:
        """The portable path (no direct bindings): `recv` until there is nothing left."""
        conn = self._conn
        fast = self._fast
        while True:
            if fast and not conn.pending() and not compat.incoming_pending(conn):
                return
            try:
                result.plaintext.append(conn.recv(CHUNK))
            except SSL.WantReadError:
                return
            except SSL.ZeroReturnError:
                result.peer_closed = True
                return
            except SSL.Error as error:
                raise TlsEndpointError(
                    TlsErrorReason.PROTOCOL_ERROR, _describe(error), self._drain_quietly()
                ) from None
            except Exception as error:
                raise TlsEndpointError(
                    TlsErrorReason.PROTOCOL_ERROR, _describe(error), self._drain_quietly()
                ) from error

    def send(self, plaintext: bytes | memoryview) -> bytes:
        """Encrypt application data for the peer (after the handshake)."""
        try:
            if _DIRECT:
                return compat.encrypt_and_take(self._conn, plaintext)
            self._conn.sendall(plaintext)
        except SSL.Error as error:
            raise TlsEndpointError(
                TlsErrorReason.PROTOCOL_ERROR, _describe(error), self._drain_quietly()
            ) from None
        return self._drain()

    def close_notify(self) -> bytes:
        """Our close_notify alert (we send no more data after it)."""
        if _DIRECT:
            return compat.close_notify(self._conn)
        try:  # noqa: SIM105 - once per connection: cheaper than a suppress() object
            self._conn.shutdown()
        except SSL.Error:
            pass
        return self._drain_quietly()

    def release(self) -> None:
        """Mark the session as cleanly shut down so it stays resumable after we drop it."""
        try:
            if _DIRECT:
                compat.mark_shut_down(self._conn)
            else:
                self._conn.set_shutdown(SSL.SENT_SHUTDOWN | SSL.RECEIVED_SHUTDOWN)
        except Exception:  # never let closing a connection fail
            pass

    def shed_handshake_buffers(self) -> bool:
        """Free the memory BIO buffers the handshake grew (for a connection gone idle).

        A memory BIO keeps its largest allocation: the ClientHello in one, the certificate,
        staple and tickets in the other, a few KiB per idle connection. The data plane calls
        this from a periodic sweep rather than on every handshake, so short connections never
        pay for it. False when there was nothing to do or data is still buffered.
        """
        if not (_DIRECT and self.handshake_complete):
            return False
        return compat.renew_bios(self._conn)

    def server_name(self) -> str | None:
        """The SNI host name as OpenSSL read it from the ClientHello (None: none sent, or
        not a plain ASCII host name: OpenSSL refuses only NUL, and the name goes into
        routing, logs and `%[ssl_fc_sni]` headers, where a CR LF would inject a line)."""
        name = self._conn.get_servername()
        if not name or re.fullmatch(rb"[\x21-\x7e]+", name) is None:  # as clienthello's
            return None
        return name.decode("ascii")

    def session_info(self) -> SessionInfo:
        """What was negotiated; version and cipher are read only when asked (logs, tests)."""
        conn = self._conn
        return SessionInfo(
            conn,
            # no ALPN callback on the context: OpenSSL cannot have negotiated anything
            conn.get_alpn_proto_negotiated() or None if self.server.alpn else None,
            compat.session_reused(conn),
            self.staple_outcome,
            self._client_certificate(conn) if self.server.binding.client.asks else None,
        )

    def _client_certificate(self, conn: SSL.Connection) -> ClientCertificate | None:
        """The client's certificate, if it sent one (also after resumption), and its result."""
        try:
            peer = conn.get_peer_certificate(as_cryptography=True)
            if peer is None:
                return None
            der = peer.public_bytes(_DER)
        except Exception:  # a certificate OpenSSL accepted but cryptography cannot re-encode
            return None
        return ClientCertificate(der, self.client_verify_error or compat.verify_result(conn))

    def _record_staple(self) -> None:
        if self.staple_outcome is not StapleOutcome.NOT_REQUESTED:
            self._stats.record(self.staple_outcome, self.server.slot, self.staple_error)
            self.staple_error = None

    def _drain(self) -> bytes:
        conn = self._conn
        if _DIRECT:
            return compat.take_outgoing(conn)
        pending = compat.outgoing_pending(conn) if self._fast else None
        if pending is not None:
            if not pending:
                return b""
            return conn.bio_read(pending)
        chunks: list[bytes] = []
        while True:
            try:
                chunks.append(conn.bio_read(CHUNK))
            except SSL.WantReadError:
                return b"".join(chunks)

    def _drain_quietly(self) -> bytes:
        try:
            return self._drain()
        except Exception:
            return b""
