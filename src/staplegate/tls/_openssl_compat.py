"""The one module that touches pyOpenSSL's private bindings, each behind a typed function.

pyOpenSSL 26.4 has no public way to read a memory BIO's fill level or to ask whether a session
was resumed (`SSL_session_reused`), and cryptography's bindings lack
`BIO_ctrl_pending`. Reading the fill level is what lets
the endpoint drain ciphertext with one `bio_read` instead of looping until `WantReadError`
(the "A-fast" tuning). The data path after the handshake calls OpenSSL through the same cffi
`lib` without pyOpenSSL's per-call wrapper work (text checks, a fresh buffer per read, an error
check after every success), one call per event: `read_records` for a client read,
`encrypt_plaintext_buffer` for a backend read (encrypted straight from the buffer it landed
in), `encrypt_and_take` for other plaintext (docs/performance.md). The handshake steps
(`handshake`, `take_outgoing`, `mark_shut_down`) do the same per new connection, where "send
me more" is the normal answer and need not be an exception. Errors go through pyOpenSSL's own
`_raise_ssl_error`, so callers see the usual exceptions. Each function degrades to a safe
answer if a future pyOpenSSL drops the private name: `None` for "unknown" (callers then fall
back to the exception path and the public methods).
"""

from __future__ import annotations

from typing import Any, Final

from OpenSSL import SSL

try:
    from OpenSSL._util import ffi as _ffi
    from OpenSSL._util import lib as _lib

    _HAVE_MEM_DATA = hasattr(_lib, "BIO_get_mem_data")
    _HAVE_REUSED = hasattr(_lib, "SSL_session_reused")
    _HAVE_DIRECT_IO = _HAVE_MEM_DATA and all(
        hasattr(_lib, name)
        for name in (
            "SSL_read",
            "SSL_write",
            "BIO_read",
            "BIO_write",
            "SSL_do_handshake",
            "SSL_get_error",
            "SSL_set_shutdown",
            "SSL_pending",
            "SSL_shutdown",
            "ERR_clear_error",
        )
    )
except ImportError:  # pragma: no cover - only with a future pyOpenSSL
    _ffi = None
    _lib = None
    _HAVE_MEM_DATA = _HAVE_REUSED = _HAVE_DIRECT_IO = False

#: SSL_read returns at most one record's plaintext (16 KiB) per call.
RECORD_PLAINTEXT: Final = 16384
#: What one backend read may fill (`plaintext_buffer`).
PLAINTEXT_BUFFER_SIZE: Final = 65536
# Room for PLAINTEXT_BUFFER_SIZE of plaintext once encrypted (a header and tag per record).
_READ_SIZE: Final = PLAINTEXT_BUFFER_SIZE + 4096
# One buffer per process for every connection: the event loop is single-threaded and each
# result is copied into `bytes` before the call returns.
_read_buffer: Any = _ffi.new("char[]", _READ_SIZE) if _HAVE_DIRECT_IO else None
# The buffer backend reads land in (`plaintext_buffer`), handed to SSL_write as it is.
_plaintext_buffer: Any = _ffi.new("char[]", PLAINTEXT_BUFFER_SIZE) if _HAVE_DIRECT_IO else None


def _bio(conn: SSL.Connection, attribute: str) -> Any:
    return getattr(conn, attribute, None)


def outgoing_pending(conn: SSL.Connection) -> int | None:
    """Bytes OpenSSL has written into the connection's outgoing memory BIO (None: unknown)."""
    bio = _bio(conn, "_from_ssl")
    if not _HAVE_MEM_DATA or bio is None:
        return None
    return int(_lib.BIO_get_mem_data(bio, _ffi.NULL))


def incoming_pending(conn: SSL.Connection) -> int | None:
    """Ciphertext bytes written into the incoming memory BIO and not yet consumed."""
    bio = _bio(conn, "_into_ssl")
    if not _HAVE_MEM_DATA or bio is None:
        return None
    return int(_lib.BIO_get_mem_data(bio, _ffi.NULL))


def session_reused(conn: SSL.Connection) -> bool:
    """True when the handshake resumed a session (False when it cannot be known)."""
    if not _HAVE_REUSED:
        return False
    return bool(_lib.SSL_session_reused(conn._ssl))


def fast_path_available() -> bool:
    """Whether fill levels can be read (reported once at start-up, and by tests)."""
    return _HAVE_MEM_DATA


def direct_io_available() -> bool:
    """Whether the data path can call OpenSSL directly (else pyOpenSSL's public methods)."""
    return _HAVE_DIRECT_IO and all(
        hasattr(SSL.Connection, name) for name in ("_raise_ssl_error", "_handle_bio_errors")
    )


