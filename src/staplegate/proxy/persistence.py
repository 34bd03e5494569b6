"""Cookie persistence (`cookie NAME insert …` with `server … cookie VALUE`), HAProxy's insert
mode: a request whose cookie names a usable server goes to it; a response from a server the
client did not ask for that way gets `Set-Cookie: NAME=VALUE; path=/` (the flags from the
`cookie` line), so the next requests stick. Pure functions on request and response heads.
"""

from __future__ import annotations

from staplegate.config.model import CookiePersistence
from staplegate.proxy.http_request import RequestHead
from staplegate.proxy.http_response import ResponseHead

#: what HAProxy sends for a server without a `cookie` value: forget the old one
_EXPIRED = "=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/"
_NOT_CACHEABLE = (b"private", b"no-cache", b"no-store")


def request_cookie(head: RequestHead, name: str, *, remove: bool) -> str | None:
    """The value of cookie `name` in the request's Cookie headers (the first one), or None;
    `remove` (`indirect`) takes it out of what the server will see."""
    wanted = name.encode("latin-1")
    found: bytes | None = None
    changed = False
    kept_headers: list[tuple[bytes, bytes]] = []
    for key, value in head.headers:
        if key.lower() != b"cookie" or wanted not in value:
            kept_headers.append((key, value))
            continue
        kept: list[bytes] = []
        for pair in value.split(b";"):
            cookie_name, sep, cookie_value = pair.strip().partition(b"=")
            if sep and cookie_name == wanted:
                if found is None:
                    found = cookie_value.strip()
                if remove:
                    changed = True
                    continue
            kept.append(pair.strip())
        if kept:
            kept_headers.append((key, b"; ".join(kept)))
        else:
            changed = True
    if changed:
        head.headers = kept_headers
        head.headers_changed()
    return found.decode("latin-1") if found is not None else None


def insert_cookie(
    response: ResponseHead,
    persistence: CookiePersistence,
    server_cookie: str | None,
    *,
    direct: bool,
) -> None:
    """HAProxy's insert on the response: unless the client's cookie chose this server,
    add the cookie (an expired one for a server without a value), `Cache-control: private`
    with `nocache` on a response that could be cached; with `indirect`, a cookie of that
    name the server sets itself is removed."""
    name = persistence.name
    headers = response.headers
    if persistence.indirect:
        prefix = name.encode("latin-1") + b"="
        headers = [
            (k, v)
            for k, v in headers
            if not (k.lower() == b"set-cookie" and v.lstrip().startswith(prefix))
        ]
    if direct:
        if headers is not response.headers:
            response.set_headers(headers)
        return
    text = name + _EXPIRED if server_cookie is None else f"{name}={server_cookie}; path=/"
    if persistence.domain:
        text += f"; domain={persistence.domain}"
    if persistence.httponly:
        text += "; HttpOnly"
    if persistence.secure:
        text += "; Secure"
    headers = [*headers, (b"Set-Cookie", text.encode("latin-1"))]
    if persistence.nocache and _cacheable(headers):
        headers.append((b"Cache-control", b"private"))
    response.set_headers(headers)


def _cacheable(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a cache could keep this response (no Cache-Control that forbids it)."""
    for key, value in headers:
        if key.lower() == b"cache-control" and any(d in value.lower() for d in _NOT_CACHEABLE):
            return False
    return True
