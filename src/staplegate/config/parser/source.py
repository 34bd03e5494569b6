"""The `source` keyword's words, shared by proxy sections and `server` lines.

`source <addr>[:<port>] [usesrc { <addr2>[:<port2>] | client | clientip }]` sets the address
staplegate connects to servers from; `usesrc` presents another one (full transparent proxy).
`usesrc hdr_ip(…)` and `interface <name>` are refused: the first would let a request header
choose the source address, the second needs a device binding staplegate does not make.
"""

from __future__ import annotations

from staplegate.config.model import SourceBinding, UseSrc
from staplegate.config.values import AddressFamily, ValueSyntaxError, parse_socket_address


def read_source(text: str) -> SourceBinding:
    """`<addr>[:<port>]` after `source`; ValueSyntaxError names what is wrong."""
    host, port = _ip_and_port(text, "source")
    return SourceBinding(host, port)


def with_usesrc(binding: SourceBinding, text: str) -> SourceBinding:
    """The binding with `usesrc <text>` applied."""
    lowered = text.lower()
    if lowered == "client":
        return SourceBinding(binding.host, binding.port, UseSrc.CLIENT)
    if lowered == "clientip":
        return SourceBinding(binding.host, binding.port, UseSrc.CLIENT_IP)
    if lowered.startswith("hdr_ip("):
        raise ValueSyntaxError(
            "'usesrc hdr_ip(…)' is not supported by staplegate: it lets a request header "
            "choose the address servers see; use 'usesrc clientip' or 'option forwardfor'"
        )
    host, port = _ip_and_port(text, "usesrc")
    return SourceBinding(binding.host, binding.port, UseSrc.ADDRESS, host, port)


def read_source_words(words: list[str]) -> SourceBinding:
    """The words after a proxy section's `source`: an address, then `usesrc …` and/or
    `interface …`."""
    if not words:
        raise ValueSyntaxError("'source' expects <addr>[:<port>] as an argument")
    binding = read_source(words[0])
    rest = words[1:]
    while rest:
        word = rest[0].lower()
        if len(rest) < 2:
            raise ValueSyntaxError(f"'{rest[0]}' expects an argument")
        if word == "usesrc":
            binding = with_usesrc(binding, rest[1])
        elif word == "interface":
            raise ValueSyntaxError(INTERFACE_REFUSED)
        else:
            raise ValueSyntaxError(
                f"unknown keyword '{rest[0]}' after 'source': expects 'usesrc' or 'interface'"
            )
        rest = rest[2:]
    return binding


INTERFACE_REFUSED = (
    "'source … interface <name>' is not supported by staplegate (it binds connections to a "
    "network device); choose the device with the source address and the routing table"
)


def _ip_and_port(text: str, keyword: str) -> tuple[str, int]:
    # port 0 written out means "any", as no port does
    spelled = text[:-2] if text.endswith(":0") and text.count(":") == 1 else text
    spelled = spelled[:-2] if spelled.startswith("[") and spelled.endswith("]:0") else spelled
    address = parse_socket_address(spelled, require_port=False)
    if address.family not in (AddressFamily.IPV4, AddressFamily.IPV6):
        raise ValueSyntaxError(f"'{keyword}' expects an IPv4 or IPv6 address, not '{text}'")
    return address.host, address.port