def encrypt(conn: SSL.Connection, data: bytes | memoryview) -> None:
    """`conn.sendall(data)` into the outgoing memory BIO (which grows: writes are whole)."""
    ssl = conn._ssl
    with _ffi.from_buffer(data) as buffer:
        left = len(buffer)
        offset = 0
        while left:
            result = _lib.SSL_write(ssl, buffer + offset, min(left, 2147483647))
            if result <= 0:
                conn._raise_ssl_error(ssl, result)
                raise SSL.Error([("staplegate", "SSL_write", f"returned {result}")])
            offset += result
            left -= result


def renew_bios(conn: SSL.Connection) -> bool:
    """Swap both (empty) memory BIOs for new ones, freeing the buffers the handshake grew.

    A memory BIO keeps its largest allocation until it is freed: the ClientHello in one, the
    certificate, staple and tickets in the other (a few KiB per idle connection). Returns
    False, changing nothing, when a BIO still holds data or the bindings are missing.
    """
    if not _HAVE_DIRECT_IO or not hasattr(_lib, "SSL_set_bio"):
        return False
    into, out = conn._into_ssl, conn._from_ssl
    if into is None or out is None:
        return False
    if _lib.BIO_get_mem_data(into, _ffi.NULL) or _lib.BIO_get_mem_data(out, _ffi.NULL):
        return False
    new_into = _lib.BIO_new(_lib.BIO_s_mem())
    new_out = _lib.BIO_new(_lib.BIO_s_mem())
    if new_into == _ffi.NULL or new_out == _ffi.NULL:
        for bio in (new_into, new_out):
            if bio != _ffi.NULL:
                _lib.BIO_free(bio)
        return False
    _lib.SSL_set_bio(conn._ssl, new_into, new_out)  # frees the old pair (the SSL owns them)
    conn._into_ssl, conn._from_ssl = new_into, new_out
    return True


def decrypt_into(conn: SSL.Connection, plaintext: list[bytes], data: bytes = b"") -> bool:
    """Feed `data` (if any), then read every complete record into `plaintext`, in one call.

    The keep-alive hot path: one SSL_read per record and two fill-level checks, no wrapper
    calls, and no exception for the two usual endings: returns True when the peer's
    close_notify arrived, False when nothing (or only part of a record) is left. Anything
    else raises what `recv` raises.
    """
    ssl = conn._ssl
    into = conn._into_ssl
    lib = _lib
    if data:
        written = lib.BIO_write(into, data, len(data))
        if written <= 0:
            conn._handle_bio_errors(into, written)
    buffer = _read_buffer
    while True:
        result = lib.SSL_read(ssl, buffer, RECORD_PLAINTEXT)
        if result <= 0:
            error = lib.SSL_get_error(ssl, result)
            if error == lib.SSL_ERROR_WANT_READ:
                return False
            if error == lib.SSL_ERROR_ZERO_RETURN:
                return True
            conn._raise_ssl_error(ssl, result)
            raise SSL.Error([("staplegate", "SSL_read", f"returned {result} without an error")])
        plaintext.append(_ffi.buffer(buffer, result)[:])
        if not lib.SSL_pending(ssl) and not lib.BIO_get_mem_data(into, _ffi.NULL):
            return False


def plaintext_buffer() -> memoryview:
    """The process's one buffer for plaintext about to be encrypted (a backend read).

    `encrypt_plaintext_buffer` passes it to OpenSSL without wrapping it per call; without the
    direct bindings it is an ordinary buffer that `encrypt` takes.
    """
    if _plaintext_buffer is None:
        return memoryview(bytearray(PLAINTEXT_BUFFER_SIZE))
    return memoryview(_ffi.buffer(_plaintext_buffer))


def encrypt_plaintext_buffer(conn: SSL.Connection, size: int) -> bytes:
    """Encrypt the first `size` bytes of `plaintext_buffer()`; the ciphertext to send.

    The bulk and keep-alive hot path: one call from the backend's read to the bytes for the
    client, no buffer object per call.
    """
    ssl = conn._ssl
    written = 0
    while written < size:  # pyOpenSSL's contexts allow partial writes: a record per call
        result = _lib.SSL_write(ssl, _plaintext_buffer + written, size - written)
        if result <= 0:
            conn._raise_ssl_error(ssl, result)
            raise SSL.Error([("staplegate", "SSL_write", f"returned {result}")])
        written += result
    return take_outgoing(conn)


