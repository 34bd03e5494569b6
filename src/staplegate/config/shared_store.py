"""`ocsp-update.shared-store`: what a valid Redis URL is, judged before anything connects.

The password never comes from the URL (it would be printed by `-c -V`, kept in shell
histories and configuration backups): it is refused here with the keyword's file:line, and
read from `ocsp-update.shared-store-password-file` or `$STAPLEGATE_REDIS_PASSWORD` instead.
"""

from __future__ import annotations

from urllib.parse import urlsplit

SCHEMES = ("redis", "rediss")


def shared_store_url_error(url: str) -> str | None:
    """Why `url` is not a usable `redis://host:port/db` URL, or None when it is."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"cannot parse the URL ({exc})."
    if "@" in parts.netloc:  # checked first: no message below may echo a password
        return (
            "the URL must not carry a user or password; put the password in "
            "ocsp-update.shared-store-password-file or $STAPLEGATE_REDIS_PASSWORD."
        )
    if parts.scheme not in SCHEMES:
        return f"'{url}' must start with redis:// or rediss:// (TLS)."
    try:
        port = parts.port
    except ValueError as exc:
        return f"'{url}': {exc}."
    if not parts.hostname:
        return f"'{url}' names no host."
    if port == 0:
        return f"'{url}': port 0 is not a Redis port."
    path = parts.path.strip("/")
    if path and (not path.isdigit() or len(path) > 5):
        return f"'{url}': the path must be a database number (/0, /1, ...)."
    if parts.query or parts.fragment:
        return f"'{url}': no query or fragment is read; remove '?{parts.query}{parts.fragment}'."
    return None
