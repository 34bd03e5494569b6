"""HAProxy's map files and the `map_*` converters' lookups.

A map file has one `key value` pair per line (the value is the rest of the line), `#`
comments and blank lines. It is read once, when the configuration is read (start-up,
reload, `-c`), and the table travels with the compiled converter: a request never touches
the file. Lookups follow HAProxy's match methods: `map`/`map_str` exact, `map_beg`,
`map_sub`, `map_end` and `map_reg` the first line (in file order) that matches, `map_ip`
the most specific network holding the address. No line matching means no sample.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

#: the converters staplegate runs, by HAProxy name → match method
MAP_METHODS = {
    "map": "str",
    "map_str": "str",
    "map_beg": "beg",
    "map_sub": "sub",
    "map_end": "end",
    "map_reg": "reg",
    "map_ip": "ip",
}
#: HAProxy's others, refused by name (their matching is not reproduced here)
REFUSED_MAP_CONVERTERS = frozenset(
    {"map_dom", "map_dir", "map_int", "map_len", "map_regm", "map_bin", "map_beg_str"}
)
_MAX_BYTES = 64 * 1024 * 1024  # a map is configuration, not data: refuse absurd files

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class MapError(ValueError):
    """The map file cannot be used; the message names the file (and line)."""


@dataclass(frozen=True, slots=True, eq=False)
class MapTable:
    """One map file read for one match method."""

    path: str
    method: str
    pairs: tuple[tuple[str, str], ...]  # in file order
    exact: MappingProxyType[str, str]  # "str": key → value (the first line wins)
    regexes: tuple[tuple[re.Pattern[str], str], ...]  # "reg"
    networks: tuple[tuple[Network, str], ...]  # "ip", most specific first


def load_map(path: str, method: str) -> MapTable:
    """Read `path` for `method` (a value of MAP_METHODS); MapError says what is wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise MapError(f"map file '{path}' cannot be read: {error.strerror}") from None
    if len(data) > _MAX_BYTES:
        raise MapError(f"map file '{path}' is larger than {_MAX_BYTES} bytes")
    pairs: list[tuple[str, str]] = []
    regexes: list[tuple[re.Pattern[str], str]] = []
    networks: list[tuple[Network, str]] = []
    for number, raw in enumerate(data.decode("latin-1").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(None, 1)
        key, value = fields[0], (fields[1].strip() if len(fields) > 1 else "")
        pairs.append((key, value))
        if method == "reg":
            try:
                regexes.append((re.compile(key), value))
            except re.error as error:
                raise MapError(
                    f"map file '{path}' line {number}: bad regex '{key}': {error}"
                ) from None
        elif method == "ip":
            try:
                networks.append((ipaddress.ip_network(key, strict=False), value))
            except ValueError:
                raise MapError(
                    f"map file '{path}' line {number}: '{key}' is no IP address or network"
                ) from None
    exact: dict[str, str] = {}
    if method == "str":
        for key, value in pairs:
            exact.setdefault(key, value)
    networks.sort(key=lambda entry: entry[0].prefixlen, reverse=True)
    return MapTable(
        path, method, tuple(pairs), MappingProxyType(exact), tuple(regexes), tuple(networks)
    )


def lookup(table: MapTable, key: str) -> str | None:
    """The value `key` maps to, or None (no sample)."""
    method = table.method
    if method == "str":
        return table.exact.get(key)
    if method == "reg":
        for regex, value in table.regexes:
            if regex.search(key):
                return value
        return None
    if method == "ip":
        try:
            address = ipaddress.ip_address(key)
        except ValueError:
            return None
        for network, value in table.networks:
            if address.version == network.version and address in network:
                return value
        return None
    for pattern, value in table.pairs:
        if (
            (method == "beg" and key.startswith(pattern))
            or (method == "end" and key.endswith(pattern))
            or (method == "sub" and pattern in key)
        ):
            return value
    return None
