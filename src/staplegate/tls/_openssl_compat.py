"""The one module that touches pyOpenSSL's private bindings, each behind a typed function.

pyOpenSSL 26.4 has no public way to read a memory BIO's fill level or to ask whether a session
was resumed (research/dataplane.md §6, pitfalls 3 and 7). Reading the fill level is what lets
the endpoint drain ciphertext with one `bio_read` instead of looping until `WantReadError`
(the "A-fast" tuning). Each function degrades to a safe answer if a future pyOpenSSL drops
the private name: `None` for "unknown" (callers then fall back to the exception path).
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL

try:
    from OpenSSL._util import ffi as _ffi
    from OpenSSL._util import lib as _lib

    _HAVE_MEM_DATA = hasattr(_lib, "BIO_get_mem_data")
    _HAVE_REUSED = hasattr(_lib, "SSL_session_reused")
except ImportError:  # pragma: no cover - only with a future pyOpenSSL
    _ffi = None
    _lib = None
    _HAVE_MEM_DATA = _HAVE_REUSED = False


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
    ssl = _bio(conn, "_ssl")
    if not _HAVE_REUSED or ssl is None:
        return False
    return bool(_lib.SSL_session_reused(ssl))


def fast_path_available() -> bool:
    """Whether fill levels can be read (reported once at start-up, and by tests)."""
    return _HAVE_MEM_DATA