def read_records(conn: SSL.Connection, data: bytes, plaintext: list[bytes]) -> tuple[bytes, bool]:
    """After the handshake: feed `data`, decrypt every complete record into `plaintext`.

    Returns what OpenSSL wants sent back (b"" unless a post-handshake message asked for an
    answer) and whether the peer's close_notify arrived. One call per client read on the
    keep-alive path; errors raise what `recv` raises.
    """
    # `decrypt_into`, inline: a Python call per request is worth saving here
    ssl = conn._ssl
    into = conn._into_ssl
    lib = _lib
    if data:
        written = lib.BIO_write(into, data, len(data))
        if written <= 0:
            conn._handle_bio_errors(into, written)
    buffer = _read_buffer
    closed = False
    while True:
        result = lib.SSL_read(ssl, buffer, RECORD_PLAINTEXT)
        if result <= 0:
            error = lib.SSL_get_error(ssl, result)
            if error == lib.SSL_ERROR_WANT_READ:
                break
            if error == lib.SSL_ERROR_ZERO_RETURN:
                closed = True
                break
            conn._raise_ssl_error(ssl, result)
            raise SSL.Error([("staplegate", "SSL_read", f"returned {result} without an error")])
        plaintext.append(_ffi.buffer(buffer, result)[:])
        if not lib.SSL_pending(ssl) and not lib.BIO_get_mem_data(into, _ffi.NULL):
            break
    if lib.BIO_get_mem_data(conn._from_ssl, _ffi.NULL):
        return take_outgoing(conn), closed
    return b"", closed


def encrypt_and_take(conn: SSL.Connection, data: bytes | memoryview) -> bytes:
    """`encrypt(data)` then every ciphertext byte waiting in the outgoing BIO, in one call."""
    if type(data) is bytes:  # cffi passes bytes as they are: no buffer object to make
        size = len(data)
        result = _lib.SSL_write(conn._ssl, data, size)
        if result == size:  # `take_outgoing`, inline (once per HTTP answer)
            out = conn._from_ssl
            size = int(_lib.BIO_get_mem_data(out, _ffi.NULL))
            if size and size <= _READ_SIZE:
                result = _lib.BIO_read(out, _read_buffer, size)
                if result > 0:
                    ciphertext: bytes = _ffi.buffer(_read_buffer, result)[:]
                    return ciphertext
            return take_outgoing(conn)
        if result <= 0:
            conn._raise_ssl_error(conn._ssl, result)
            raise SSL.Error([("staplegate", "SSL_write", f"returned {result}")])
        data = memoryview(data)[result:]  # a partial write (one record): the rest below
    encrypt(conn, data)
    return take_outgoing(conn)


def take_outgoing(conn: SSL.Connection) -> bytes:
    """Every ciphertext byte waiting in the outgoing memory BIO (b"" when none)."""
    out = conn._from_ssl
    size = int(_lib.BIO_get_mem_data(out, _ffi.NULL))
    if not size:
        return b""
    buffer = _read_buffer if size <= _READ_SIZE else _ffi.new("char[]", size)
    result = _lib.BIO_read(out, buffer, size)
    if result <= 0:
        conn._handle_bio_errors(out, result)
        return b""
    ciphertext: bytes = _ffi.buffer(buffer, result)[:]
    return ciphertext


def handshake(conn: SSL.Connection, data: bytes = b"") -> bool:
    """Feed `data` (if any), then `conn.do_handshake()` without an exception for the usual
    "send me more": False then.

    True when the handshake is complete. Any other outcome goes through pyOpenSSL's own
    `_raise_ssl_error`, which also re-raises what a callback deferred, so callers see exactly
    what `do_handshake` raises.
    """
    ssl = conn._ssl
    if data:
        into = conn._into_ssl
        written = _lib.BIO_write(into, data, len(data))
        if written <= 0:
            conn._handle_bio_errors(into, written)
    result = _lib.SSL_do_handshake(ssl)
    if result == 1:
        return True
    if _lib.SSL_get_error(ssl, result) == _lib.SSL_ERROR_WANT_READ:
        return False
    conn._raise_ssl_error(ssl, result)
    raise SSL.Error([("staplegate", "SSL_do_handshake", f"returned {result}")])


def close_notify(conn: SSL.Connection) -> bytes:
    """`conn.shutdown()` and the bytes to send (the alert; b"" if OpenSSL refused), never
    raising: a close must not fail, and a refusal (say, mid-handshake) leaves nothing to send.
    """
    if _lib.SSL_shutdown(conn._ssl) < 0:
        _lib.ERR_clear_error()  # nothing to report: the connection ends either way
    try:
        return take_outgoing(conn)
    except SSL.Error:
        return b""


def mark_shut_down(conn: SSL.Connection) -> None:
    """`conn.set_shutdown(SENT_SHUTDOWN | RECEIVED_SHUTDOWN)`: keeps the session resumable."""
    _lib.SSL_set_shutdown(conn._ssl, _lib.SSL_SENT_SHUTDOWN | _lib.SSL_RECEIVED_SHUTDOWN)


def verify_result(conn: SSL.Connection) -> int:
    """OpenSSL's verify result for the peer certificate (0 when none; 0 when unknown)."""
    if _lib is None or not hasattr(_lib, "SSL_get_verify_result"):
        return 0
    return int(_lib.SSL_get_verify_result(conn._ssl))
