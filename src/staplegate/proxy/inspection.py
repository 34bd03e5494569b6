"""`tcp-request inspect-delay` on a plain mode-tcp bind: what the client's first bytes say,
pure. A TLS ClientHello gives `req.ssl_hello_type`, `req.ssl_sni` and `req.ssl_alpn` for
`tcp-request content` rules and `use_backend` (SNI routing without terminating TLS);
anything else is decided at once (an OpenVPN or SSH client on port 443), as HAProxy's
fetches give no sample for it.
"""

from __future__ import annotations

import re
from typing import Final

from staplegate.proxy.http_rules import Inspected
from staplegate.tls.clienthello import (
    ClientHello,
    ClientHelloError,
    NeedMoreData,
    parse_client_hello,
)

#: decide once this much is read (HAProxy inspects one buffer)
INSPECT_LIMIT: Final = 16384
#: what HAProxy's `HTTP` ACL recognises in mode tcp: an HTTP/1.x request line
_REQUEST_LINE: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [^ \r\n]+ HTTP/1\.[01]\r?\n")


def wants_more(buffer: bytes | bytearray) -> bool:
    """True while `buffer` is the incomplete beginning of a ClientHello."""
    if len(buffer) >= INSPECT_LIMIT:
        return False
    try:
        return isinstance(parse_client_hello(bytes(buffer)), NeedMoreData)
    except ClientHelloError:
        return False


def inspect(data: bytes) -> tuple[Inspected, str | None]:
    """What the rules may look at in `data`, and the ClientHello's server name."""
    hello: ClientHello | None = None
    if data:
        try:
            parsed = parse_client_hello(data)
        except ClientHelloError:
            parsed = None
        if isinstance(parsed, ClientHello):
            hello = parsed
    if hello is None:
        return Inspected(len(data), http_request=_REQUEST_LINE.match(data) is not None), None
    offered = hello.alpn_protocols
    alpn = offered[0].decode("latin-1") if offered else None
    return Inspected(len(data), True, alpn), hello.server_name
